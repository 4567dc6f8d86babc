package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/auditrail/auditrail/internal/slotfile"
)

// Version is the format version Save writes and Load accepts.
const Version = 1

// Name is the state file's name inside the state directory: its slots
// are Name+".0" and Name+".1" (see doc.go).
const Name = "checkpoint"

// LegacyFileName is the state file releases before the slot files
// replaced by renaming. Load reads it when there are no slots; the first
// Save removes it.
const LegacyFileName = "checkpoint.json"

// ErrCorrupt is returned by Load when the state file exists but cannot be
// trusted. The documented policy is to quarantine it and start from an empty
// state, re-reading what is on disk: duplicates, never loss.
var ErrCorrupt = errors.New("checkpoint: corrupt state")

// testHookBeforeWrite, when set, runs before a slot is written, with the
// slot's path and the bytes about to be written. Tests use it to simulate
// a crash.
var testHookBeforeWrite func(path string, b []byte)

type envelope struct {
	Version  int             `json:"version"`
	Checksum string          `json:"checksum"`
	State    json.RawMessage `json:"state"`
}

// Store reads and writes the state file in one directory. Its methods
// must not be called concurrently.
type Store struct {
	dir string
	f   *slotfile.File
}

// NewStore returns a Store for dir. The directory is created by Save if it
// does not exist.
func NewStore(dir string) *Store {
	return &Store{dir: dir}
}

// Base is the state file's name, without a slot's suffix.
func (s *Store) Base() string { return filepath.Join(s.dir, Name) }

// open (re)opens the state file and returns its content.
func (s *Store) open() (b []byte, found bool, err error) {
	if s.f != nil {
		s.f.Close()
	}
	f, b, found, err := slotfile.Open(s.Base(), filepath.Join(s.dir, LegacyFileName))
	if f != nil {
		f.BeforeWrite = testHookBeforeWrite
	}
	s.f = f
	return b, found, err
}

// file returns the state file, opened first if it is not open yet; one
// that does not verify is returned too, to be replaced or quarantined.
func (s *Store) file() (*slotfile.File, error) {
	if s.f == nil {
		if _, _, err := s.open(); err != nil && !errors.Is(err, slotfile.ErrCorrupt) {
			return nil, err
		}
	}
	return s.f, nil
}

// Load reads the state. A missing file yields an empty state and found ==
// false. A file that cannot be trusted yields an error wrapping ErrCorrupt.
func (s *Store) Load() (st *State, found bool, err error) {
	b, found, err := s.open()
	if errors.Is(err, slotfile.ErrCorrupt) {
		return nil, true, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint: %w", err)
	}
	if !found {
		return &State{}, false, nil
	}
	st, err = Decode(b)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", s.Base(), err)
	}
	return st, true, nil
}

// Decode parses and verifies the bytes of a state file.
func Decode(b []byte) (*State, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if env.Version != Version {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, env.Version)
	}
	if want := checksum(env.State); env.Checksum != want {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var st State
	dec := json.NewDecoder(bytes.NewReader(env.State))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &st, nil
}

func (s *State) validate() error {
	seen := make(map[uint64]bool, len(s.Files))
	for _, f := range s.Files {
		if seen[f.Seq] {
			return fmt.Errorf("duplicate file seq %d", f.Seq)
		}
		seen[f.Seq] = true
		if f.Seq >= s.NextSeq {
			return fmt.Errorf("file seq %d not below nextSeq %d", f.Seq, s.NextSeq)
		}
		if f.Size < 0 || f.FingerprintLen < 0 {
			return fmt.Errorf("file seq %d: negative size", f.Seq)
		}
		for name, c := range f.Cursors {
			if c.Offset < 0 {
				return fmt.Errorf("file seq %d sink %q: negative offset", f.Seq, name)
			}
		}
	}
	for _, n := range s.Notices {
		if n.ID == "" || !json.Valid(n.Record) {
			return fmt.Errorf("notice %q: no id or not a JSON record", n.ID)
		}
	}
	return nil
}

// Encode returns the bytes Save writes for st.
func Encode(st *State) ([]byte, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return json.Marshal(envelope{Version: Version, Checksum: checksum(raw), State: raw})
}

func checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Save commits st: it replaces the state file's content, durably (see
// doc.go).
func (s *Store) Save(st *State) error {
	b, err := Encode(st)
	if err != nil {
		return err
	}
	f, err := s.file()
	if err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	if err := f.Replace(b); err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	return nil
}

// Quarantine moves an untrusted state file aside: each of its slots, and
// the legacy file, to its name followed by .corrupt-<unix time>, so that
// it can be inspected and a fresh state can be written. It returns the
// new paths.
func (s *Store) Quarantine(now time.Time) ([]string, error) {
	f, err := s.file()
	if err != nil {
		return nil, fmt.Errorf("quarantine checkpoint: %w", err)
	}
	moved, err := f.Quarantine(fmt.Sprintf(".corrupt-%d", now.Unix()))
	if err != nil {
		return moved, fmt.Errorf("quarantine checkpoint: %w", err)
	}
	return moved, nil
}

// Close releases the state file. A later Load or Save opens it again.
func (s *Store) Close() error {
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}
