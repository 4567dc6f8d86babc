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
	in.Files = w.reg.identities(seqs)
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
	ids := w.reg.identities(seqs)
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

// identities returns the checkpoint records of the files with the given
// seqs that the registry tracks, without cursors.
func (r *registry) identities(seqs []uint64) []checkpoint.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]checkpoint.File, 0, len(seqs))
	for _, seq := range seqs {
		e := r.bySeq[seq]
		if e == nil || slices.ContainsFunc(out, func(f checkpoint.File) bool { return f.Seq == seq }) {
			continue
		}
		out = append(out, checkpoint.File{
			Seq: e.ref.Seq, ID: e.ref.ID, Dev: e.dev, Ino: e.ino, FingerprintLen: e.fpLen, Fingerprint: e.fp,
			Path: e.path, Size: e.size, Final: e.final, Compressed: e.compressed,
		})
	}
	return out
}

// entry returns the file with seq, or nil.
func (r *registry) entry(seq uint64) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bySeq[seq]
}

// claimNotice returns the notice id if it waits for sink and was not
// handed to its reader yet, and marks it handed; nil otherwise.
func (r *registry) claimNotice(sink, id string) *notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.notices {
		if n.ref.ID == id && n.pending[sink] && !n.handed[sink] {
			n.handed[sink] = true
			return n
		}
	}
	return nil
}

// delivered records that sink's journal holds every delivery up to gen;
// called after the registry acknowledged them.
func (r *registry) deliveredGen(sink string, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gens == nil {
		r.gens = make(map[string]uint64)
	}
	r.gens[sink] = gen
}

// deliveredGens returns, per sink, the last delivery the registry
// acknowledged: a snapshot taken after it holds all of them.
func (r *registry) deliveredGens() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.gens))
	for k, v := range r.gens {
		out[k] = v
	}
	return out
}
