package agent

import (
	"bytes"
	"testing"

	"github.com/auditrail/auditrail/sinks"
)

func TestBatchArena(t *testing.T) {
	var b batchBuf
	small := bytes.Repeat([]byte("s"), 1000)
	got := b.store(small)
	if !bytes.Equal(got, small) || len(b.chunks) != 1 || cap(b.chunks[0]) != arenaMinChunk {
		t.Fatalf("a small line took %d chunks of %d bytes", len(b.chunks), cap(b.chunks[0]))
	}
	// Chunks double up to arenaChunk; a line above it has its own.
	for cap(b.chunks[len(b.chunks)-1]) < arenaChunk {
		b.store(small)
	}
	if n := len(b.chunks); n != 5 { // 64, 128, 256, 512 KiB, 1 MiB
		t.Fatalf("%d chunks to reach %d bytes, want 5", n, arenaChunk)
	}
	huge := bytes.Repeat([]byte("h"), 2*arenaChunk)
	if got := b.store(huge); !bytes.Equal(got, huge) {
		t.Fatal("huge line not stored whole")
	}
	if !bytes.Equal(got, small) {
		t.Fatal("a stored line changed")
	}
	b.reset()
	if len(b.spare) != 5 {
		t.Fatalf("%d spare chunks after a batch of five chunks and a huge line, want 5", len(b.spare))
	}
	// A batch that copies one small line takes the smallest chunk and
	// keeps only that one.
	b.store(small)
	b.reset()
	if len(b.spare) != 1 || cap(b.spare[0]) != arenaMinChunk {
		t.Fatalf("after a batch of one line: %d spare chunks, want 1 of %d bytes", len(b.spare), arenaMinChunk)
	}
	b.reset()
	if len(b.spare) != 0 {
		t.Fatalf("after an empty batch: %d spare chunks, want 0", len(b.spare))
	}
}

// Events parsed into a batch are given back when their record is dropped,
// so a sink whose drop rules take most lines holds no more than it ships.
func TestBatchEventsGivenBackOnDrop(t *testing.T) {
	var b batchBuf
	for range 10 * eventChunk {
		b.Records = append(b.Records, sinks.Record{Line: b.store([]byte("x")), Event: b.newEvent()})
		b.Records[len(b.Records)-1].Event.AuditID = []byte("id")
		b.dropLast()
	}
	if b.nEvents != 0 || len(b.events) != 1 {
		t.Fatalf("after dropping every record: %d events in %d chunks", b.nEvents, len(b.events))
	}
	ev := b.newEvent()
	if ev.AuditID != nil {
		t.Fatal("a given back event was not cleared")
	}
	b.reset()
	if b.nEvents != 0 || len(b.events[0][0].AuditID) != 0 {
		t.Fatal("reset kept events")
	}
}
