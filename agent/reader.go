package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	readBufSize     = 256 << 10
	stubPrefixBytes = 4 << 10
)

// reader follows the audit files for one sink at that sink's own cursor,
// frames complete lines and groups them into batches for the writer.
type reader struct {
	sink    string
	reg     *registry
	log     *slog.Logger
	now     func() time.Time
	maxLine int
	batch   BatchOptions
	poll    time.Duration
	wake    <-chan struct{}
	out     chan<- *batchBuf
	free    <-chan *batchBuf

	// malformedLogged is when a malformed line was last logged;
	// malformedHeld counts those not logged since.
	malformedLogged time.Time
	malformedHeld   int

	cur *batchBuf
	fr  framer
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

	redact bool
	// ev and scratch are where an event is redacted before the batch
	// keeps a copy.
	ev      auditjson.Event
	scratch []byte
	drop    []DropRule
	nDrop   []prometheus.Counter
	// tag, when set, matches events against detection rules and records
	// the ids of those they match.
	tag     *rules.Set
	matched []*rules.Rule

	// heartbeat is how long the sink may go without a record before the
	// reader sends a heartbeat record; 0 disables them. lastAdded is when
	// the reader last put a record in a batch.
	heartbeat time.Duration
	lastAdded time.Time
	// noticeGen is the registry's notice count when last looked at.
	noticeGen uint64

	nEvent, nUnparsed, nOversized, nGap, nEmpty prometheus.Counter
	lines                                       *prometheus.CounterVec
	malformed                                   *prometheus.CounterVec
	gaps                                        *prometheus.CounterVec
	gapBytes                                    prometheus.Counter
	nRedacted                                   prometheus.Counter
	nSealedBody, nSealedUnparsed                prometheus.Counter
	holeBytes                                   prometheus.Counter
}

func newReader(sink string, reg *registry, m *metrics, o readerOptions) *reader {
	return &reader{
		sink: sink, reg: reg, log: o.log, now: o.now, maxLine: o.maxLine, batch: o.batch, poll: o.poll,
		wake: reg.subscribe(), out: o.out, free: o.free,
		nEvent:          m.lines.WithLabelValues(sink, sinks.KindEvent.String()),
		nUnparsed:       m.lines.WithLabelValues(sink, sinks.KindUnparsed.String()),
		nOversized:      m.lines.WithLabelValues(sink, sinks.KindOversized.String()),
		nGap:            m.lines.WithLabelValues(sink, sinks.KindGap.String()),
		lines:           m.lines.MustCurryWith(prometheus.Labels{"sink": sink}),
		nEmpty:          m.emptyLines.WithLabelValues(sink),
		malformed:       m.malformed.MustCurryWith(prometheus.Labels{"sink": sink}),
		gaps:            m.gaps.MustCurryWith(prometheus.Labels{"sink": sink}),
		gapBytes:        m.gapBytes.WithLabelValues(sink),
		nRedacted:       m.redacted.WithLabelValues(sink),
		nSealedBody:     m.unredactable.WithLabelValues(sink, "body"),
		nSealedUnparsed: m.unredactable.WithLabelValues(sink, "unparsed"),
		holeBytes:       m.holeBytes.WithLabelValues(sink),
		redact:          o.redact,
		drop:            o.drop,
		nDrop:           dropCounters(m, sink, o.drop),
		tag:             o.tag,
		heartbeat:       o.heartbeat,
		lastAdded:       o.now(),
		blocks:          o.blocks,
	}
}

func dropCounters(m *metrics, sink string, rules []DropRule) []prometheus.Counter {
	out := make([]prometheus.Counter, len(rules))
	for i, r := range rules {
		out[i] = m.dropped.WithLabelValues(sink, r.Name)
	}
	return out
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

// wait blocks until the files may have changed, the poll interval passed,
// or the current batch is due. It returns false when reading must stop.
func (r *reader) wait(ctx, drain context.Context) bool {
	if !r.addNotices(drain) {
		return false
	}
	if r.heartbeat > 0 && r.cur.empty() && r.now().Sub(r.lastAdded) >= r.heartbeat {
		r.addHeartbeat()
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
	select {
	case <-ctx.Done():
		return false
	case <-r.wake:
	case <-poll.C:
	case <-due:
		return r.flush(drain)
	}
	return true
}

// source reads a file's uncompressed content.
type source interface {
	read(p []byte, off int64) (int, error)
}

type plainSource struct{ h *handle }

func (s plainSource) read(p []byte, off int64) (int, error) { return s.h.f.ReadAt(p, off) }

type gzipSource struct{ zr *gzip.Reader }

func (s gzipSource) read(p []byte, _ int64) (int, error) { return s.zr.Read(p) }

// openSource positions a source at off.
func openSource(h *handle, off int64) (source, error) {
	if !h.gz {
		return plainSource{h}, nil
	}
	zr, err := gzip.NewReader(io.NewSectionReader(h.f, 0, 1<<62))
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, zr, off); err != nil {
		return nil, err
	}
	return gzipSource{zr}, nil
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
	src, err := openSource(h, off)
	if err != nil {
		r.log.Warn("cannot resume compressed audit file", "file", e.ref.ID, "offset", off, "err", err)
		v := r.reg.view(e, r.sink)
		v.lost = lostUnreadable
		return r.gap(drain, e, off, v)
	}
	r.fr.reset(off, r.maxLine)
	for ctx.Err() == nil {
		if !r.addNotices(drain) {
			return false
		}
		v := r.reg.view(e, r.sink)
		if v.h != h && v.lost != "" {
			return r.gap(drain, e, r.fr.pos, v)
		}
		if v.h != nil && v.h != h && !v.h.gz {
			// Found again under another inode (a copy): continue there.
			r.reg.files.release(h)
			if h = r.reg.files.acquire(e); h == nil {
				return r.gap(drain, e, r.fr.pos, r.reg.view(e, r.sink))
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
				return r.gap(drain, e, r.fr.pos, v)
			}
		}
		if v.window != nil && (v.final || v.gone) {
			r.shipRest(e)
			off, w := copyWindowView(v, v.window, r.fr.pos)
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
func (r *reader) step(drain context.Context, e *entry, src source, gz bool) (int, bool, error) {
	fr := &r.fr
	shared := r.blocks != nil && !gz
	if shared && fr.start == fr.end && fr.over == nil {
		if b, i := r.blocks.get(e, fr.pos, src); b != nil {
			before := fr.pos
			ok := r.consume(drain, e, b, i)
			b.release()
			return int(fr.pos - before), ok, nil
		}
	}
	n, err := fr.fill(src)
	if n == 0 {
		return 0, true, err
	}
	before := fr.pos
	if !r.frame(drain, e) {
		return n, false, err
	}
	if shared && fr.over == nil && fr.pos > before && fr.end-fr.start < blockSize/2 {
		// Only the start of a line is left: read it again with the next
		// block rather than frame the rest of the file alone.
		fr.start, fr.end = 0, 0
	}
	return n, true, err
}

// frame turns the complete lines in the buffer into records.
func (r *reader) frame(drain context.Context, e *entry) bool {
	fr := &r.fr
	for {
		data := fr.buf[fr.start:fr.end]
		if fr.over == nil && len(data) > 0 && data[0] == 0 {
			// NUL bytes where a line should start: the hole a writer
			// without O_APPEND leaves after the file was truncated under
			// it (kube-apiserver's lumberjack opens new files that way).
			// They hold nothing; the truncation itself is reported.
			n := 0
			for n < len(data) && data[n] == 0 {
				n++
			}
			start := fr.pos
			fr.skip(n)
			r.touch()
			r.cur.extend(e.ref, start, fr.pos)
			r.holeBytes.Add(float64(n))
			continue
		}
		i := bytes.IndexByte(data, '\n')
		if fr.over == nil && (i > fr.maxLine || (i < 0 && len(data) > fr.maxLine)) {
			fr.startOver() // the line at fr.pos is above the limit
		}
		if fr.over != nil {
			// Inside a line above the limit: hash it, keep nothing.
			if i < 0 {
				fr.absorb(data)
				fr.start, fr.end = 0, 0
				break
			}
			fr.absorb(data[:i])
			r.addOversized(e, true)
			fr.skip(i + 1)
			fr.pos = fr.overStart + fr.overSize + 1
			r.cur.extend(e.ref, fr.overStart, fr.pos)
			fr.over = nil
		} else {
			if i < 0 {
				break
			}
			start := fr.pos
			fr.skip(i + 1)
			if i == 0 {
				r.nEmpty.Inc()
				r.touch()
				r.cur.extend(e.ref, start, fr.pos)
			} else {
				r.addLine(e, start, data[:i], "")
				r.cur.extend(e.ref, start, fr.pos)
			}
		}
		if r.full() && !r.flush(drain) {
			return false
		}
	}
	return r.flushIfDue(drain)
}

// consume turns the lines of b from the i-th on into records, as frame
// does, pointing into b's bytes rather than copying them: each batch that
// does holds b until it is reset.
func (r *reader) consume(drain context.Context, e *entry, b *block, i int) bool {
	lines := b.lines
	if r.tag != nil && r.tag == r.blocks.tag {
		lines = b.tagged(r.tag)
	}
	for ; i < len(lines); i++ {
		l := &lines[i]
		start := b.start + int64(l.off)
		r.touch()
		if l.n == 0 {
			r.nEmpty.Inc()
		} else {
			cur := r.cur
			cur.hold(b)
			cur.Records = append(cur.Records, sinks.Record{Line: l.line(b), Kind: sinks.KindEvent, Event: &l.ev, File: e.ref, Offset: start})
			cur.Bytes += l.n
			rec := &cur.Records[len(cur.Records)-1]
			if r.keep(rec, l.err, "") {
				var tags []string
				switch {
				case r.tag == nil:
				case r.tag == r.blocks.tag:
					tags = l.rules // set by b.tagged
				default:
					tags, r.matched = ruleIDs(r.tag, rec.Line, rec.Event, r.matched)
				}
				r.finishEvent(e, start, rec, l.secret, tags)
			}
		}
		r.cur.extend(e.ref, start, start+int64(l.n)+1)
		r.fr.pos = start + int64(l.n) + 1
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

// touch starts the batch's flush clock.
func (r *reader) touch() {
	if r.cur.started.IsZero() {
		r.cur.started = r.now()
	}
}

func (r *reader) add(e *entry, off int64, line []byte, kind sinks.Kind) *sinks.Record {
	return r.addRecord(e.ref, off, line, kind)
}

func (r *reader) addRecord(ref *sinks.FileRef, off int64, line []byte, kind sinks.Kind) *sinks.Record {
	r.touch()
	b := r.cur
	b.Records = append(b.Records, sinks.Record{Line: b.store(line), Kind: kind, File: ref, Offset: off})
	b.Bytes += len(line)
	return &b.Records[len(b.Records)-1]
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
		r.addRecord(n.ref, 0, n.line, n.kind)
		r.cur.notices = append(r.cur.notices, n)
		r.lines.WithLabelValues(n.kind.String()).Inc()
		if r.full() && !r.flush(drain) {
			return false
		}
	}
	return true
}

// addHeartbeat puts a heartbeat record into the (empty) batch.
func (r *reader) addHeartbeat() {
	now := r.now()
	hb := sinks.HeartbeatRecord{Kind: sinks.HeartbeatRecordKind, APIVersion: sinks.RecordAPIVersion, Sink: r.sink, At: timestamp(now), IdleSince: timestamp(r.lastAdded)}
	ref := &sinks.FileRef{ID: newNoticeID(sinks.KindHeartbeat, now)}
	r.addRecord(ref, 0, marshalRecord(hb), sinks.KindHeartbeat)
	r.lines.WithLabelValues(sinks.KindHeartbeat.String()).Inc()
}

// redactSecrets replaces rec's line by one whose credential values are
// digests (see internal/redact). A body that cannot be redacted is
// replaced by a marker with its SHA-256 instead: never shipped whole.
func (r *reader) redactSecrets(rec *sinks.Record) {
	r.ev = *rec.Event
	out, res := redact.Event(r.scratch[:0], rec.Line, &r.ev)
	if r.scratch = out[:0]; cap(out) > maxScratch {
		r.scratch = nil
	}
	if !res.Changed() {
		return
	}
	line := r.cur.store(out)
	ev := r.cur.newEvent()
	*ev = r.ev
	ev.Rebase(out, line, func(off int) int { return off })
	r.cur.Bytes += len(line) - len(rec.Line)
	sum := sha256.Sum256(rec.Line) // keys stay those of the line on disk
	rec.Sum = &sum
	rec.Line, rec.Event = line, ev
	r.nRedacted.Add(float64(res.Values))
	if res.Sealed > 0 {
		r.sealedBody(rec)
	}
}

// maxScratch is the largest redaction buffer a reader keeps for the next
// event.
const maxScratch = 1 << 20

// sealedBody counts and logs an event shipped with a body replaced by a
// marker, and reports the first one of the run to every sink (and so to
// the alert destinations) as a tamper record. Neither the log nor the
// record holds any of the body.
func (r *reader) sealedBody(rec *sinks.Record) {
	r.nSealedBody.Inc()
	r.log.Warn("an event body that had to be redacted could not be; shipped with a marker and its SHA-256 in its place",
		"sink", r.sink, "file", rec.File.ID, "offset", rec.Offset)
	if !r.reg.pos.sealedNoticed.CompareAndSwap(false, true) {
		return
	}
	now := r.now()
	detail := fmt.Sprintf("an event body that had to be redacted could not be (the first this run: file %s, offset %d, resource %q); "+
		"sinks that redact secrets received a marker with its SHA-256 in its place, the others the original. "+
		"Later ones are counted in auditrail_redaction_sealed_total", rec.File.ID, rec.Offset, rec.Event.Resource)
	r.reg.pos.notify(sinks.KindTamper, newTamper(sinks.TamperUnredactable, detail, now), now)
}

// addLine ships a line: as an event if it parses, else as unparsed,
// counted under reason (by default, why it does not parse).
func (r *reader) addLine(e *entry, off int64, line []byte, reason string) {
	rec := r.add(e, off, line, sinks.KindEvent)
	rec.Event = r.cur.newEvent()
	if !r.keep(rec, auditjson.Parse(rec.Line, rec.Event), reason) {
		return
	}
	var tags []string
	if r.tag != nil {
		tags, r.matched = ruleIDs(r.tag, rec.Line, rec.Event, r.matched)
	}
	r.finishEvent(e, off, rec, r.redact && redact.Candidate(rec.Line, rec.Event), tags)
}

// malformedLogEvery is how often at most a reader logs a malformed line;
// the ones in between are counted in the next log.
const malformedLogEvery = 10 * time.Second

// logMalformed logs where rec, a line that is not an event, is: its file,
// path and offset, never its bytes, which a client may have chosen and
// which may hold secrets. At most one line per malformedLogEvery is
// logged, with how many more there were since the last.
func (r *reader) logMalformed(rec *sinks.Record, reason string) {
	now := r.now()
	if !r.malformedLogged.IsZero() && now.Sub(r.malformedLogged) < malformedLogEvery {
		r.malformedHeld++
		return
	}
	r.log.Warn("line is not an audit event; shipped unparsed", "sink", r.sink, "reason", reason,
		"file", rec.File.ID, "path", rec.File.Path, "offset", rec.Offset, "size", len(rec.Line),
		"notLoggedSinceLast", r.malformedHeld)
	r.malformedLogged, r.malformedHeld = now, 0
}

// keep counts rec, the record of a line parsed with the result err, and
// reports whether it is an event to finish with finishEvent: a line that
// did not parse is shipped as unparsed (as a stub to a sink that redacts,
// unless it has nothing of JSON), and an event a drop rule matches is
// taken out of the batch.
func (r *reader) keep(rec *sinks.Record, err error, reason string) bool {
	if err != nil {
		rec.Kind, rec.Event = sinks.KindUnparsed, nil
		r.nUnparsed.Inc()
		if reason == "" {
			reason = malformedReason(err)
		}
		r.malformed.WithLabelValues(reason).Inc()
		r.logMalformed(rec, reason)
		if r.redact && mayHoldEvent(rec.Line) {
			r.stubUnparsed(rec, reason)
		}
		return false
	}
	r.nEvent.Inc()
	for i := range r.drop {
		if r.drop[i].matches(rec.Event) {
			// Not shipped; the batch's segment still covers the line, so
			// the cursor moves past it.
			r.nDrop[i].Inc()
			r.cur.dropLast()
			return false
		}
	}
	return true
}

// finishEvent tags the kept event rec with the ids of the rules it
// matches (nil unless the sink tags records), redacts it if it may hold
// secrets and the sink redacts, and records its time on the segment.
func (r *reader) finishEvent(e *entry, off int64, rec *sinks.Record, secret bool, rules []string) {
	rec.Rules = rules
	if r.redact && secret {
		r.redactSecrets(rec)
	}
	if len(rec.Event.StageTimestamp) > 0 {
		if n := len(r.cur.Segments); n == 0 || r.cur.Segments[n-1].File != e.ref {
			r.cur.extend(e.ref, off, off) // open the segment so the time lands on it
		}
		r.cur.lastTS = rec.Event.StageTimestamp
	}
}

// ruleIDs returns the ids of the rules of set that an event matches, and
// buf, which holds the matches, for reuse. Rate rules are left to the
// alert destinations, which see the events before.
func ruleIDs(set *rules.Set, line []byte, ev *auditjson.Event, buf []*rules.Rule) ([]string, []*rules.Rule) {
	buf = set.Match(line, ev, false, buf[:0])
	if len(buf) == 0 {
		return nil, buf
	}
	ids := make([]string, len(buf))
	for i, m := range buf {
		ids[i] = m.ID
	}
	return ids, buf
}

// mayHoldEvent reports whether an unparsed line may be part of an audit
// event, and so hold credentials that cannot be redacted: whether it has
// a JSON string or object in it.
func mayHoldEvent(line []byte) bool {
	return bytes.IndexByte(line, '"') >= 0 || bytes.IndexByte(line, '{') >= 0
}

// stubUnparsed replaces the line of rec, unparsed, by a stub that says
// what it was: its size, SHA-256 and auditID if one is found.
func (r *reader) stubUnparsed(rec *sinks.Record, reason string) {
	sum := sha256.Sum256(rec.Line)
	stub := sinks.UnparsedStub{
		Kind: sinks.UnparsedStubKind, APIVersion: sinks.RecordAPIVersion, Reason: reason,
		AuditID: string(auditjson.FindAuditID(rec.Line[:min(len(rec.Line), stubPrefixBytes)])),
		Size:    len(rec.Line), SHA256: hex.EncodeToString(sum[:]),
		File: sinks.FileInfo{ID: rec.File.ID, Path: rec.File.Path}, Offset: rec.Offset, ReadAt: timestamp(r.now()),
	}
	line := r.cur.store(marshalRecord(stub))
	r.cur.Bytes += len(line) - len(rec.Line)
	rec.Line = line
	r.nSealedUnparsed.Inc()
}

func malformedReason(err error) string {
	switch {
	case errors.Is(err, auditjson.ErrInvalidUTF8):
		return "invalid_utf8"
	case errors.Is(err, auditjson.ErrNUL):
		return "nul_byte"
	case errors.Is(err, auditjson.ErrCRLF):
		return "crlf"
	}
	return "not_json"
}

func (r *reader) addOversized(e *entry, complete bool) {
	fr := &r.fr
	stub := sinks.OversizedStub{
		Kind: sinks.OversizedStubKind, APIVersion: sinks.RecordAPIVersion, AuditID: string(auditjson.FindAuditID(fr.overPrefix)),
		Size: fr.overSize, Limit: r.maxLine, SHA256: hex.EncodeToString(fr.over.Sum(nil)), Complete: complete,
		File: sinks.FileInfo{ID: e.ref.ID, Path: e.ref.Path}, Offset: fr.overStart, ReadAt: timestamp(r.now()),
	}
	r.add(e, fr.overStart, marshalRecord(stub), sinks.KindOversized)
	r.nOversized.Inc()
	r.log.Warn("line above the size limit shipped as a stub", "sink", r.sink, "file", e.ref.ID,
		"offset", fr.overStart, "size", fr.overSize, "auditID", stub.AuditID)
}

// finish ships what is left of a final file (a last line without newline)
// and marks the file done.
func (r *reader) finish(drain context.Context, e *entry) bool {
	r.shipRest(e)
	r.touch()
	r.cur.extend(e.ref, r.fr.pos, r.fr.pos).Done = true
	if r.full() {
		return r.flush(drain)
	}
	return true
}

// shipRest ships the last line of a final file, one without a newline.
func (r *reader) shipRest(e *entry) {
	fr := &r.fr
	if fr.over != nil {
		r.addOversized(e, false)
		fr.over = nil
		fr.pos = fr.overStart + fr.overSize
	} else if fr.end > fr.start {
		// Shipped like any line: an event if it is a whole one, redacted
		// as any; else unparsed.
		line := fr.buf[fr.start:fr.end]
		r.addLine(e, fr.pos, line, "no_newline")
		fr.skip(len(line))
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
		r.touch()
		r.cur.extend(e.ref, off, off).Done = true
		return true
	}
	var g sinks.GapRecord
	g.Kind, g.APIVersion, g.Reason, g.Sink = sinks.GapRecordKind, sinks.RecordAPIVersion, string(reason), r.sink
	g.DetectedAt = timestamp(r.now())
	g.File = sinks.FileInfo{ID: e.ref.ID, Path: v.path}
	g.Bytes.From, g.Bytes.To, g.Bytes.ToKnown = off, max(off, v.size), v.final && reason == lostPruned
	if v.bound != nil && reason == lostPruned {
		applyBound(&g, v.bound, off, v.size)
	}
	g.Time.After = v.lastTime
	if next := r.reg.next(r.sink, e.ref.Seq); next != nil {
		g.Time.Before = r.firstEventTime(next)
	}
	r.add(e, off, marshalRecord(g), sinks.KindGap)
	r.cur.extend(e.ref, off, off).Done = true
	r.nGap.Inc()
	r.gaps.WithLabelValues(string(reason)).Inc()
	r.gapBytes.Add(float64(g.Bytes.To - g.Bytes.From))
	r.log.Error("audit data lost before this sink read it", "sink", r.sink, "reason", reason, "file", e.ref.ID,
		"path", v.path, "from", g.Bytes.From, "to", g.Bytes.To, "toKnown", g.Bytes.ToKnown,
		"atLeast", g.Bytes.AtLeast, "estimate", g.Bytes.Estimate, "after", g.Time.After, "before", g.Time.Before)
	if r.full() {
		return r.flush(drain)
	}
	return true
}

// firstEventTime returns the timestamp of the first event in e, if it can
// be read cheaply.
func (r *reader) firstEventTime(e *entry) string {
	h := r.reg.files.acquire(e)
	if h == nil {
		return ""
	}
	defer r.reg.files.release(h)
	src, err := openSource(h, 0)
	if err != nil {
		return ""
	}
	buf := make([]byte, 64<<10)
	var off int64
	n, _ := io.ReadFull(readerFunc(func(p []byte) (int, error) {
		n, err := src.read(p, off)
		off += int64(n)
		return n, err
	}), buf)
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	var ev auditjson.Event
	auditjson.Parse(line, &ev)
	if len(ev.RequestReceivedTimestamp) > 0 {
		return string(ev.RequestReceivedTimestamp)
	}
	return string(ev.StageTimestamp)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// framer holds unframed bytes: buf[start:end] starts at file offset pos.
// A line longer than maxLine switches it to hashing the line instead of
// keeping it (over != nil).
type framer struct {
	buf        []byte
	start, end int
	pos        int64
	maxLine    int

	over       hash.Hash
	overPrefix []byte
	overStart  int64
	overSize   int64
}

func (fr *framer) reset(off int64, maxLine int) {
	if cap(fr.buf) != readBufSize {
		fr.buf = make([]byte, readBufSize)
	}
	fr.buf = fr.buf[:readBufSize]
	fr.start, fr.end, fr.pos, fr.maxLine, fr.over = 0, 0, off, maxLine, nil
}

func (fr *framer) skip(n int) {
	fr.start += n
	fr.pos += int64(n)
	if fr.start == fr.end {
		fr.start, fr.end = 0, 0
		if len(fr.buf) > readBufSize {
			fr.buf = make([]byte, readBufSize) // give back a huge line's memory
		}
	}
}

// fill reads more bytes, making room first.
func (fr *framer) fill(src source) (int, error) {
	if fr.end == len(fr.buf) && fr.start > 0 {
		n := copy(fr.buf, fr.buf[fr.start:fr.end])
		fr.start, fr.end = 0, n
	}
	if fr.end == len(fr.buf) {
		if len(fr.buf) <= fr.maxLine {
			nb := make([]byte, min(2*len(fr.buf), fr.maxLine+1))
			copy(nb, fr.buf[:fr.end])
			fr.buf = nb
		} else {
			fr.beginOversized()
		}
	}
	readOff := fr.pos + int64(fr.end-fr.start)
	if fr.over != nil {
		readOff = fr.overStart + fr.overSize + int64(fr.end-fr.start)
	}
	n, err := src.read(fr.buf[fr.end:], readOff)
	fr.end += n
	return n, err
}

// startOver starts hashing the line at fr.pos, which is above the limit.
func (fr *framer) startOver() {
	fr.over = sha256.New()
	fr.overPrefix = fr.overPrefix[:0]
	fr.overStart = fr.pos
	fr.overSize = 0
}

// absorb adds data, the next bytes of the line above the limit, to its
// hash, keeping the first bytes for the stub's auditID.
func (fr *framer) absorb(data []byte) {
	fr.over.Write(data)
	if room := stubPrefixBytes - len(fr.overPrefix); room > 0 {
		fr.overPrefix = append(fr.overPrefix, data[:min(room, len(data))]...)
	}
	fr.overSize += int64(len(data))
}

// beginOversized switches to hashing the unframed bytes, which are the
// start of a line above the limit, and frees the buffer they took.
func (fr *framer) beginOversized() {
	fr.startOver()
	fr.absorb(fr.buf[fr.start:fr.end])
	fr.start, fr.end = 0, 0
	if len(fr.buf) > readBufSize {
		fr.buf = make([]byte, readBufSize)
	}
}
