package agent

import (
	"log/slog"
	"sync"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// registry joins the file tracker (which files there are, their identity
// and descriptors) and the position table (how far each sink got in each
// of them, and the notices), each with its own lock, for the operations
// that need both: finding a sink's next file, acknowledging, and the
// checkpoint. It holds no lock of its own over either: it reads the
// position table first, then the tracker, so a view it builds may be
// older in positions than in files, never the reverse (positions only
// advance, so that errs towards reading again).
type registry struct {
	files *tracker
	pos   *positions
	bell  *bell
	// grown rings when the live file grew: the readers that are caught up
	// read the appends together, at most every readInterval (see
	// reader.wait), rather than at each write.
	grown *bell
	sinks []string
	m     *metrics
	now   func() time.Time

	// gaugeMu guards exported, the file ids with per-file gauges, to
	// delete those gauges when the files are gone.
	gaugeMu  sync.Mutex
	exported map[string]bool
}

func newRegistry(livePath string, sinkNames []string, maxOpen int, st *checkpoint.State, m *metrics, log *slog.Logger, now func() time.Time) *registry {
	b := &bell{}
	p := newPositions(sinkNames, st, m, log, b)
	return &registry{
		files: newTracker(livePath, maxOpen, st, m, log, now, b, p),
		pos:   p, bell: b, grown: &bell{}, sinks: sinkNames, m: m, now: now,
	}
}

// bell wakes the readers when the files or the notices may have changed.
type bell struct {
	mu      sync.Mutex
	waiters []chan struct{}
}

// subscribe returns a channel that receives a value whenever the bell
// rings.
func (b *bell) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	b.waiters = append(b.waiters, ch)
	b.mu.Unlock()
	return ch
}

func (b *bell) ring() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// subscribe returns a channel that receives a value whenever the files or
// the notices may have changed, and one that receives a value whenever the
// live file grew.
func (r *registry) subscribe() (changed, grown <-chan struct{}) {
	return r.bell.subscribe(), r.grown.subscribe()
}

// grew tells every reader that the live file grew.
func (r *registry) grew() { r.grown.ring() }

// scan brings the tracker up to date with the directory, drops the
// positions of the files it stopped tracking, and queues the tamper
// records it decided on.
func (r *registry) scan() {
	removed, tampers := r.files.scan()
	r.pos.forget(removed)
	for _, t := range tampers {
		r.pos.notify(sinks.KindTamper, t, r.now())
	}
}

// ack records that sink acknowledged segs; when that finished a file,
// the tracker releases what is finished and holds the next files open.
func (r *registry) ack(sink string, segs []sinks.Segment) {
	if r.pos.ack(sink, segs) {
		r.pos.forget(r.files.removeFinished())
		r.files.holdOpen()
	}
}

// next returns the first file after seq that sink has not finished, or nil.
func (r *registry) next(sink string, afterSeq uint64) *entry {
	return r.files.next(afterSeq, r.pos.doneBy(sink))
}

// view returns a reader's snapshot of e.
func (r *registry) view(e *entry, sink string) fileView {
	last := r.pos.cursor(e.ref.Seq, sink).LastEventTime
	v := r.files.view(e)
	v.lastTime = last
	return v
}

// skipExisting makes every sink start at the current end of the files on
// disk, for a first start with startAt: end.
func (r *registry) skipExisting() {
	files, _ := r.files.stats()
	cs := make(map[uint64]checkpoint.Cursor, len(files))
	for _, f := range files {
		off := f.Size
		if !f.Final {
			off = lastLineEnd(f.Path, f.Size)
		}
		cs[f.Seq] = checkpoint.Cursor{Offset: off, Done: f.Final}
	}
	r.pos.skipTo(cs)
	r.pos.forget(r.files.removeFinished())
}

// lastLineEnd returns the offset just after the last newline before size.
func lastLineEnd(path string, size int64) int64 {
	fileIO("read end")
	f, err := openAudit(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, _ := f.ReadAt(buf[:end-start], start)
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return start + int64(i) + 1
			}
		}
		end = start
	}
	return 0
}

// snapshot returns the state to commit and whether it changed since the
// last snapshot. It also refreshes the lag and per-file gauges.
func (r *registry) snapshot() (*checkpoint.State, bool) {
	rows := r.pos.snapshot()
	files, nextSeq := r.files.stats()
	dirty := r.files.takeDirty() || rows.dirty
	now := r.now()
	st := &checkpoint.State{NextSeq: nextSeq, Files: make([]checkpoint.File, 0, len(files)), SavedAt: now.UTC(), Notices: rows.notices}
	lag := make(map[string]int64, len(r.sinks))
	lastAcked := make(map[string]string, len(r.sinks))
	for _, fs := range files {
		f := fs.File
		f.Cursors = make(map[string]checkpoint.Cursor, len(r.sinks))
		for _, s := range r.sinks {
			c := rows.rows[f.Seq][s]
			f.Cursors[s] = c
			if c.LastEventTime != "" && lag[s] == 0 {
				lastAcked[s] = c.LastEventTime // the last event before the backlog
			}
			if !c.Done && f.Size > c.Offset {
				lag[s] += f.Size - c.Offset
			}
		}
		st.Files = append(st.Files, f)
	}
	r.exportFiles(st.Files)
	for _, s := range r.sinks {
		r.m.lagBytes.WithLabelValues(s).Set(float64(lag[s]))
		secs := 0.0
		if t, err := time.Parse(time.RFC3339Nano, lastAcked[s]); err == nil && lag[s] > 0 {
			secs = max(now.Sub(t).Seconds(), 0)
		}
		r.m.lagSeconds.WithLabelValues(s).Set(secs)
	}
	return st, dirty
}

// exportFiles refreshes the per-file gauges and drops those of files no
// longer tracked.
func (r *registry) exportFiles(files []checkpoint.File) {
	r.gaugeMu.Lock()
	defer r.gaugeMu.Unlock()
	now := make(map[string]bool, len(files))
	for _, f := range files {
		now[f.ID] = true
		if !f.Compressed {
			r.m.fileSize.WithLabelValues(f.ID).Set(float64(f.Size))
		}
		for _, s := range r.sinks {
			r.m.fileOffset.WithLabelValues(s, f.ID).Set(float64(f.Cursors[s].Offset))
		}
	}
	for id := range r.exported {
		if !now[id] {
			r.m.fileSize.DeleteLabelValues(id)
			for _, s := range r.sinks {
				r.m.fileOffset.DeleteLabelValues(s, id)
			}
		}
	}
	r.exported = now
}

// shipping reports whether some sink acknowledged data since the start, or
// there was nothing to ship.
func (r *registry) shipping() bool {
	return r.pos.shipping() || r.caughtUp()
}

// caughtUp reports whether every sink has acknowledged every complete line
// of every file on disk.
func (r *registry) caughtUp() bool {
	if r.pos.waiting() {
		return false
	}
	rows := r.pos.cursors()
	files, _ := r.files.stats()
	for _, f := range files {
		for _, s := range r.sinks {
			c := rows[seqSink{f.Seq, s}]
			if c.Done {
				continue
			}
			if f.gone || f.Compressed || (f.Final && c.Offset < f.Size) {
				return false
			}
			if c.Offset < f.Size && !r.files.onlyPartialLine(f.Seq, c.Offset) {
				return false
			}
		}
	}
	return true
}
