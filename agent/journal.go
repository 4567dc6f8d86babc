package agent

import (
	"hash/crc32"
	"slices"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/sinks"
)

// Steps of a batch's delivery, named for testHookStep.
const (
	stepIntent    = "intent"    // the journal holds the batch's intent
	stepWritten   = "written"   // the sink accepted the batch
	stepDelivered = "delivered" // the journal holds the delivered positions
	stepAcked     = "acked"     // the registry holds them, for the next checkpoint
	stepCommitted = "committed" // a checkpoint was committed (sink "")
)

// testHookStep, when set by a test, runs after each step of a batch's
// delivery that holds records.
var testHookStep func(sink, step string)

func step(sink, s string) {
	if testHookStep != nil {
		testHookStep(sink, s)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordsCRC returns the CRC-32C of the records' lines, each followed by a
// newline.
func recordsCRC(recs []sinks.Record) uint32 {
	var c uint32
	nl := []byte{'\n'}
	for i := range recs {
		c = crc32.Update(c, castagnoli, recs[i].Line)
		c = crc32.Update(c, castagnoli, nl)
	}
	return c
}

// intentOf returns what the journal records before b is written: its
// ranges, the identity of their files, the records the agent made and the
// notices it carries.
func (w *writer) intentOf(b *batchBuf) *journal.Intent {
	in := &journal.Intent{Cut: b.Cut, Records: len(b.Records), RecordsCRC32C: recordsCRC(b.Records)}
	seqs := make([]uint64, 0, len(b.Segments))
	for _, s := range b.Segments {
		in.Segments = append(in.Segments, journal.Segment{Seq: s.File.Seq, ID: s.File.ID, Start: s.Start, End: s.End,
			Done: s.Done, LastEventTime: s.LastEventTime})
		seqs = append(seqs, s.File.Seq)
	}
	in.Files = w.reg.files.identities(seqs)
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == sinks.KindEvent {
			continue
		}
		in.Made = append(in.Made, journal.Made{Index: i, Kind: r.Kind.String(), FileID: r.File.ID, Offset: r.Offset, Line: r.Line})
	}
	for _, n := range b.notices {
		in.Notices = append(in.Notices, n.ref.ID)
	}
	return in
}

// deliveredOf returns the positions b's acknowledgement moves the sink to,
// with their files' identity.
func (w *writer) deliveredOf(b *batchBuf) []journal.File {
	seqs := make([]uint64, 0, len(b.Segments))
	for _, s := range b.Segments {
		seqs = append(seqs, s.File.Seq)
	}
	ids := w.reg.files.identities(seqs)
	out := make([]journal.File, 0, len(b.Segments))
	for _, s := range b.Segments {
		i := slices.IndexFunc(ids, func(f checkpoint.File) bool { return f.Seq == s.File.Seq })
		if i < 0 {
			continue // no longer tracked: done by every sink
		}
		out = append(out, journal.File{File: ids[i], Cursor: checkpoint.Cursor{Offset: s.End, Done: s.Done, LastEventTime: s.LastEventTime}})
	}
	return out
}
