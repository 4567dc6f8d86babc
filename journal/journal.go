package journal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/slotfile"
)

// Version is the format version Store writes and Open accepts.
const Version = 1

// ErrCorrupt is returned by Open when the journal file exists but cannot be
// trusted.
var ErrCorrupt = errors.New("journal: corrupt")

// Journal is what one sink's journal file holds.
type Journal struct {
	// Files are the positions the sink acknowledged, per source file, that
	// a committed checkpoint may not hold yet.
	Files []File `json:"files,omitempty"`
	// Notices are the ids of notices the sink acknowledged that a
	// committed checkpoint may still list as pending for it.
	Notices []Notice `json:"notices,omitempty"`
	// Intent is the batch being delivered; nil when none is in doubt.
	Intent *Intent `json:"intent,omitempty"`
}

// File is a source file's identity, as the checkpoint keeps it, and the
// sink's acknowledged position in it.
type File struct {
	checkpoint.File
	Cursor checkpoint.Cursor `json:"cursor"`
	// Gen is the delivery that acknowledged it (see Store.Delivered).
	Gen uint64 `json:"gen"`
}

// Notice is a notice the sink acknowledged.
type Notice struct {
	ID  string `json:"id"`
	Gen uint64 `json:"gen"`
}

// Intent is a batch about to be written: enough to cut it again exactly.
type Intent struct {
	// Cut is when the batch was first built.
	Cut time.Time `json:"cut"`
	// Records is how many records the batch holds.
	Records int `json:"records"`
	// Segments are the source ranges, in the batch's order.
	Segments []Segment `json:"segments,omitempty"`
	// Files are the identities of the segments' files.
	Files []checkpoint.File `json:"files,omitempty"`
	// Made are the records the agent made rather than read: notices,
	// heartbeats, gap records and stubs, with their place in the batch.
	Made []Made `json:"made,omitempty"`
	// Notices are the ids of the registry's notices the batch carries.
	Notices []string `json:"notices,omitempty"`
	// RecordsCRC32C is the CRC-32C of the records' lines, each followed
	// by a newline: a batch cut again must have the same.
	RecordsCRC32C uint32 `json:"recordsCRC32C"`
}

// Segment is a contiguous byte range of one source file.
type Segment struct {
	Seq           uint64 `json:"seq"`
	ID            string `json:"id"`
	Start         int64  `json:"start"`
	End           int64  `json:"end"`
	Done          bool   `json:"done,omitempty"`
	LastEventTime string `json:"lastEventTime,omitempty"`
}

// Made is a record the agent made: its index among the batch's records,
// its kind's name, the identity and offset it carries, and its bytes.
type Made struct {
	Index  int    `json:"index"`
	Kind   string `json:"kind"`
	FileID string `json:"fileID"`
	Offset int64  `json:"offset,omitempty"`
	Line   []byte `json:"line"`
}

type envelope struct {
	Version  int             `json:"version"`
	Checksum string          `json:"checksum"`
	Journal  json.RawMessage `json:"journal"`
}

// Store is one sink's journal. Its methods other than Covered must not be
// called concurrently: the sink's writer alone changes it.
type Store struct {
	base string
	f    *slotfile.File
	j    Journal
	gen  uint64
	// dirty is set while a delivery is recorded and not written (Record).
	dirty bool
	// covered is the highest delivery a committed checkpoint holds.
	covered atomic.Uint64
}

// Base returns the name of sink's journal in dir: its slot files are
// Base+".0" and Base+".1" (see doc.go).
func Base(dir, sink string) string { return filepath.Join(dir, "journal-"+sink) }

// LegacyPath returns the journal file of sink in dir as releases before
// the slot files wrote it, replaced by renaming. Open reads it when there
// are no slots yet; the first write removes it.
func LegacyPath(dir, sink string) string { return Base(dir, sink) + ".json" }

// Open loads sink's journal from dir. A missing file is an empty journal.
// A file that cannot be trusted is moved aside (its slots, or the legacy
// file, to <file>.corrupt-<unix time>) and yields an empty journal and an
// error wrapping ErrCorrupt: the caller logs it and resumes from the
// checkpoint alone.
func Open(dir, sink string, now time.Time) (*Store, error) {
	s := &Store{base: Base(dir, sink)}
	f, b, found, err := slotfile.Open(s.base, LegacyPath(dir, sink))
	if err != nil && !errors.Is(err, slotfile.ErrCorrupt) {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	s.f = f
	if !found && err == nil {
		return s, nil
	}
	var j *Journal
	derr := fmt.Errorf("%w: %v", ErrCorrupt, err) // no slot verifies
	if err == nil {
		j, derr = Decode(b)
	}
	if derr != nil {
		moved, err := s.f.Quarantine(fmt.Sprintf(".corrupt-%d", now.Unix()))
		if err != nil {
			return nil, fmt.Errorf("quarantine journal %s: %w", s.base, err)
		}
		return s, fmt.Errorf("%s (moved to %v): %w", s.base, moved, derr)
	}
	s.j = *j
	for _, f := range s.j.Files {
		s.gen = max(s.gen, f.Gen)
	}
	for _, n := range s.j.Notices {
		s.gen = max(s.gen, n.Gen)
	}
	return s, nil
}

// Decode parses and verifies the bytes of a journal file.
func Decode(b []byte) (*Journal, error) {
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if env.Version != Version {
		return nil, fmt.Errorf("%w: unknown version %d", ErrCorrupt, env.Version)
	}
	if env.Checksum != checksum(env.Journal) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var j Journal
	dec := json.NewDecoder(bytes.NewReader(env.Journal))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &j, nil
}

// Encode returns the bytes of a journal file holding j.
func Encode(j *Journal) ([]byte, error) {
	raw, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode journal: %w", err)
	}
	b, err := json.Marshal(envelope{Version: Version, Checksum: checksum(raw), Journal: raw})
	if err != nil {
		return nil, fmt.Errorf("encode journal: %w", err)
	}
	return b, nil
}

func checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Forget empties the journal and removes its file: the agent does so when
// it reads every file again from the start (no checkpoint, or one that
// cannot be trusted), which a journal of recent deliveries must not cut
// short.
func (s *Store) Forget() error {
	s.j = Journal{}
	if err := s.f.Remove(); err != nil {
		return fmt.Errorf("remove journal: %w", err)
	}
	return nil
}

// Close releases the journal's files. A later write opens them again.
func (s *Store) Close() error { return s.f.Close() }

// InDoubt returns the intent whose outcome is unknown, or nil.
func (s *Store) InDoubt() *Intent { return s.j.Intent }

// Gen returns the last delivery recorded.
func (s *Store) Gen() uint64 { return s.gen }

// Covered records that a committed checkpoint holds every delivery up to
// gen: the next commit of the journal leaves them out. Safe for concurrent
// use.
func (s *Store) Covered(gen uint64) {
	for {
		old := s.covered.Load()
		if gen <= old || s.covered.CompareAndSwap(old, gen) {
			return
		}
	}
}

// Intend records in, durably, before the batch's first write.
func (s *Store) Intend(in *Intent) error {
	s.j.Intent = in
	return s.commit()
}

// Delivered records, durably, that the sink accepted the batch of the
// intent: the positions files reached and the notices ns it carried. It
// clears the intent and returns the delivery's number, which the caller
// hands to the checkpoint's snapshot and, once that is committed, to
// Covered.
func (s *Store) Delivered(files []File, ns []string) (uint64, error) {
	gen := s.Record(files, ns)
	return gen, s.commit()
}

// Record is Delivered without the write: the delivery becomes durable with
// the next Intend or Flush. Until then the journal on disk still holds the
// intent, which after a crash is cut again and recognised by the sink, so
// a writer whose next batch is waiting saves a write per batch.
func (s *Store) Record(files []File, ns []string) uint64 {
	s.dirty = true
	s.gen++
	for _, f := range files {
		f.Gen = s.gen
		f.Cursors = nil
		if i := slices.IndexFunc(s.j.Files, func(o File) bool { return o.Seq == f.Seq }); i >= 0 {
			f.Cursor = later(s.j.Files[i].Cursor, f.Cursor)
			s.j.Files[i] = f
		} else {
			s.j.Files = append(s.j.Files, f)
		}
	}
	for _, id := range ns {
		s.j.Notices = append(s.j.Notices, Notice{ID: id, Gen: s.gen})
	}
	s.j.Intent = nil
	return s.gen
}

// Dirty reports whether a delivery was recorded and not written yet.
func (s *Store) Dirty() bool { return s.dirty }

// Flush writes the deliveries recorded since the last write, if any.
func (s *Store) Flush() error {
	if !s.dirty {
		return nil
	}
	return s.commit()
}

// commit drops what a committed checkpoint covers and replaces the file's
// content (see doc.go).
func (s *Store) commit() error {
	c := s.covered.Load()
	s.j.Files = slices.DeleteFunc(s.j.Files, func(f File) bool { return f.Gen <= c })
	s.j.Notices = slices.DeleteFunc(s.j.Notices, func(n Notice) bool { return n.Gen <= c })
	b, err := Encode(&s.j)
	if err != nil {
		return err
	}
	if err := s.f.Replace(b); err != nil {
		return fmt.Errorf("commit journal: %w", err)
	}
	s.dirty = false
	return nil
}

// Apply merges the journal of sink into st: every file's cursor for sink
// becomes the later of the checkpoint's and the journal's, files the
// checkpoint does not know (found after its last commit) are added with
// their identity, and the notices the journal says were delivered are no
// longer pending for sink. It returns the files whose identity under their
// seq differs from the checkpoint's, which it leaves alone.
func (s *Store) Apply(st *checkpoint.State, sink string) (conflicts []uint64) {
	bySeq := make(map[uint64]int, len(st.Files))
	for i, f := range st.Files {
		bySeq[f.Seq] = i
	}
	add := func(f checkpoint.File) int {
		if i, ok := bySeq[f.Seq]; ok {
			return i
		}
		f.Cursors = nil
		st.Files = append(st.Files, f)
		bySeq[f.Seq] = len(st.Files) - 1
		st.NextSeq = max(st.NextSeq, f.Seq+1)
		return len(st.Files) - 1
	}
	for _, jf := range s.j.Files {
		i := add(jf.File)
		f := &st.Files[i]
		if f.ID != jf.ID {
			conflicts = append(conflicts, jf.Seq)
			continue
		}
		if f.Cursors == nil {
			f.Cursors = make(map[string]checkpoint.Cursor)
		}
		f.Cursors[sink] = later(f.Cursors[sink], jf.Cursor)
	}
	if in := s.j.Intent; in != nil {
		for _, f := range in.Files {
			add(f)
		}
	}
	delivered := make(map[string]bool, len(s.j.Notices))
	for _, n := range s.j.Notices {
		delivered[n.ID] = true
	}
	for i := range st.Notices {
		if delivered[st.Notices[i].ID] {
			st.Notices[i].Pending = slices.DeleteFunc(st.Notices[i].Pending, func(p string) bool { return p == sink })
		}
	}
	st.Notices = slices.DeleteFunc(st.Notices, func(n checkpoint.Notice) bool { return len(n.Pending) == 0 })
	slices.SortFunc(st.Files, func(a, b checkpoint.File) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return conflicts
}

// later returns the cursor further on: positions only move forward.
func later(a, b checkpoint.Cursor) checkpoint.Cursor {
	if b.Done && !a.Done || b.Offset > a.Offset {
		c := b
		c.Done = a.Done || b.Done
		if c.LastEventTime == "" {
			c.LastEventTime = a.LastEventTime
		}
		return c
	}
	return a
}
