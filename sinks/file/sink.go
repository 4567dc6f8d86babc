// Package file implements a sink that appends records as NDJSON to
// size-rotated files in a local directory, fsyncing every batch.
//
// Files are named auditrail-<UTC time to the nanosecond>-<pid>.ndjson, so
// that they sort by creation. Every run of the agent starts a new file. A
// batch is acknowledged only after it is written and fsynced.
//
// Before each append the sink records, durably, the file and its size
// before and after the append, in the state file .auditrail-<sink>.pending
// in the directory: two slot files, .auditrail-<sink>.pending.0 and .1,
// written in turn (pwrite, fdatasync; format in internal/slotfile), each
// with a generation and a CRC-32C, so that a crash leaves the previous
// record or the new one. Releases before the slot files kept it in
// .auditrail-<sink>.pending.json, replaced by renaming: it is read when
// there are no slots, and the first append removes it. After a
// crash the agent writes the batch it had in doubt again, cut exactly as
// before (see package journal); the sink then finds it whole at the
// recorded place and does not append it again, or finds a torn part of it
// and cuts that off before writing it whole. Each batch is in the archive
// once, as long as the directory and the agent's state directory survive.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/fsutil"
	"github.com/auditrail/auditrail/internal/ocsf"
	"github.com/auditrail/auditrail/internal/slotfile"
	"github.com/auditrail/auditrail/sinks"
)

var _ sinks.Sink = (*Sink)(nil)

// Sink is the file sink.
type Sink struct {
	name string
	cfg  Config
	now  func() time.Time

	f    *os.File
	size int64
	last time.Time // creation time of the newest file
	buf  []byte
	// inDoubt is the append the last run recorded, settled by the first
	// Write (see reconcile).
	inDoubt *pending
	// pending is the state file that records each append before it.
	pending *slotfile.File
}

// New returns a file sink, creating its directory. The directory and its
// missing parents (often the state directory, as sinks start before the
// agent) are 0700 and the files 0600: the archive is for root alone.
// Files an older version left 0640 are made 0600.
func New(name string, cfg Config) (*Sink, error) {
	if err := fsutil.PrivateDir(cfg.Directory); err != nil {
		return nil, fmt.Errorf("file sink %s: %w", name, err)
	}
	old, err := Files(cfg.Directory)
	if err != nil {
		return nil, fmt.Errorf("file sink %s: %w", name, err)
	}
	for _, f := range old {
		if fi, err := os.Lstat(f); err != nil || !fi.Mode().IsRegular() {
			continue // a symbolic link is not followed
		}
		if err := os.Chmod(f, 0o600); err != nil {
			return nil, fmt.Errorf("file sink %s: make %s private: %w", name, f, err)
		}
	}
	pf, p, err := loadPending(cfg.Directory, name)
	if err != nil {
		return nil, fmt.Errorf("file sink %s: %w", name, err)
	}
	return &Sink{name: name, cfg: cfg, now: time.Now, inDoubt: p, pending: pf}, nil
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// Write appends every record of b, one per line, and fsyncs.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	s.buf = s.buf[:0]
	for i := range b.Records {
		s.buf = s.appendRecord(s.buf, &b.Records[i])
		s.buf = append(s.buf, '\n')
	}
	if s.inDoubt != nil {
		done, err := s.reconcile(s.inDoubt, s.buf)
		if err != nil {
			return err
		}
		s.inDoubt = nil
		if done {
			return nil
		}
	}
	if s.f == nil || s.size >= int64(s.cfg.MaxFileBytes) {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	p := pending{File: filepath.Base(s.f.Name()), Size: s.size, End: s.size + int64(len(s.buf))}
	if err := s.record(p); err != nil {
		return err
	}
	n, err := s.f.Write(s.buf)
	s.size += int64(n)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		// What was written of it is cut off before the next attempt.
		s.closeCurrent()
		s.inDoubt = &p
		return fmt.Errorf("file sink %s: write: %w", s.name, err)
	}
	if cap(s.buf) > 8<<20 {
		s.buf = nil
	}
	return nil
}

// appendRecord appends r in the configured format. The agent's own
// records, and events OCSF cannot hold (not valid JSON, no timestamp), are
// written as they are.
func (s *Sink) appendRecord(dst []byte, r *sinks.Record) []byte {
	if s.cfg.Format == "ocsf" && r.Kind == sinks.KindEvent && r.Event != nil {
		if out, err := ocsf.Append(dst, r.Line, r.Event); err == nil {
			return out
		}
	}
	return append(dst, r.Line...)
}

func (s *Sink) closeCurrent() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *Sink) rotate() error {
	s.closeCurrent()
	t := s.now().UTC()
	for {
		if !t.After(s.last) {
			t = s.last.Add(time.Nanosecond)
		}
		s.last = t
		name := fmt.Sprintf("auditrail-%s-%d.ndjson", t.Format("20060102T150405.000000000Z"), os.Getpid())
		f, err := os.OpenFile(filepath.Join(s.cfg.Directory, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // same nanosecond as an existing file: take the next one
		}
		if err != nil {
			return fmt.Errorf("file sink %s: create file: %w", s.name, err)
		}
		s.f, s.size = f, 0
		break
	}
	if err := fsutil.SyncDir(s.cfg.Directory); err != nil {
		s.closeCurrent()
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	return s.prune()
}

func (s *Sink) prune() error {
	if s.cfg.MaxFiles <= 0 {
		return nil
	}
	files, err := Files(s.cfg.Directory)
	if err != nil {
		return fmt.Errorf("file sink %s: %w", s.name, err)
	}
	for len(files) > s.cfg.MaxFiles {
		if err := os.Remove(files[0]); err != nil {
			return fmt.Errorf("file sink %s: prune: %w", s.name, err)
		}
		files = files[1:]
	}
	return nil
}

// Files lists the sink's output files in dir, oldest first.
func Files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "auditrail-") && strings.HasSuffix(e.Name(), ".ndjson") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Close implements sinks.Sink.
func (s *Sink) Close(context.Context) error {
	s.pending.Close()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("file sink %s: close: %w", s.name, err)
	}
	return nil
}
