package agent

import (
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/sinks"
)

// A batch copies the lines it does not share with other sinks into chunks
// of its arena, from arenaMinChunk doubling up to arenaChunk: most lines
// point into shared blocks, and a batch that copies a few redacted lines
// should not hold a megabyte for them. Lines are never moved once stored,
// so records can point into the arena.
const (
	arenaMinChunk = 64 << 10
	arenaChunk    = 1 << 20
)

// batchBuf is a batch under construction together with the memory its
// records point into. Batches are recycled between a sink's reader and
// writer; how many exist bounds the sink's memory.
type batchBuf struct {
	sinks.Batch
	chunks [][]byte
	// spare are the emptied chunks of the last batch, for the next one.
	spare   [][]byte
	started time.Time
	// lastTS is the stageTimestamp of the last event in the last segment.
	lastTS []byte
	// notices are the registry's notices among the records, acknowledged
	// with the batch.
	notices []*notice
	// events hold the parsed fields of the records whose lines the batch
	// copied, in chunks of eventChunk: records of shared blocks point
	// into the block instead.
	events  [][]auditjson.Event
	nEvents int
	// blocks are the shared blocks the records point into, held until
	// reset.
	blocks []*block
}

// hold keeps b until the batch is reset.
func (b *batchBuf) hold(blk *block) {
	if n := len(b.blocks); n == 0 || b.blocks[n-1] != blk {
		blk.hold()
		b.blocks = append(b.blocks, blk)
	}
}

const eventChunk = 128

// newEvent returns an empty event that stays in place until reset.
func (b *batchBuf) newEvent() *auditjson.Event {
	i := b.nEvents / eventChunk
	if i == len(b.events) {
		b.events = append(b.events, make([]auditjson.Event, eventChunk))
	}
	ev := &b.events[i][b.nEvents%eventChunk]
	b.nEvents++
	return ev
}

// touch starts the batch's flush clock.
func (b *batchBuf) touch(now func() time.Time) {
	if b.started.IsZero() {
		b.started = now()
	}
}

func (b *batchBuf) empty() bool { return len(b.Records) == 0 && len(b.Segments) == 0 }

// store copies line into the arena and returns the stable copy.
func (b *batchBuf) store(line []byte) []byte {
	n := len(b.chunks)
	if n == 0 || cap(b.chunks[n-1])-len(b.chunks[n-1]) < len(line) {
		size := arenaMinChunk
		if n > 0 {
			size = min(2*cap(b.chunks[n-1]), arenaChunk)
		}
		b.chunks = append(b.chunks, b.chunk(max(size, len(line))))
		n++
	}
	c := b.chunks[n-1]
	start := len(c)
	c = append(c, line...)
	b.chunks[n-1] = c
	return c[start:len(c):len(c)]
}

// chunk returns the smallest spare chunk of at least size bytes, or a new
// one.
func (b *batchBuf) chunk(size int) []byte {
	best := -1
	for i, c := range b.spare {
		if cap(c) >= size && (best < 0 || cap(c) < cap(b.spare[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, 0, size)
	}
	c := b.spare[best]
	last := len(b.spare) - 1
	b.spare[best], b.spare[last] = b.spare[last], nil
	b.spare = b.spare[:last]
	return c
}

// dropLast removes the last record and gives its bytes back to the arena,
// so lines a sink filters out take no room in its batches.
func (b *batchBuf) dropLast() {
	r := b.Records[len(b.Records)-1]
	b.Records = b.Records[:len(b.Records)-1]
	if n := b.nEvents - 1; n >= 0 && r.Event == &b.events[n/eventChunk][n%eventChunk] {
		*r.Event = auditjson.Event{}
		b.nEvents = n
	}
	b.Bytes -= len(r.Line)
	c := b.chunks[len(b.chunks)-1]
	if n := len(r.Line); n > 0 && len(c) >= n && &c[len(c)-n] == &r.Line[0] {
		b.chunks[len(b.chunks)-1] = c[:len(c)-len(r.Line)]
	}
}

// extend makes the batch cover file up to end.
func (b *batchBuf) extend(file *sinks.FileRef, start, end int64) *sinks.Segment {
	if n := len(b.Segments); n > 0 && b.Segments[n-1].File == file {
		s := &b.Segments[n-1]
		s.End = end
		return s
	}
	b.sealSegment()
	b.Segments = append(b.Segments, sinks.Segment{File: file, Start: start, End: end})
	return &b.Segments[len(b.Segments)-1]
}

// sealSegment records the last event time of the current last segment.
func (b *batchBuf) sealSegment() {
	if n := len(b.Segments); n > 0 && b.lastTS != nil {
		b.Segments[n-1].LastEventTime = string(b.lastTS)
	}
	b.lastTS = nil
}

// reset empties the batch for reuse, keeping its arena chunks.
func (b *batchBuf) reset() {
	clear(b.Records)
	b.Records = b.Records[:0]
	clear(b.Segments)
	b.Segments = b.Segments[:0]
	b.Bytes = 0
	b.Cut = time.Time{}
	b.lastTS = nil
	clear(b.notices)
	b.notices = b.notices[:0]
	b.started = time.Time{}
	for i := 0; i*eventChunk < b.nEvents; i++ {
		clear(b.events[i])
	}
	b.nEvents = 0
	for i, blk := range b.blocks {
		blk.release()
		b.blocks[i] = nil
	}
	b.blocks = b.blocks[:0]
	// Keep the chunks this batch used, and only those: most lines point
	// into shared blocks, and chunks kept for a burst of copied lines
	// would otherwise stay for good.
	clear(b.spare)
	b.spare = b.spare[:0]
	for i, c := range b.chunks {
		if cap(c) <= arenaChunk { // a huge line's own chunk is given back
			b.spare = append(b.spare, c[:0])
		}
		b.chunks[i] = nil
	}
	b.chunks = b.chunks[:0]
	if cap(b.Records) > 1<<16 {
		b.Records = nil
	}
}
