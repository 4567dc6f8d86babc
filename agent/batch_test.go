package agent

import (
	"bytes"
	"testing"
)

func TestBatchArenaKeepsWhatTheLastBatchUsed(t *testing.T) {
	var b batchBuf
	line := bytes.Repeat([]byte("x"), arenaChunk/2+1) // one line per chunk
	for range 3 {
		b.store(line)
	}
	huge := b.store(make([]byte, 2*arenaChunk))
	if len(huge) != 2*arenaChunk || len(b.chunks) != 4 {
		t.Fatalf("stored into %d chunks", len(b.chunks))
	}
	b.reset()
	if len(b.spare) != 3 {
		t.Fatalf("after a batch of three chunks and a huge line: %d spare chunks, want 3", len(b.spare))
	}
	b.store([]byte("a"))
	if len(b.spare) != 2 {
		t.Fatalf("%d spare chunks after taking one, want 2", len(b.spare))
	}
	b.reset()
	if len(b.spare) != 1 {
		t.Fatalf("after a batch of one chunk: %d spare chunks, want 1", len(b.spare))
	}
	b.reset()
	if len(b.spare) != 0 {
		t.Fatalf("after an empty batch: %d spare chunks, want 0", len(b.spare))
	}
}
