package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/benchcorpus"
	"github.com/auditrail/auditrail/sinks"
)

// chunkSource serves data from an offset in chunks of varying size, like a
// file that is being appended to.
type chunkSource struct {
	data   []byte
	sizes  []byte
	n      int
	limit  int // bytes visible so far
	lastAt int64
}

func (s *chunkSource) ReadAt(p []byte, off int64) (int, error) {
	if int(off) >= s.limit {
		return 0, io.EOF
	}
	sz := 1
	if len(s.sizes) > 0 {
		sz = int(s.sizes[s.n%len(s.sizes)]) + 1
	}
	s.n++
	end := min(s.limit, int(off)+sz, int(off)+len(p))
	return copy(p, s.data[off:end]), nil
}

// frameAll runs the reader's framing over data and returns the records and
// the offset up to which the batch's segment reaches. With shared, lines
// are taken from blocks where they can be, as when several sinks read.
func frameAll(t testing.TB, data, sizes []byte, maxLine int, shared bool) ([]sinks.Record, int64) {
	m := newMetrics(nil)
	reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
	free := make(chan *batchBuf, 1)
	free <- &batchBuf{}
	r := newReader("s", reg, m, readerOptions{
		log: testLogger(), now: time.Now, maxLine: maxLine, poll: time.Second,
		batch: BatchOptions{MaxEvents: 1 << 30, MaxBytes: 1 << 30, FlushInterval: time.Hour},
		out:   make(chan *batchBuf, 1), free: free, lineSums: true,
	})
	r.takeBatch(context.Background())
	e := &entry{ref: &sinks.FileRef{Seq: 1, ID: "f"}}
	src := &chunkSource{data: data, sizes: sizes, limit: len(data)}
	r.fr.Reset(0, maxLine)
	if shared {
		r.blocks = newBlockCache(maxLine, 1<<20, nil, m)
		r.build.shared = r.blocks.tag
	}
	for {
		if n, _, _ := r.step(context.Background(), e, src, false); n == 0 {
			break
		}
	}
	var end int64
	if len(r.cur.Segments) > 0 {
		end = r.cur.Segments[len(r.cur.Segments)-1].End
	}
	return r.cur.Records, end
}

// FuzzRecords checks that a reader, whatever the chunking and whether it
// takes lines from shared blocks or frames them itself, makes exactly one
// record of each complete line: the line up to maxLine, a stub above it,
// none for empty lines and holes, and none after the last newline; and
// that both ways give each record the same idempotency key, for an event
// the SHA-256 of its line (taken from the block's sums when shared). The
// framer alone is fuzzed by agent/internal/framer's FuzzFramer.
func FuzzRecords(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), []byte{0, 3, 1})
	f.Add([]byte(`{"auditID":"x","big":"`+string(bytes.Repeat([]byte("z"), 100))+"\"}\nok\n"), []byte{7})
	f.Add(bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 20), []byte{2, 63, 5})
	f.Add([]byte("\x00\x00{}\n\x00\n"+strings.Repeat("y", 90)+"\n{\"a\":1}\n\x00"), []byte{0, 200, 9})
	f.Add([]byte("{}\n{\"auditID\":\"a\"}\nnot json\n\n{\"verb\":\"get\"}\n{\"verb\":\"get\"}\n{"), []byte{4, 17})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		const maxLine = 40
		var ids [2][]string
		for k, shared := range []bool{false, true} {
			recs, end := frameAll(t, data, sizes, maxLine, shared)
			fatalf := func(format string, args ...any) {
				t.Helper()
				t.Fatalf("shared blocks %v: "+format, append([]any{shared}, args...)...)
			}
			var want [][]byte
			lines := bytes.Split(data, []byte("\n"))
			rest := lines[len(lines)-1] // the part after the last newline is incomplete
			lines = lines[:len(lines)-1]
			var off, wantEnd int64
			var offs []int64
			for _, l := range lines {
				// NUL bytes at the start of a line are a hole, skipped.
				hole := len(l) - len(bytes.TrimLeft(l, "\x00"))
				if len(l) > hole {
					want = append(want, l[hole:])
					offs = append(offs, off+int64(hole))
				}
				off += int64(len(l)) + 1
				wantEnd = off
			}
			if hole := len(rest) - len(bytes.TrimLeft(rest, "\x00")); hole > 0 {
				wantEnd = off + int64(hole)
			}
			if len(recs) != len(want) {
				fatalf("%d records, want %d", len(recs), len(want))
			}
			for i, rec := range recs {
				if rec.Offset != offs[i] {
					fatalf("record %d at offset %d, want %d", i, rec.Offset, offs[i])
				}
				id := string(sinks.AppendID(nil, &rec))
				if rec.Kind == sinks.KindEvent && id != lineID(want[i]) {
					fatalf("event %d has id %s, want %s", i, id, lineID(want[i]))
				}
				ids[k] = append(ids[k], id)
				if len(want[i]) > maxLine {
					var st sinks.OversizedStub
					if rec.Kind != sinks.KindOversized || json.Unmarshal(rec.Line, &st) != nil ||
						st.Size != int64(len(want[i])) || st.SHA256 != fingerprint(want[i]) {
						fatalf("record %d: want a stub for %d bytes, got %s", i, len(want[i]), rec.Line)
					}
					continue
				}
				if !bytes.Equal(rec.Line, want[i]) {
					fatalf("record %d = %q, want %q", i, rec.Line, want[i])
				}
			}
			if end != wantEnd {
				fatalf("segment ends at %d, want %d", end, wantEnd)
			}
		}
		if !slices.Equal(ids[0], ids[1]) {
			t.Fatalf("ids framed alone %q, from shared blocks %q", ids[0], ids[1])
		}
	})
}

// BenchmarkFraming measures a reader turning a read buffer into framed,
// parsed records in batches, on 8 MB of small events, with and without
// secret redaction (the check, and redacting the events that need it).
// With AUDITRAIL_BENCH_CORPUS set to an audit log, such as scripts/bench.sh's
// cached corpus, it frames the first 64 MiB of that log instead:
//
//	AUDITRAIL_BENCH_CORPUS=$PWD/testdata-cache/corpus-1g-k8s/audit.log go test -run '^$' -bench Framing ./agent
func BenchmarkFraming(b *testing.B) {
	for _, redact := range []bool{false, true} {
		b.Run(fmt.Sprintf("redact=%v", redact), func(b *testing.B) { benchFraming(b, redact) })
	}
}

func benchFraming(b *testing.B, redact bool) {
	data := benchcorpus.Head(b, 64<<20)
	for i := 0; len(data) < 8<<20; i++ {
		data = append(data, event(i)...)
		data = append(data, '\n')
	}
	m := newMetrics(nil)
	reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
	out := make(chan *batchBuf, 1)
	free := make(chan *batchBuf, 2)
	free <- &batchBuf{}
	free <- &batchBuf{}
	r := newReader("s", reg, m, readerOptions{
		log: testLogger(), now: time.Now, maxLine: 16 << 20, poll: time.Second,
		batch: BatchOptions{MaxEvents: 5000, MaxBytes: 4 << 20, FlushInterval: time.Hour},
		out:   out, free: free, redact: redact,
	})
	go func() {
		for bb := range out {
			bb.reset()
			free <- bb
		}
	}()
	defer close(out)
	r.takeBatch(context.Background())
	e := &entry{ref: &sinks.FileRef{Seq: 1, ID: "f"}}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.fr.Reset(0, 16<<20)
		for {
			n, _ := r.fr.Fill(plainBytes(data))
			if n == 0 {
				break
			}
			r.frame(context.Background(), e)
		}
	}
}

// plainBytes is a source over a byte slice.
type plainBytes []byte

func (p plainBytes) ReadAt(b []byte, off int64) (int, error) {
	if int(off) >= len(p) {
		return 0, io.EOF
	}
	return copy(b, p[off:]), nil
}

// A dropped record gives its bytes back to the arena.
func TestDropLastFreesArena(t *testing.T) {
	var b batchBuf
	file := &sinks.FileRef{ID: "f"}
	for i, l := range []string{event(0), event(1)} {
		b.Records = append(b.Records, sinks.Record{Line: b.store([]byte(l)), File: file, Offset: int64(i)})
		b.Bytes += len(l)
	}
	before := len(b.chunks[0])
	b.dropLast()
	if len(b.Records) != 1 || b.Bytes != len(event(0)) || len(b.chunks[0]) != before-len(event(1)) {
		t.Fatalf("after dropLast: %d records, %d bytes, arena %d (was %d)", len(b.Records), b.Bytes, len(b.chunks[0]), before)
	}
	if string(b.store([]byte("x"))) != "x" || string(b.Records[0].Line) != event(0) {
		t.Fatal("the kept record or the arena was damaged")
	}
}
