package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/auditrail/auditrail/internal/fsutil"
	"os"
	"path/filepath"
	"time"
)

// Version is the format version Save writes and Load accepts.
const Version = 1

// FileName is the name of the state file inside the state directory.
const FileName = "checkpoint.json"

const tmpPrefix = "." + FileName + ".tmp"

// ErrCorrupt is returned by Load when the state file exists but cannot be
// trusted. The documented policy is to quarantine it and start from an empty
// state, re-reading what is on disk: duplicates, never loss.
var ErrCorrupt = errors.New("checkpoint: corrupt state")

// testHookBeforeRename, when set, runs after the temporary file is synced
// and before it is renamed into place. Tests use it to simulate a crash.
var testHookBeforeRename func()

type envelope struct {
	Version  int             `json:"version"`
	Checksum string          `json:"checksum"`
	State    json.RawMessage `json:"state"`
}

// Store reads and writes the state file in one directory. Save must not be
// called concurrently.
type Store struct {
	dir string
}

// NewStore returns a Store for dir. The directory is created by Save if it
// does not exist.
func NewStore(dir string) *Store {
	return &Store{dir: dir}
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load reads the state. A missing file yields an empty state and found ==
// false. A file that cannot be trusted yields an error wrapping ErrCorrupt.
func (s *Store) Load() (st *State, found bool, err error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint %s: %w", s.Path(), err)
	}
	st, err = Decode(b)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", s.Path(), err)
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

// Save commits st atomically: temporary file, fsync, rename, fsync of the
// directory.
func (s *Store) Save(st *State) error {
	b, err := Encode(st)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(s.Path(), b, testHookBeforeRename); err != nil {
		return fmt.Errorf("commit checkpoint: %w", err)
	}
	return nil
}

// Quarantine moves an untrusted state file aside, to
// checkpoint.json.corrupt-<unix time>, so that it can be inspected and a
// fresh state can be written. It returns the new path.
func (s *Store) Quarantine(now time.Time) (string, error) {
	dst := fmt.Sprintf("%s.corrupt-%d", s.Path(), now.Unix())
	if err := os.Rename(s.Path(), dst); err != nil {
		return "", fmt.Errorf("quarantine checkpoint: %w", err)
	}
	return dst, fsutil.SyncDir(s.dir)
}
