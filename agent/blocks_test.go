package agent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Blocks give their buffers back once the cache and every batch let go of
// them, and not before: reading a file many times the size of what is held
// at once allocates only what is held, and every line a batch points to
// is still the file's when the batch is reset.
func TestBlocksGiveBuffersBack(t *testing.T) {
	var file bytes.Buffer
	for i := 0; file.Len() < 64*blockSize; i++ {
		fmt.Fprintf(&file, `{"auditID":"%08d","verb":"get","requestURI":"/api/v1/%s"}`+"\n", i, strings.Repeat("x", i%3000))
	}
	src := plainBytes(file.Bytes())
	c := newBlockCache(1<<20, 4*blockSize, nil, newMetrics(prometheus.NewRegistry()))
	e := &entry{}
	// Three batches in turn, as a sink's reader and writer use them: a
	// batch is reset when the one after the next is filled.
	var batches [3]batchBuf
	check := func(bb *batchBuf) {
		for _, r := range bb.Records {
			if want := src[r.Offset : r.Offset+int64(len(r.Line))]; !bytes.Equal(r.Line, want) {
				t.Fatalf("line at %d changed under its batch: %.60q, want %.60q", r.Offset, r.Line, want)
			}
			if string(r.Event.AuditID) != string(r.Line[12:20]) {
				t.Fatalf("event at %d changed under its batch: auditID %q", r.Offset, r.Event.AuditID)
			}
		}
		bb.reset()
	}
	var off int64
	for n := 0; off < int64(len(src)); n++ {
		bb := &batches[n%3]
		check(bb)
		for range 3 { // a batch takes lines from a few blocks
			b, i := c.get(e, off, src)
			if b == nil {
				t.Fatalf("no block at %d", off)
			}
			for j := i; j < len(b.lines); j++ {
				bb.hold(b)
				bb.Records = append(bb.Records, sinksRecord(b, &b.lines[j]))
			}
			off = b.end
			b.release()
			if off >= int64(len(src)) {
				break
			}
		}
	}
	for i := range batches {
		check(&batches[i])
	}
	// Held at once: 4 cached blocks, 3 batches of 3 blocks, and the
	// block being read.
	if made := c.bufsMade.Load(); made > 4+9+1 {
		t.Errorf("%d read buffers made for %d blocks' worth of file; want at most 14", made, len(src)/blockSize)
	}
	c.mu.Lock()
	for _, b := range c.blocks {
		if b.refs.Load() != 1 {
			t.Errorf("cached block at %d held %d times, want once (by the cache)", b.start, b.refs.Load())
		}
	}
	c.mu.Unlock()
}

// A block holds at most blockLines lines, so that a file of empty or tiny
// lines cannot make a block's parsed fields hundreds of times its size.
func TestBlockLineLimit(t *testing.T) {
	src := plainBytes(strings.Repeat("{}\n", 3*blockLines))
	c := newBlockCache(1<<20, 4*blockSize, nil, newMetrics(prometheus.NewRegistry()))
	e := &entry{}
	var off int64
	for k := 0; k < 3; k++ {
		b, i := c.get(e, off, src)
		if b == nil {
			t.Fatalf("block %d: no block at %d", k, off)
		}
		if i != 0 || len(b.lines) != blockLines || b.end != off+3*blockLines {
			t.Fatalf("block %d: %v lines from %d to %d; want %d lines from %d", k, len(b.lines), b.start, b.end, blockLines, off)
		}
		off = b.end
		b.release()
	}
}

func sinksRecord(b *block, l *blockLine) sinks.Record {
	return sinks.Record{Line: l.line(b), Kind: sinks.KindEvent, Event: &l.ev, Offset: b.start + int64(l.off)}
}
