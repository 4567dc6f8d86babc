package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// builder makes one sink's records, in the batch it is handed, of what the
// sink's reader finds: the framer's frames (a line is parsed into an event,
// dropped, tagged and redacted as the sink is configured, or shipped
// unparsed; a line above the limit becomes a stub; a hole nothing), the
// lines of shared blocks, gaps, notices and heartbeats. The direct path
// (frame) and the shared-block path (blockLine) build the same records from
// the same bytes. A builder neither reads files nor flushes batches; it
// counts and logs what it builds.
type builder struct {
	sink    string
	reg     *registry
	log     *slog.Logger
	now     func() time.Time
	maxLine int

	redact bool
	// ev and scratch are where an event is redacted before the batch
	// keeps a copy.
	ev      auditjson.Event
	scratch []byte
	drop    []DropRule
	nDrop   []prometheus.Counter
	// tag, when set, matches events against detection rules and records
	// the ids of those they match; shared is the rule set whose matches
	// shared blocks hold (see block.tagged).
	tag     *rules.Set
	shared  *rules.Set
	matched []*rules.Rule
	// sums: the sink keys events by the SHA-256 of their line; the
	// records of shared blocks' lines carry the block's (see
	// block.lineSum), the others are hashed by the sink (see
	// sinks.Record.LineSum).
	sums bool

	// malformedLogged is when a malformed line was last logged;
	// malformedHeld counts those not logged since.
	malformedLogged time.Time
	malformedHeld   int

	nEvent, nUnparsed, nOversized, nGap, nEmpty prometheus.Counter
	lines                                       *prometheus.CounterVec
	malformed                                   *prometheus.CounterVec
	gaps                                        *prometheus.CounterVec
	gapBytes                                    prometheus.Counter
	nRedacted                                   prometheus.Counter
	nSealedBody, nSealedUnparsed                prometheus.Counter
	holeBytes                                   prometheus.Counter
}

func newBuilder(sink string, reg *registry, m *metrics, o readerOptions) *builder {
	b := &builder{
		sink: sink, reg: reg, log: o.log, now: o.now, maxLine: o.maxLine,
		redact: o.redact, drop: o.drop, nDrop: dropCounters(m, sink, o.drop), tag: o.tag, sums: o.lineSums,
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
	}
	if o.blocks != nil {
		b.shared = o.blocks.tag
	}
	return b
}

func dropCounters(m *metrics, sink string, rules []DropRule) []prometheus.Counter {
	out := make([]prometheus.Counter, len(rules))
	for i, r := range rules {
		out[i] = m.dropped.WithLabelValues(sink, r.Name)
	}
	return out
}

// frame puts the records of f, a frame of file, into cur and makes cur
// cover it.
func (b *builder) frame(cur *batchBuf, file *sinks.FileRef, f *framer.Frame) {
	switch {
	case f.Kind == framer.Hole:
		// NUL bytes where a line should start: the hole a writer without
		// O_APPEND leaves after the file was truncated under it
		// (kube-apiserver's lumberjack opens new files that way). They
		// hold nothing; the truncation itself is reported.
		cur.touch(b.now)
		b.holeBytes.Add(float64(f.End - f.Start))
	case f.Kind == framer.Oversized:
		b.oversized(cur, file, f)
	case len(f.Bytes) == 0:
		b.nEmpty.Inc()
		cur.touch(b.now)
	default:
		b.line(cur, file, f.Start, f.Bytes, "")
	}
	cur.extend(file, f.Start, f.End)
}

// rest puts the record of f, the unfinished last line of a final file
// (see framer.Rest), into cur: shipped like any line, an event if it is a
// whole one, else unparsed. The segment is extended when the file is
// finished.
func (b *builder) rest(cur *batchBuf, file *sinks.FileRef, f *framer.Frame) {
	if f.Kind == framer.Oversized {
		b.oversized(cur, file, f)
		return
	}
	b.line(cur, file, f.Start, f.Bytes, "no_newline")
}

// blockLine puts the record of l, a line of the shared block blk, into
// cur, pointing into blk's bytes rather than copying them (cur holds blk
// until it is reset), and makes cur cover it; an event's record carries
// blk's sum of the line when the sink keys events by it. It returns the
// offset after the line.
func (b *builder) blockLine(cur *batchBuf, file *sinks.FileRef, blk *block, l *blockLine) int64 {
	start := blk.start + int64(l.off)
	end := start + int64(l.n) + 1
	cur.touch(b.now)
	if l.n == 0 {
		b.nEmpty.Inc()
	} else {
		cur.hold(blk)
		cur.Records = append(cur.Records, sinks.Record{Line: l.line(blk), Kind: sinks.KindEvent, Event: &l.ev, File: file, Offset: start})
		cur.Bytes += l.n
		rec := &cur.Records[len(cur.Records)-1]
		if b.keep(cur, rec, l.err, "") {
			if b.sums {
				rec.Sum = blk.lineSum(l)
			}
			var tags []string
			switch {
			case b.tag == nil:
			case b.tag == b.shared:
				tags = l.rules // set by blk.tagged
			default:
				tags, b.matched = ruleIDs(b.tag, rec.Line, rec.Event, b.matched)
			}
			b.finishEvent(cur, file, start, rec, l.secret, tags)
		}
	}
	cur.extend(file, start, end)
	return end
}

// blockLines returns blk's lines, with the rules of the sink's tag set
// when the block holds them.
func (b *builder) blockLines(blk *block) []blockLine {
	if b.tag != nil && b.tag == b.shared {
		return blk.tagged(b.tag)
	}
	return blk.lines
}

// add puts a record of line, copied, into cur.
func (b *builder) add(cur *batchBuf, file *sinks.FileRef, off int64, line []byte, kind sinks.Kind) *sinks.Record {
	cur.touch(b.now)
	cur.Records = append(cur.Records, sinks.Record{Line: cur.store(line), Kind: kind, File: file, Offset: off})
	cur.Bytes += len(line)
	return &cur.Records[len(cur.Records)-1]
}

// line ships a line: as an event if it parses, else as unparsed, counted
// under reason (by default, why it does not parse).
func (b *builder) line(cur *batchBuf, file *sinks.FileRef, off int64, line []byte, reason string) {
	rec := b.add(cur, file, off, line, sinks.KindEvent)
	rec.Event = cur.newEvent()
	if !b.keep(cur, rec, auditjson.Parse(rec.Line, rec.Event), reason) {
		return
	}
	var tags []string
	if b.tag != nil {
		tags, b.matched = ruleIDs(b.tag, rec.Line, rec.Event, b.matched)
	}
	b.finishEvent(cur, file, off, rec, b.redact && redact.Candidate(rec.Line, rec.Event), tags)
}

// keep counts rec, the record of a line parsed with the result err, and
// reports whether it is an event to finish with finishEvent: a line that
// did not parse is shipped as unparsed (as a stub to a sink that redacts,
// unless it has nothing of JSON), and an event a drop rule matches is
// taken out of the batch.
func (b *builder) keep(cur *batchBuf, rec *sinks.Record, err error, reason string) bool {
	if err != nil {
		rec.Kind, rec.Event = sinks.KindUnparsed, nil
		b.nUnparsed.Inc()
		if reason == "" {
			reason = malformedReason(err)
		}
		b.malformed.WithLabelValues(reason).Inc()
		b.logMalformed(rec, reason)
		if b.redact && mayHoldEvent(rec.Line) {
			b.stubUnparsed(cur, rec, reason)
		}
		return false
	}
	b.nEvent.Inc()
	for i := range b.drop {
		if b.drop[i].matches(rec.Event) {
			// Not shipped; the batch's segment still covers the line, so
			// the cursor moves past it.
			b.nDrop[i].Inc()
			cur.dropLast()
			return false
		}
	}
	return true
}

// finishEvent tags the kept event rec with the ids of the rules it
// matches (nil unless the sink tags records), redacts it if it may hold
// secrets and the sink redacts, and records its time on the segment.
func (b *builder) finishEvent(cur *batchBuf, file *sinks.FileRef, off int64, rec *sinks.Record, secret bool, rules []string) {
	rec.Rules = rules
	if b.redact && secret {
		b.redactSecrets(cur, rec)
	}
	if len(rec.Event.StageTimestamp) > 0 {
		if n := len(cur.Segments); n == 0 || cur.Segments[n-1].File != file {
			cur.extend(file, off, off) // open the segment so the time lands on it
		}
		cur.lastTS = rec.Event.StageTimestamp
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

// redactSecrets replaces rec's line by one whose credential values are
// digests (see internal/redact). A body that cannot be redacted is
// replaced by a marker with its SHA-256 instead: never shipped whole.
func (b *builder) redactSecrets(cur *batchBuf, rec *sinks.Record) {
	b.ev = *rec.Event
	out, res := redact.Event(b.scratch[:0], rec.Line, &b.ev)
	if b.scratch = out[:0]; cap(out) > maxScratch {
		b.scratch = nil
	}
	if !res.Changed() {
		return
	}
	line := cur.store(out)
	ev := cur.newEvent()
	*ev = b.ev
	ev.Rebase(out, line, func(off int) int { return off })
	cur.Bytes += len(line) - len(rec.Line)
	if rec.Sum == nil { // keys stay those of the line on disk
		sum := sha256.Sum256(rec.Line)
		rec.Sum = &sum
	}
	rec.Line, rec.Event = line, ev
	b.nRedacted.Add(float64(res.Values))
	if res.Sealed > 0 {
		b.sealedBody(rec)
	}
}

// maxScratch is the largest redaction buffer a builder keeps for the next
// event.
const maxScratch = 1 << 20

// sealedBody counts and logs an event shipped with a body replaced by a
// marker, and reports the first one of the run to every sink (and so to
// the alert destinations) as a tamper record. Neither the log nor the
// record holds any of the body.
func (b *builder) sealedBody(rec *sinks.Record) {
	b.nSealedBody.Inc()
	b.log.Warn("an event body that had to be redacted could not be; shipped with a marker and its SHA-256 in its place",
		"sink", b.sink, "file", rec.File.ID, "offset", rec.Offset)
	if !b.reg.pos.sealedNoticed.CompareAndSwap(false, true) {
		return
	}
	now := b.now()
	detail := fmt.Sprintf("an event body that had to be redacted could not be (the first this run: file %s, offset %d, resource %q); "+
		"sinks that redact secrets received a marker with its SHA-256 in its place, the others the original. "+
		"Later ones are counted in auditrail_redaction_sealed_total", rec.File.ID, rec.Offset, rec.Event.Resource)
	b.reg.pos.notify(sinks.KindTamper, newTamper(sinks.TamperUnredactable, detail, now), now)
}

// malformedLogEvery is how often at most a builder logs a malformed line;
// the ones in between are counted in the next log.
const malformedLogEvery = 10 * time.Second

// logMalformed logs where rec, a line that is not an event, is: its file,
// path and offset, never its bytes, which a client may have chosen and
// which may hold secrets. At most one line per malformedLogEvery is
// logged, with how many more there were since the last.
func (b *builder) logMalformed(rec *sinks.Record, reason string) {
	now := b.now()
	if !b.malformedLogged.IsZero() && now.Sub(b.malformedLogged) < malformedLogEvery {
		b.malformedHeld++
		return
	}
	b.log.Warn("line is not an audit event; shipped unparsed", "sink", b.sink, "reason", reason,
		"file", rec.File.ID, "path", rec.File.Path, "offset", rec.Offset, "size", len(rec.Line),
		"notLoggedSinceLast", b.malformedHeld)
	b.malformedLogged, b.malformedHeld = now, 0
}

// mayHoldEvent reports whether an unparsed line may be part of an audit
// event, and so hold credentials that cannot be redacted: whether it has
// a JSON string or object in it.
func mayHoldEvent(line []byte) bool {
	return bytes.IndexByte(line, '"') >= 0 || bytes.IndexByte(line, '{') >= 0
}

// stubUnparsed replaces the line of rec, unparsed, by a stub that says
// what it was: its size, SHA-256 and auditID if one is found.
func (b *builder) stubUnparsed(cur *batchBuf, rec *sinks.Record, reason string) {
	sum := sha256.Sum256(rec.Line)
	stub := sinks.UnparsedStub{
		Kind: sinks.UnparsedStubKind, APIVersion: sinks.RecordAPIVersion, Reason: reason,
		AuditID: string(auditjson.FindAuditID(rec.Line[:min(len(rec.Line), framer.PrefixBytes)])),
		Size:    len(rec.Line), SHA256: hex.EncodeToString(sum[:]),
		File: sinks.FileInfo{ID: rec.File.ID, Path: rec.File.Path}, Offset: rec.Offset, ReadAt: timestamp(b.now()),
	}
	line := cur.store(marshalRecord(stub))
	cur.Bytes += len(line) - len(rec.Line)
	rec.Line = line
	b.nSealedUnparsed.Inc()
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

// oversized ships a stub for f, a line above the limit: its size, SHA-256
// and the auditID found in its first bytes.
func (b *builder) oversized(cur *batchBuf, file *sinks.FileRef, f *framer.Frame) {
	stub := sinks.OversizedStub{
		Kind: sinks.OversizedStubKind, APIVersion: sinks.RecordAPIVersion, AuditID: string(auditjson.FindAuditID(f.Bytes)),
		Size: f.Size, Limit: b.maxLine, SHA256: hex.EncodeToString(f.Sum[:]), Complete: f.Complete,
		File: sinks.FileInfo{ID: file.ID, Path: file.Path}, Offset: f.Start, ReadAt: timestamp(b.now()),
	}
	b.add(cur, file, f.Start, marshalRecord(stub), sinks.KindOversized)
	b.nOversized.Inc()
	b.log.Warn("line above the size limit shipped as a stub", "sink", b.sink, "file", file.ID,
		"offset", f.Start, "size", f.Size, "auditID", stub.AuditID)
}

// gap ships the gap record of file, which could not be read from off on
// for reason; v is what the registry knows of the file and before the
// time of the first event after the gap, if known.
func (b *builder) gap(cur *batchBuf, file *sinks.FileRef, off int64, v fileView, reason lossReason, before string) {
	var g sinks.GapRecord
	g.Kind, g.APIVersion, g.Reason, g.Sink = sinks.GapRecordKind, sinks.RecordAPIVersion, string(reason), b.sink
	g.DetectedAt = timestamp(b.now())
	g.File = sinks.FileInfo{ID: file.ID, Path: v.path}
	g.Bytes.From, g.Bytes.To, g.Bytes.ToKnown = off, max(off, v.size), v.final && reason == lostPruned
	if v.bound != nil && reason == lostPruned {
		applyBound(&g, v.bound, off, v.size)
	}
	g.Time.After, g.Time.Before = v.lastTime, before
	b.add(cur, file, off, marshalRecord(g), sinks.KindGap)
	b.nGap.Inc()
	b.gaps.WithLabelValues(string(reason)).Inc()
	b.gapBytes.Add(float64(g.Bytes.To - g.Bytes.From))
	b.log.Error("audit data lost before this sink read it", "sink", b.sink, "reason", reason, "file", file.ID,
		"path", v.path, "from", g.Bytes.From, "to", g.Bytes.To, "toKnown", g.Bytes.ToKnown,
		"atLeast", g.Bytes.AtLeast, "estimate", g.Bytes.Estimate, "after", g.Time.After, "before", g.Time.Before)
}

// notice ships n, one of the registry's notices; it is acknowledged with
// cur.
func (b *builder) notice(cur *batchBuf, n *notice) {
	b.add(cur, n.ref, 0, n.line, n.kind)
	cur.notices = append(cur.notices, n)
	b.lines.WithLabelValues(n.kind.String()).Inc()
}

// heartbeat ships a heartbeat record: the sink had no record since
// idleSince.
func (b *builder) heartbeat(cur *batchBuf, idleSince time.Time) {
	now := b.now()
	hb := sinks.HeartbeatRecord{Kind: sinks.HeartbeatRecordKind, APIVersion: sinks.RecordAPIVersion, Sink: b.sink, At: timestamp(now), IdleSince: timestamp(idleSince)}
	ref := &sinks.FileRef{ID: newNoticeID(sinks.KindHeartbeat, now)}
	b.add(cur, ref, 0, marshalRecord(hb), sinks.KindHeartbeat)
	b.lines.WithLabelValues(sinks.KindHeartbeat.String()).Inc()
}
