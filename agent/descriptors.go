package agent

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
)

// handle is an open descriptor shared by the readers of one file. It is
// closed when no reader holds it and the tracker no longer needs it.
// Guarded by tracker.mu.
type handle struct {
	f        *os.File
	gz       bool
	dev, ino uint64 // of the open file, which may not be the entry's own (a .gz attached while the plain file is held)
	refs     int
	orphan   bool
}

// pinLocked returns the descriptor held for (dev, ino), kept open until
// unpinLocked, or nil.
func (t *tracker) pinLocked(dev, ino uint64) *handle {
	for _, e := range t.entries {
		if e.h != nil && !e.gone && e.h.dev == dev && e.h.ino == ino {
			e.h.refs++
			return e.h
		}
	}
	return nil
}

func (t *tracker) unpinLocked(h *handle) {
	h.refs--
	if h.refs == 0 && h.orphan {
		t.closeLater(h.f)
	}
}

// adoptLocked makes f e's handle.
func (t *tracker) adoptLocked(e *entry, f *os.File, gz bool, dev, ino uint64) {
	e.h = &handle{f: f, gz: gz, dev: dev, ino: ino}
	t.open++
	t.m.openFiles.Set(float64(t.open))
}

// removeFinished releases the files every sink finished and stops
// tracking those gone from disk, whose seqs it returns.
func (t *tracker) removeFinished() []uint64 {
	finished := t.table.finished()
	t.mu.Lock()
	defer t.unlock()
	t.learnLocked(finished)
	return t.removeFinishedLocked()
}

func (t *tracker) removeFinishedLocked() (removed []uint64) {
	kept := t.entries[:0]
	for _, e := range t.entries {
		if t.doneByAllLocked(e) {
			t.dropHandleLocked(e)
			if e.gone && e.suspectSince.IsZero() {
				delete(t.bySeq, e.ref.Seq)
				removed = append(removed, e.ref.Seq)
				continue
			}
		}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(t.entries); i++ {
		t.entries[i] = nil
	}
	t.entries = kept
	return removed
}

// wantOpen is a descriptor to open without the lock, for an entry as it
// was when planned.
type wantOpen struct {
	e        *entry
	path     string
	gz       bool
	dev, ino uint64
}

func wantOpenOf(e *entry) wantOpen {
	return wantOpen{e: e, path: e.path, gz: e.compressed, dev: e.dev, ino: e.ino}
}

// holdOpen opens descriptors for unfinished files, oldest first, up to
// maxOpen, so that a file pruned while a sink is behind stays readable.
func (t *tracker) holdOpen() {
	tried := make(map[*entry]bool)
	for {
		finished := t.table.finished()
		t.mu.Lock()
		t.learnLocked(finished)
		var want []wantOpen
		for _, e := range t.entries {
			if t.open+len(want) >= t.maxOpen {
				break
			}
			if e.h == nil && !e.gone && !t.doneByAllLocked(e) && !tried[e] {
				tried[e] = true
				want = append(want, wantOpenOf(e))
			}
		}
		t.unlock()
		if len(want) == 0 {
			return
		}
		failed := false
		for _, w := range want {
			if !t.openFor(w, true) {
				failed = true
			}
		}
		if !failed {
			return
		}
	}
}

// openFor opens w's file and makes it w.e's handle if w.e is still the
// file planned for and still needs one; hold asks for holdOpen's
// conditions (unfinished, within maxOpen), else acquire's (not lost). It
// reports whether the open succeeded.
func (t *tracker) openFor(w wantOpen, hold bool) bool {
	f, problem := openIdentified(w.path, w.dev, w.ino)
	t.mu.Lock()
	defer t.unlock()
	if problem != (sourceProblem{}) {
		t.reportLocked(problem)
	}
	if f == nil {
		return false
	}
	e := w.e
	ok := t.bySeq[e.ref.Seq] == e && e.h == nil && !e.gone && e.dev == w.dev && e.ino == w.ino && e.compressed == w.gz
	if hold {
		ok = ok && !t.doneByAllLocked(e) && t.open < t.maxOpen
	} else {
		ok = ok && e.lost == ""
	}
	if !ok {
		t.closeLater(f)
		return true
	}
	t.adoptLocked(e, f, w.gz, w.dev, w.ino)
	return true
}

// openIdentified opens path if it is still the file (dev, ino). The
// problem is set when it could not be opened for lack of permission.
func openIdentified(path string, dev, ino uint64) (*os.File, sourceProblem) {
	fileIO("open")
	f, err := openAudit(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, brokenSource("open %s: permission denied", path)
		}
		return nil, sourceProblem{}
	}
	fi, err := f.Stat()
	if err != nil || !sameFile(fi, dev, ino) {
		f.Close() // replaced since the scan; the next scan sorts it out
		return nil, sourceProblem{}
	}
	return f, sourceProblem{}
}

func (t *tracker) dropHandleLocked(e *entry) {
	if e.h == nil {
		return
	}
	h := e.h
	e.h = nil
	t.open--
	t.m.openFiles.Set(float64(t.open))
	if h.refs == 0 {
		t.closeLater(h.f)
	} else {
		h.orphan = true
	}
}

// acquire returns a handle to read e, opening it if needed, or nil when e
// cannot be read.
func (t *tracker) acquire(e *entry) *handle {
	t.mu.Lock()
	if e.h == nil && !e.gone && e.lost == "" {
		w := wantOpenOf(e)
		t.unlock()
		t.openFor(w, false)
		t.mu.Lock()
	}
	defer t.unlock()
	if e.h == nil {
		return nil
	}
	e.h.refs++
	return e.h
}

func (t *tracker) release(h *handle) {
	t.mu.Lock()
	defer t.unlock()
	t.unpinLocked(h)
}

// closeAll releases every descriptor.
func (t *tracker) closeAll() {
	t.mu.Lock()
	defer t.unlock()
	for _, e := range t.entries {
		t.dropHandleLocked(e)
	}
}

// onlyPartialLine reports whether the file seq holds no newline after
// off, read through the descriptor held for it, pinned for the read.
func (t *tracker) onlyPartialLine(seq uint64, off int64) bool {
	t.mu.Lock()
	e := t.bySeq[seq]
	if e == nil || e.h == nil || e.h.gz || e.size-off > 64<<10 {
		t.unlock()
		return false
	}
	h, size := e.h, e.size
	h.refs++
	t.unlock()
	defer t.release(h)
	fileIO("read tail")
	buf := make([]byte, size-off)
	n, _ := h.f.ReadAt(buf, off)
	return bytes.IndexByte(buf[:n], '\n') < 0
}
