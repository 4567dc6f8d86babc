package agent

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// positions is the position table: every sink's acknowledged cursor in
// every file (by the file's seq), the notices that wait for sinks, and
// the journal deliveries acknowledged. Only ack advances a cursor; the
// table knows nothing of the files on disk and does no I/O.
type positions struct {
	sinks []string
	m     *metrics
	log   *slog.Logger
	bell  *bell
	// anchorTo are the sinks that take anchor records (the ones that keep
	// no hash chain themselves); set before the readers start.
	anchorTo []string

	mu sync.Mutex
	// rows are the cursors by file seq, then sink. A row is made by the
	// first acknowledgement for its file and dropped (forget) when the
	// file tracker stops tracking the file.
	rows  map[uint64]map[string]checkpoint.Cursor
	dirty bool
	// delivered is set once any sink acknowledged a batch.
	delivered bool
	// notices wait for sinks to acknowledge them; noticeGen counts the
	// notices made, so readers notice new ones without the lock.
	notices   []*notice
	noticeGen atomic.Uint64
	// gens are, per sink, the last journal delivery acknowledged (see
	// deliveredGen).
	gens map[string]uint64
	// sealedNoticed is set once a redaction failure was reported.
	sealedNoticed atomic.Bool
	// done is published under mu whenever a file is finished or
	// forgotten (publishDoneLocked).
	done atomic.Pointer[doneSets]
	// cursorsHint is how many cursors the last call of cursors copied.
	cursorsHint atomic.Int32
}

func newPositions(sinkNames []string, st *checkpoint.State, m *metrics, log *slog.Logger, b *bell) *positions {
	p := &positions{sinks: sinkNames, m: m, log: log, bell: b, rows: make(map[uint64]map[string]checkpoint.Cursor, len(st.Files))}
	for _, f := range st.Files {
		row := make(map[string]checkpoint.Cursor, len(sinkNames))
		for _, s := range sinkNames {
			if c, ok := f.Cursors[s]; ok {
				row[s] = c
			}
		}
		p.rows[f.Seq] = row
	}
	p.loadNotices(st.Notices)
	p.publishDoneLocked()
	return p
}

// cursor returns sink's acknowledged position in the file seq.
func (p *positions) cursor(seq uint64, sink string) checkpoint.Cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rows[seq][sink]
}

// ack records that sink acknowledged segs: each file's cursor moves to
// the segment's end if that is further, and to done when the segment
// finished the file. It reports whether some file became done for sink.
func (p *positions) ack(sink string, segs []sinks.Segment) (finished bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delivered = true
	for _, s := range segs {
		row := p.rows[s.File.Seq]
		if row == nil {
			row = make(map[string]checkpoint.Cursor, len(p.sinks))
			p.rows[s.File.Seq] = row
		}
		c := row[sink]
		if s.End > c.Offset {
			c.Offset = s.End
		}
		if s.LastEventTime != "" {
			c.LastEventTime = s.LastEventTime
		}
		if s.Done && !c.Done {
			c.Done = true
			finished = true
		}
		row[sink] = c
	}
	if finished {
		p.publishDoneLocked()
	}
	p.dirty = true
	return finished
}

// skipTo sets every sink's cursor in the files of cs, for a first start
// that begins at the end of the files on disk; before any reader starts.
func (p *positions) skipTo(cs map[uint64]checkpoint.Cursor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for seq, c := range cs {
		row := make(map[string]checkpoint.Cursor, len(p.sinks))
		for _, s := range p.sinks {
			row[s] = c
		}
		p.rows[seq] = row
	}
	p.publishDoneLocked()
	p.dirty = true
}

// forget drops the rows of files no longer tracked.
func (p *positions) forget(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, seq := range seqs {
		delete(p.rows, seq)
	}
	p.publishDoneLocked()
}

// doneSets are the files finished, by sink and by every sink. A set is
// replaced, never changed, so it is read without the lock.
type doneSets struct {
	bySink map[string]map[uint64]bool
	all    map[uint64]bool
	// gen orders the sets: a later one has a higher gen.
	gen uint64
}

// publishDoneLocked replaces the done sets after a file was finished or
// forgotten.
func (p *positions) publishDoneLocked() {
	d := &doneSets{bySink: make(map[string]map[uint64]bool, len(p.sinks)), all: make(map[uint64]bool)}
	if old := p.done.Load(); old != nil {
		d.gen = old.gen + 1
	}
	for _, s := range p.sinks {
		d.bySink[s] = make(map[uint64]bool)
	}
	for seq, row := range p.rows {
		all := true
		for _, s := range p.sinks {
			if row[s].Done {
				d.bySink[s][seq] = true
			} else {
				all = false
			}
		}
		if all {
			d.all[seq] = true
		}
	}
	p.done.Store(d)
}

// finished returns the files finished. The sets must not be changed.
func (p *positions) finished() *doneSets { return p.done.Load() }

// doneBy returns the seqs of the files sink finished. The set must not be
// changed.
func (p *positions) doneBy(sink string) map[uint64]bool { return p.done.Load().bySink[sink] }

// lastEvents returns, for each file of seqs, the time of the latest event
// any sink acknowledged from it; files without one are left out.
func (p *positions) lastEvents(seqs []uint64) map[uint64]time.Time {
	var raw []seqCursor
	p.mu.Lock()
	for _, seq := range seqs {
		for s, c := range p.rows[seq] {
			raw = append(raw, seqCursor{seq, s, c})
		}
	}
	p.mu.Unlock()
	out := make(map[uint64]time.Time, len(seqs))
	for _, r := range raw {
		if t, err := time.Parse(time.RFC3339Nano, r.c.LastEventTime); err == nil && t.After(out[r.seq]) {
			out[r.seq] = t
		}
	}
	return out
}

// rowsSnapshot is a copy of the table for a checkpoint.
type rowsSnapshot struct {
	rows    map[uint64]map[string]checkpoint.Cursor
	notices []checkpoint.Notice
	dirty   bool
}

// snapshot copies the table, and whether it changed since the last
// snapshot.
func (p *positions) snapshot() rowsSnapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := rowsSnapshot{rows: make(map[uint64]map[string]checkpoint.Cursor, len(p.rows)), notices: p.exportNoticesLocked(), dirty: p.dirty}
	for seq, row := range p.rows {
		s.rows[seq] = maps.Clone(row)
	}
	p.dirty = false
	return s
}

// seqCursor is a sink's cursor in the file seq.
type seqCursor struct {
	seq  uint64
	sink string
	c    checkpoint.Cursor
}

// cursors returns a copy of every cursor, keyed by file seq and sink.
func (p *positions) cursors() map[seqSink]checkpoint.Cursor {
	flat := make([]seqCursor, 0, p.cursorsHint.Load()+2*int32(len(p.sinks))) // rarely grown with the lock held
	p.mu.Lock()
	p.cursorsHint.Store(int32(len(p.rows) * len(p.sinks)))
	for seq, row := range p.rows {
		for s, c := range row {
			flat = append(flat, seqCursor{seq, s, c})
		}
	}
	p.mu.Unlock()
	out := make(map[seqSink]checkpoint.Cursor, len(flat))
	for _, sc := range flat {
		out[seqSink{sc.seq, sc.sink}] = sc.c
	}
	return out
}

// seqSink names a sink's cursor in a file.
type seqSink struct {
	seq  uint64
	sink string
}

// markDirty makes the next snapshot report a change, so a failed commit
// is tried again.
func (p *positions) markDirty() {
	p.mu.Lock()
	p.dirty = true
	p.mu.Unlock()
}

// shipping reports whether some sink acknowledged a batch since the start.
func (p *positions) shipping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered
}

// waiting reports whether some notice waits for a sink.
func (p *positions) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.notices) > 0
}

// deliveredGen records that sink's journal holds every delivery up to gen;
// called after the position table acknowledged them.
func (p *positions) deliveredGen(sink string, gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gens == nil {
		p.gens = make(map[string]uint64)
	}
	p.gens[sink] = gen
}

// deliveredGens returns, per sink, the last delivery the table
// acknowledged: a snapshot taken after it holds all of them.
func (p *positions) deliveredGens() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.gens)
}
