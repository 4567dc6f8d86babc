package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/sinks"
)

// recut builds, as the reader's first batch, the batch of in: the intent a
// crash left without an outcome. It reads the same ranges, puts the
// records the agent made (notices, heartbeats, gap records, stubs) back in
// their places with their bytes, and gives the batch the same cut time, so
// that the sink receives the same records, ranges and bytes and recognises
// a batch it already holds. It returns where reading goes on: after is the
// last file the batch finished (as run's after) and r.from the position in
// the file after it.
//
// When the batch cannot be cut again exactly (a file pruned or replaced
// meanwhile, its content no longer what was read), the batch is dropped
// unsent and reading goes on from the acknowledged positions as after any
// crash: what is gone is reported by a gap record, and a sink may receive
// part of the in-doubt batch a second time under another name; exact is
// then false.
func (r *reader) recut(drain context.Context, in *journal.Intent) (after uint64, exact bool) {
	r.recutting = true
	defer func() { r.recutting = false }()
	b := r.cur
	refs := make(map[string]*sinks.FileRef, len(in.Segments))
	why := ""
	for _, s := range in.Segments {
		e := r.reg.files.entry(s.Seq)
		switch {
		case e != nil && e.ref.ID == s.ID && (s.Start == s.End || r.readRange(drain, e, s)):
			// An empty range (a gap record's, a file finished) needs
			// no reading: its file may be gone.
			refs[s.ID] = e.ref
		case e == nil && s.Start == s.End:
			refs[s.ID] = &sinks.FileRef{Seq: s.Seq, ID: s.ID}
		case e == nil || e.ref.ID != s.ID:
			why = fmt.Sprintf("file %s (seq %d) is not known", s.ID, s.Seq)
		default:
			why = fmt.Sprintf("file %s (seq %d) cannot be read from %d to %d", s.ID, s.Seq, s.Start, s.End)
		}
		if why != "" {
			break
		}
	}
	var recs []sinks.Record
	if why == "" {
		if recs, exact = r.place(in, refs); !exact {
			why = "the records read are not those of the batch"
		}
	}
	if why == "" && recordsCRC(recs) != in.RecordsCRC32C {
		why = "the records read differ from those of the batch"
	}
	if why != "" {
		r.log.Warn("the batch in doubt at the last stop cannot be cut again as it was; reading on from the acknowledged positions "+
			"(the sink may receive part of it a second time)", "sink", r.sink, "records", in.Records, "segments", len(in.Segments), "reason", why)
		b.reset()
		return 0, false
	}
	b.Records = append(b.Records[:0], recs...)
	b.Bytes = 0
	for i := range recs {
		b.Bytes += len(recs[i].Line)
	}
	b.Segments = b.Segments[:0]
	for _, s := range in.Segments {
		b.Segments = append(b.Segments, sinks.Segment{File: refs[s.ID], Start: s.Start, End: s.End, Done: s.Done, LastEventTime: s.LastEventTime})
	}
	b.lastTS = nil
	b.Cut = in.Cut
	for _, id := range in.Notices {
		if n := r.reg.pos.claimNotice(r.sink, id); n != nil {
			b.notices = append(b.notices, n)
		}
	}
	if n := len(in.Segments); n > 0 {
		last := in.Segments[n-1]
		after = last.Seq
		if !last.Done {
			after = last.Seq - 1
			r.from = map[uint64]int64{last.Seq: last.End}
		}
	}
	r.log.Info("cut the batch in doubt at the last stop again, as it was", "sink", r.sink, "records", in.Records, "segments", len(in.Segments))
	return after, true
}

// readRange frames the lines of s, a range of e, into the batch, without
// flushing.
func (r *reader) readRange(drain context.Context, e *entry, s journal.Segment) bool {
	h := r.reg.files.acquire(e)
	if h == nil {
		return false
	}
	defer r.reg.files.release(h)
	src, err := openSource(h, s.Start)
	if err != nil {
		return false
	}
	lim := &limitSource{src: src, end: s.End}
	r.fr.Reset(s.Start, r.maxLine)
	for {
		n, ok, err := r.step(drain, e, lim, true)
		if !ok {
			return false
		}
		if n == 0 {
			if err != nil && err != io.EOF {
				return false
			}
			break
		}
	}
	if s.Done {
		r.shipRest(e)
	}
	return r.fr.Pos() == s.End && r.fr.Buffered() == 0
}

// place returns the batch's records in the order of in: those read, with
// the made ones put back in their places and with their bytes. It reports
// false when what was read does not fit.
func (r *reader) place(in *journal.Intent, refs map[string]*sinks.FileRef) ([]sinks.Record, bool) {
	b := r.cur
	read := b.Records
	made := make(map[int]journal.Made, len(in.Made))
	for _, m := range in.Made {
		made[m.Index] = m
	}
	out := make([]sinks.Record, 0, in.Records)
	j := 0
	for i := 0; i < in.Records; i++ {
		m, ok := made[i]
		if !ok {
			if j >= len(read) || read[j].Kind != sinks.KindEvent {
				return nil, false
			}
			out = append(out, read[j])
			j++
			continue
		}
		kind, ok := kindByName(m.Kind)
		if !ok {
			return nil, false
		}
		switch kind {
		case sinks.KindUnparsed, sinks.KindOversized:
			// A line read: the stored bytes carry the time it was first
			// read.
			if j >= len(read) || read[j].Offset != m.Offset || read[j].Kind != kind {
				return nil, false
			}
			rec := read[j]
			j++
			rec.Line, rec.Event = b.store(m.Line), nil
			out = append(out, rec)
		default:
			ref := refs[m.FileID]
			if ref == nil {
				ref = &sinks.FileRef{ID: m.FileID}
			}
			out = append(out, sinks.Record{Line: b.store(m.Line), Kind: kind, File: ref, Offset: m.Offset})
		}
	}
	return out, j == len(read)
}

func kindByName(s string) (sinks.Kind, bool) {
	for k := sinks.KindEvent; k.String() != "unknown"; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// limitSource ends a source at end.
type limitSource struct {
	src framer.Source
	end int64
}

func (l *limitSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= l.end {
		return 0, io.EOF
	}
	if rest := l.end - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	return l.src.ReadAt(p, off)
}
