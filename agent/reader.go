package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/rules"
)

// reader follows the audit files for one sink at that sink's own cursor:
// it reads them through a framer (or takes their lines from shared
// blocks), has its builder make records of what it finds, and hands the
// batches to the writer.
type reader struct {
	sink  string
	reg   *registry
	log   *slog.Logger
	now   func() time.Time
	batch BatchOptions
	poll  time.Duration
	// changed rings when the files or the notices may have changed, grown
	// when the live file grew; see wait.
	changed, grown <-chan struct{}
	// readInterval is how often at most a caught-up reader reads what was
	// appended while its batch fills (see wait).
	readInterval time.Duration
	out          chan<- *batchBuf
	free         <-chan *batchBuf

	cur     *batchBuf
	fr      framer.Framer
	maxLine int
	build   *builder
	// inDoubt is the intent the journal held at start without an outcome:
	// the first batch is cut again from it (see recut). recutting is set
	// meanwhile: batches are not flushed. from holds where reading goes on
	// in a file the re-cut batch ends in.
	inDoubt   *journal.Intent
	recutting bool
	from      map[uint64]int64
	// blocks, when set, shares read and parsed lines with the other
	// sinks' readers.
	blocks *blockCache
	// open returns the source of a file's content from an offset on:
	// openSource.
	open func(h *handle, off int64) (framer.Source, error)

	// heartbeat is how long the sink may go without a record before the
	// reader sends a heartbeat record; 0 disables them. lastAdded is when
	// the reader last put a record in a batch.
	heartbeat time.Duration
	lastAdded time.Time
	// noticeGen is the registry's notice count when last looked at.
	noticeGen uint64
}

// readInterval is how often at most a reader that is caught up with the
// live file reads it again while its batch fills. kube-apiserver writes
// each event as it happens, and every write would otherwise have every
// sink's reader read a few KB, frame them and wait again (100 writes a
// second are 300 reads). Reads are paced by the clock, not by each
// reader's last read, so that the readers read the same appends together
// and share one block of them. Latency does not grow with it: the first
// lines of a batch are read at once (they start its flush clock), and a
// due batch is read up to the end of the file before it is handed on;
// only the lines after a batch filled up wait up to readInterval. 200 ms
// reads about a megabyte at 5 MB/s, four blocks, where lines come in
// every 10 ms: 5 reads a second instead of 100, and at most a fifth of
// the usual 1 s flush interval.
const readInterval = 200 * time.Millisecond

func newReader(sink string, reg *registry, m *metrics, o readerOptions) *reader {
	changed, grown := reg.subscribe()
	return &reader{
		sink: sink, reg: reg, log: o.log, now: o.now, maxLine: o.maxLine, batch: o.batch, poll: o.poll,
		changed: changed, grown: grown, readInterval: readInterval, out: o.out, free: o.free,
		build:     newBuilder(sink, reg, m, o),
		heartbeat: o.heartbeat,
		lastAdded: o.now(),
		blocks:    o.blocks,
		open:      openSource,
	}
}

type readerOptions struct {
	log     *slog.Logger
	now     func() time.Time
	maxLine int
	batch   BatchOptions
	poll    time.Duration
	out     chan<- *batchBuf
	free    <-chan *batchBuf
	redact  bool
	drop    []DropRule
	tag     *rules.Set
	// lineSums: the sink keys events by their line's SHA-256 (see
	// SinkOptions.LineSums).
	lineSums bool
	// heartbeat is the idle time after which a heartbeat record is sent.
	heartbeat time.Duration
	// blocks is shared by every sink's reader; nil with a single sink.
	blocks *blockCache
}

// run reads until ctx is done, then hands the partial batch to the writer
// (giving up if drain ends first) and closes the output.
func (r *reader) run(ctx, drain context.Context) {
	defer close(r.out)
	if !r.takeBatch(drain) {
		return
	}
	var after uint64
	if r.inDoubt != nil {
		after, _ = r.recut(drain, r.inDoubt)
		r.inDoubt = nil
		if !r.cur.empty() && !r.flush(drain) {
			return
		}
	}
	for ctx.Err() == nil {
		if !r.addNotices(drain) {
			break
		}
		e := r.reg.next(r.sink, after)
		if e == nil {
			if !r.wait(ctx, drain) {
				break
			}
			continue
		}
		if !r.readFile(ctx, drain, e) {
			break
		}
		after = e.ref.Seq
	}
	if !r.cur.empty() {
		r.flush(drain)
	}
}

func (r *reader) takeBatch(drain context.Context) bool {
	select {
	case b := <-r.free:
		r.cur = b
		return true
	case <-drain.Done():
		return false
	}
}

// flush hands the current batch to the writer and takes a fresh one.
func (r *reader) flush(drain context.Context) bool {
	r.cur.sealSegment()
	if len(r.cur.Records) > 0 {
		r.lastAdded = r.now()
	}
	select {
	case r.out <- r.cur:
	case <-drain.Done():
		return false
	}
	r.cur = nil
	return r.takeBatch(drain)
}

// wait blocks until there may be something to do, and returns false when
// reading must stop. The reader is caught up: it read to the end of what
// the files hold, or found no file. It reads again at once when the files
// or the notices may have changed (a rotation, a truncation, a file gone)
// and when the poll interval passed. An append to the live file is read at
// once when the batch is empty; while the batch fills, appends wait for
// the next multiple of readInterval or for the batch to be due, whichever
// comes first. A due batch is flushed when wait is called, after the read
// that follows its deadline.
func (r *reader) wait(ctx, drain context.Context) bool {
	if !r.addNotices(drain) {
		return false
	}
	if r.heartbeat > 0 && r.cur.empty() && r.now().Sub(r.lastAdded) >= r.heartbeat {
		r.build.heartbeat(r.cur, r.lastAdded)
		return r.flush(drain)
	}
	var due <-chan time.Time
	if !r.cur.empty() {
		d := r.batch.FlushInterval - r.now().Sub(r.cur.started)
		if d <= 0 {
			return r.flush(drain)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		due = t.C
	}
	poll := time.NewTimer(r.poll)
	if r.heartbeat > 0 {
		poll.Reset(min(r.poll, max(r.heartbeat-r.now().Sub(r.lastAdded), time.Millisecond)))
	}
	defer poll.Stop()
	grown := r.grown
	var tick <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return false
		case <-r.changed:
		case <-grown:
			if !r.cur.empty() {
				// Read with the other readers at the next tick; until
				// then, further appends change nothing.
				now := r.now()
				t := time.NewTimer(now.Truncate(r.readInterval).Add(r.readInterval).Sub(now))
				defer t.Stop()
				grown, tick = nil, t.C
				continue
			}
		case <-tick:
		case <-poll.C:
		case <-due:
			// Read what was appended since the last read, then flush.
		}
		// What was appended before this read is read: forget it.
		select {
		case <-r.grown:
		default:
		}
		return true
	}
}

// readFile ships e from the sink's cursor to its end. It returns true when
// the file is finished (read to the end of a final file, or reported as a
// gap) and false when reading must stop first.
func (r *reader) readFile(ctx, drain context.Context, e *entry) bool {
	off := max(r.reg.pos.cursor(e.ref.Seq, r.sink).Offset, r.from[e.ref.Seq])
	r.log.Debug("reading file", "sink", r.sink, "file", e.ref.ID, "offset", off)
	h := r.reg.files.acquire(e)
	for h == nil {
		if v := r.reg.view(e, r.sink); v.gone || v.lost != "" {
			return r.gap(drain, e, off, v)
		}
		// Present but not openable right now (permissions, a rotation in
		// progress): try again after the next scan.
		if !r.wait(ctx, drain) {
			return false
		}
		h = r.reg.files.acquire(e)
	}
	defer func() { r.reg.files.release(h) }()
	src, err := r.open(h, off)
	if err != nil {
		r.log.Warn("cannot resume compressed audit file", "file", e.ref.ID, "offset", off, "err", err)
		v := r.reg.view(e, r.sink)
		v.lost = lostUnreadable
		return r.gap(drain, e, off, v)
	}
	r.fr.Reset(off, r.maxLine)
	for ctx.Err() == nil {
		if !r.addNotices(drain) {
			return false
		}
		v := r.reg.view(e, r.sink)
		if v.h != h && v.lost != "" {
			return r.gap(drain, e, r.fr.Pos(), v)
		}
		if v.h != nil && v.h != h && !v.h.gz {
			// Found again under another inode (a copy): continue there.
			r.reg.files.release(h)
			if h = r.reg.files.acquire(e); h == nil {
				return r.gap(drain, e, r.fr.Pos(), r.reg.view(e, r.sink))
			}
			src = plainSource{h}
		}
		n, ok, err := r.step(drain, e, src, h.gz)
		if !ok {
			return false
		}
		if n > 0 {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			r.log.Warn("read audit file", "file", e.ref.ID, "path", v.path, "err", err)
			if h.gz {
				v.lost = lostUnreadable
				return r.gap(drain, e, r.fr.Pos(), v)
			}
		}
		if v.window != nil && (v.final || v.gone) {
			r.shipRest(e)
			off, w := copyWindowView(v, v.window, r.fr.Pos())
			return r.gap(drain, e, off, w)
		}
		if v.final || v.gone || h.gz {
			return r.finish(drain, e)
		}
		if !r.wait(ctx, drain) {
			return false
		}
	}
	return false
}

// step turns the next lines of e at the reader's position into records:
// from a shared block when one holds them, else framed from the reader's
// own buffer. It returns how many bytes it read or took (0 at the end of
// what the file holds), false when reading must stop, and the read error.
func (r *reader) step(drain context.Context, e *entry, src framer.Source, gz bool) (int, bool, error) {
	fr := &r.fr
	shared := r.blocks != nil && !gz
	if shared && fr.AtLineStart() {
		if b, i := r.blocks.get(e, fr.Pos(), src); b != nil {
			before := fr.Pos()
			ok := r.consume(drain, e, b, i)
			b.release()
			return int(fr.Pos() - before), ok, nil
		}
	}
	n, err := fr.Fill(src)
	if n == 0 {
		return 0, true, err
	}
	if !shared {
		return n, r.frame(drain, e), err
	}
	// Frame alone only what no block holds (the end of a line read in
	// part before, a line above the block size, a hole), then read the
	// rest again with the next block rather than frame it alone: the
	// other readers share blocks, not this buffer.
	f := fr.Next()
	if f == nil {
		return n, true, err
	}
	r.build.frame(r.cur, e.ref, f)
	fr.Unread()
	if f.Kind != framer.Hole && r.full() && !r.flush(drain) {
		return n, false, err
	}
	return n, r.flushIfDue(drain), err
}

// frame makes records of the complete frames the framer holds.
func (r *reader) frame(drain context.Context, e *entry) bool {
	for f := r.fr.Next(); f != nil; f = r.fr.Next() {
		r.build.frame(r.cur, e.ref, f)
		if f.Kind != framer.Hole && r.full() && !r.flush(drain) {
			return false
		}
	}
	return r.flushIfDue(drain)
}

// consume makes records of the lines of b from the i-th on, as frame does,
// pointing into b's bytes rather than copying them: each batch that does
// holds b until it is reset.
func (r *reader) consume(drain context.Context, e *entry, b *block, i int) bool {
	lines := r.build.blockLines(b)
	for ; i < len(lines); i++ {
		r.fr.Advance(r.build.blockLine(r.cur, e.ref, b, &lines[i]))
		if r.full() && !r.flush(drain) {
			return false
		}
	}
	return r.flushIfDue(drain)
}

// flushIfDue hands the batch to the writer if its flush interval has
// passed. It returns false when reading must stop.
func (r *reader) flushIfDue(drain context.Context) bool {
	if !r.cur.empty() && !r.recutting && r.now().Sub(r.cur.started) >= r.batch.FlushInterval {
		return r.flush(drain)
	}
	return true
}

func (r *reader) full() bool {
	return !r.recutting && (len(r.cur.Records) >= r.batch.MaxEvents || r.cur.Bytes >= r.batch.MaxBytes)
}

// addNotices puts the registry's notices this sink has not been handed
// into the batch. It returns false when reading must stop.
func (r *reader) addNotices(drain context.Context) bool {
	gen := r.reg.pos.noticeGen.Load()
	if gen == r.noticeGen {
		return true
	}
	r.noticeGen = gen
	for _, n := range r.reg.pos.takeNotices(r.sink) {
		r.build.notice(r.cur, n)
		if r.full() && !r.flush(drain) {
			return false
		}
	}
	return true
}

// finish ships what is left of a final file (a last line without newline)
// and marks the file done.
func (r *reader) finish(drain context.Context, e *entry) bool {
	r.shipRest(e)
	r.cur.touch(r.now)
	r.cur.extend(e.ref, r.fr.Pos(), r.fr.Pos()).Done = true
	if r.full() {
		return r.flush(drain)
	}
	return true
}

// shipRest ships the last line of a final file, one without a newline.
func (r *reader) shipRest(e *entry) {
	if f := r.fr.Rest(); f != nil {
		r.build.rest(r.cur, e.ref, f)
	}
}

// gap reports that e could not be read from off on, and marks it done.
func (r *reader) gap(drain context.Context, e *entry, off int64, v fileView) bool {
	reason := v.lost
	if reason == "" {
		reason = lostPruned
	}
	if v.final && v.size > 0 && off >= v.size && reason == lostPruned {
		// Everything the file ever held was read: nothing is missing.
		r.cur.touch(r.now)
		r.cur.extend(e.ref, off, off).Done = true
		return true
	}
	var before string
	if next := r.reg.next(r.sink, e.ref.Seq); next != nil {
		before = firstEventTime(r.reg, next)
	}
	r.build.gap(r.cur, e.ref, off, v, reason, before)
	r.cur.extend(e.ref, off, off).Done = true
	if r.full() {
		return r.flush(drain)
	}
	return true
}
