package file

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/auditrail/auditrail/internal/slotfile"
)

// pending is the append in progress, recorded durably before it starts:
// the file, its size before the append and after it. After a crash it
// tells the first batch written (the one the agent had in doubt, cut again
// exactly, or the next one if the agent knows the first was accepted)
// whether that batch is already in the file whole, in part, or not at all.
type pending struct {
	File string `json:"file"`
	Size int64  `json:"size"`
	End  int64  `json:"end"`
}

// pendingBase returns the name of the state file that records the sink's
// appends: its slots are that name followed by .0 and .1.
func pendingBase(dir, name string) string {
	return filepath.Join(dir, ".auditrail-"+name+".pending")
}

// legacyPendingPath is where releases before the slot files recorded the
// append, replaced by renaming.
func legacyPendingPath(dir, name string) string { return pendingBase(dir, name) + ".json" }

// loadPending opens the state file of the sink name in dir and returns
// the append recorded by the last run, or nil. A state that cannot be
// read whole or does not decode is taken as none: the batch in doubt is
// then appended again (a duplicate, never a loss).
func loadPending(dir, name string) (*slotfile.File, *pending, error) {
	f, b, found, err := slotfile.Open(pendingBase(dir, name), legacyPendingPath(dir, name))
	if errors.Is(err, slotfile.ErrCorrupt) {
		return f, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var p pending
	if !found || json.Unmarshal(b, &p) != nil || p.File == "" || filepath.Base(p.File) != p.File || p.Size < 0 || p.End < p.Size {
		return f, nil, nil
	}
	return f, &p, nil
}

// record commits p before its append.
func (s *Sink) record(p pending) error {
	b, _ := json.Marshal(p)
	if err := s.pending.Replace(b); err != nil {
		return fmt.Errorf("file sink %s: record append: %w", s.name, err)
	}
	return nil
}

// reconcile settles the append p of the last run with buf, the first
// batch of this one. It reports true when the file already holds buf
// whole where p was appended: the batch was written before the crash and
// is not written again. A part of it (a torn append) is cut off, so the
// batch is written again whole.
func (s *Sink) reconcile(p *pending, buf []byte) (bool, error) {
	path := filepath.Join(s.cfg.Directory, p.File)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // pruned since
	}
	if err != nil {
		return false, fmt.Errorf("file sink %s: open %s: %w", s.name, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("file sink %s: stat %s: %w", s.name, path, err)
	}
	switch size := fi.Size(); {
	case size <= p.Size:
		return false, nil // nothing of it was written
	case size >= p.End:
		if p.End-p.Size != int64(len(buf)) {
			return false, nil // another batch: the one in doubt was written whole
		}
		got := make([]byte, len(buf))
		if _, err := io.ReadFull(io.NewSectionReader(f, p.Size, p.End-p.Size), got); err != nil {
			return false, fmt.Errorf("file sink %s: read %s: %w", s.name, path, err)
		}
		return bytes.Equal(got, buf), nil
	}
	// Torn: the batch was not acknowledged, and is written again.
	if err := f.Truncate(p.Size); err != nil {
		return false, fmt.Errorf("file sink %s: cut torn batch off %s: %w", s.name, path, err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("file sink %s: sync %s: %w", s.name, path, err)
	}
	return false, nil
}
