package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/benchcorpus"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// secretRead returns an audit line for id n whose response body is a
// Secret: a sink that redacts ships it rewritten.
func secretRead(n int) string {
	return secretEvent(n, "get", "secrets", "", "",
		`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"data":{"password":"aHVudGVyMg=="},"type":"Opaque"}`)
}

// sumCorpus returns the lines of a log with events, Secret events, empty
// and unparsed lines and a line above 4 KiB.
func sumCorpus() []string {
	var lines []string
	for i := range 3000 {
		switch {
		case i%97 == 5:
			lines = append(lines, secretRead(i))
		case i == 1200:
			lines = append(lines, "", "not json", strings.Repeat("x", 8<<10))
		default:
			lines = append(lines, event(i))
		}
	}
	return lines
}

// wantID returns the idempotency key of the line at off in log as the sinks
// computed it before they shared sums: the SHA-256 of the line as read,
// in hex.
func wantID(log []byte, off int64) string {
	line := log[off:]
	return lineID(line[:bytes.IndexByte(line, '\n')])
}

// lineID returns the idempotency key of an event whose line on disk is
// line.
func lineID(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// sumRecord is a record as an idSink saw it.
type sumRecord struct {
	kind   sinks.Kind
	file   string
	offset int64
	id     string
	// summed: the record carried a sum; rewritten: its line is not the
	// one on disk.
	summed, rewritten bool
}

// idSink records the idempotency keys of the records read from the log.
type idSink struct {
	recSink
	log []byte

	mu   sync.Mutex
	recs []sumRecord
}

func (s *idSink) Write(ctx context.Context, b *sinks.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind != sinks.KindEvent && r.Kind != sinks.KindUnparsed && r.Kind != sinks.KindOversized {
			continue
		}
		disk := s.log[r.Offset:]
		disk = disk[:bytes.IndexByte(disk, '\n')]
		s.recs = append(s.recs, sumRecord{kind: r.Kind, file: r.File.ID, offset: r.Offset, id: string(sinks.AppendID(nil, r)),
			summed: r.Sum != nil, rewritten: r.Kind == sinks.KindEvent && !bytes.Equal(r.Line, disk)})
	}
	return nil
}

func (s *idSink) records() []sumRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sumRecord(nil), s.recs...)
}

// The idempotency keys of a log's records are what they were before the
// sinks shared line sums (the SHA-256 of the line as read, for every
// event; the file and offset for the others), in every sink: those that
// key events by their line and those that do not, redacting or not, with
// lines taken from shared blocks or framed by one sink's reader alone.
func TestEventIDsAreLineSums(t *testing.T) {
	lines := sumCorpus()
	log := []byte(strings.Join(lines, "\n") + "\n")
	secrets := 0
	for _, l := range lines {
		if strings.Contains(l, "aHVudGVyMg==") {
			secrets++
		}
	}
	for _, tc := range []struct {
		name string
		// sums and redact per sink.
		sums, redact []bool
	}{
		{"shared blocks", []bool{true, true, false, false}, []bool{true, false, true, false}},
		{"one sink", []bool{true}, []bool{true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			appendLines(t, e.live, lines...)
			var so []SinkOptions
			var ss []*idSink
			for i := range tc.sums {
				s := &idSink{recSink: recSink{name: fmt.Sprintf("s%d", i)}, log: log}
				o := sinkOpts(s)
				o.LineSums, o.KeepSecrets = tc.sums[i], !tc.redact[i]
				so, ss = append(so, o), append(ss, s)
			}
			opts := e.options()
			opts.MaxLineBytes = 4 << 10
			e.startWith(opts, so)
			for _, s := range ss {
				eventually(t, s.name+" has every line", func() bool { return len(s.records()) == len(lines)-1 })
			}
			first := ss[0].records()
			for k, s := range ss {
				var summed, rewritten int
				for i, r := range s.records() {
					want := fmt.Sprintf("%s@%d", r.file, r.offset)
					if r.kind == sinks.KindEvent {
						want = wantID(log, r.offset)
					}
					if r.offset != first[i].offset || r.id != want {
						t.Fatalf("%s: record %d (%s at %d) has id %s, want %s", s.name, i, r.kind, r.offset, r.id, want)
					}
					if r.summed {
						summed++
					}
					if r.rewritten {
						rewritten++
						if !r.summed {
							t.Errorf("%s: the rewritten event at %d carries no sum", s.name, r.offset)
						}
					}
				}
				switch {
				case tc.redact[k] && rewritten != secrets || !tc.redact[k] && rewritten != 0:
					t.Errorf("%s: %d events rewritten, want the %d Secret events if it redacts", s.name, rewritten, secrets)
				case !tc.sums[k] && summed != rewritten:
					t.Errorf("%s: %d records carry a sum, want only the %d rewritten", s.name, summed, rewritten)
				case tc.sums[k] && len(ss) > 1 && summed <= rewritten:
					t.Errorf("%s: %d records carry a sum, %d rewritten: the shared blocks' sums did not reach the sink", s.name, summed, rewritten)
				}
			}
		})
	}
}

// The readers of the sinks that key events by their line take the same
// sum of each line of a shared block, hashed once whichever comes first;
// the others' records carry none, unless redacted. The readers take the
// blocks at the same time.
func TestBlockLineSumsShared(t *testing.T) {
	var file bytes.Buffer
	for i := 0; file.Len() < 3*blockSize; i++ {
		switch {
		case i%50 == 7:
			file.WriteString(secretRead(i))
		case i%300 == 11:
			file.WriteString("not json")
		default:
			file.WriteString(event(i))
		}
		file.WriteByte('\n')
	}
	src := plainBytes(file.Bytes())
	m := newMetrics(prometheus.NewRegistry())
	reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
	c := newBlockCache(1<<20, 64*blockSize, nil, m)
	ref := &sinks.FileRef{Seq: 1, ID: "f"}
	e := &entry{ref: ref}
	type sink struct {
		sums, redact bool
		cur          batchBuf
	}
	ss := []*sink{{sums: true, redact: true}, {sums: true}, {redact: true}, {}, {sums: true}}
	var wg sync.WaitGroup
	for _, s := range ss {
		b := newBuilder("s", reg, m, readerOptions{log: testLogger(), now: time.Now, maxLine: 1 << 20, redact: s.redact, lineSums: s.sums})
		wg.Go(func() {
			for off := int64(0); off < int64(len(src)); {
				blk, i := c.get(e, off, src)
				if blk == nil {
					t.Errorf("no block at %d", off)
					return
				}
				for ; i < len(blk.lines); i++ {
					off = b.blockLine(&s.cur, ref, blk, &blk.lines[i])
				}
				blk.release()
			}
		})
	}
	wg.Wait()
	shared := ss[0].cur.Records
	for k, s := range ss {
		if len(s.cur.Records) != len(shared) {
			t.Fatalf("sink %d: %d records, want %d", k, len(s.cur.Records), len(shared))
		}
		for i := range s.cur.Records {
			r := &s.cur.Records[i]
			disk := src[r.Offset : r.Offset+int64(bytes.IndexByte(src[r.Offset:], '\n'))]
			redacted := !bytes.Equal(r.Line, disk)
			switch {
			case r.Kind != sinks.KindEvent:
				if r.Sum != nil {
					t.Fatalf("sink %d: the %s record at %d carries a sum", k, r.Kind, r.Offset)
				}
				continue
			case s.sums && r.Sum != shared[i].Sum:
				t.Fatalf("sink %d: the event at %d carries a sum of its own, not the block's", k, r.Offset)
			case !s.sums && (r.Sum != nil) != redacted:
				t.Fatalf("sink %d: the event at %d, redacted %v, carries a sum %v", k, r.Offset, redacted, r.Sum != nil)
			case redacted != (s.redact && strings.Contains(string(disk), "aHVudGVyMg==")):
				t.Fatalf("sink %d: the event at %d redacted %v", k, r.Offset, redacted)
			}
			if got, want := string(sinks.AppendID(nil, r)), wantID(src, r.Offset); got != want {
				t.Fatalf("sink %d: the event at %d has id %s, want %s", k, r.Offset, got, want)
			}
		}
	}
	for _, s := range ss {
		s.cur.reset()
	}
}

// A block hashes only the lines a sink that keys events by them takes:
// none for the other sinks, none before where such a sink started in it.
func TestBlockSumsOnlyWhereAsked(t *testing.T) {
	var file bytes.Buffer
	for i := range 40 {
		file.WriteString(event(i) + "\n")
	}
	src := plainBytes(file.Bytes())
	m := newMetrics(prometheus.NewRegistry())
	reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
	ref := &sinks.FileRef{Seq: 1, ID: "f"}
	c := newBlockCache(1<<20, 64*blockSize, nil, m)
	blk, _ := c.get(&entry{ref: ref}, 0, src)
	defer blk.release()
	var cur batchBuf
	defer cur.reset()
	plain := newBuilder("s", reg, m, readerOptions{log: testLogger(), now: time.Now, maxLine: 1 << 20})
	for i := range blk.lines {
		plain.blockLine(&cur, ref, blk, &blk.lines[i])
	}
	for i := range blk.lines {
		if blk.lines[i].sum != nil {
			t.Fatalf("line %d has room for a sum, and no sink keys events by it", i)
		}
	}
	keyed := newBuilder("s", reg, m, readerOptions{log: testLogger(), now: time.Now, maxLine: 1 << 20, lineSums: true})
	const from = 25
	for i := from; i < len(blk.lines); i++ {
		keyed.blockLine(&cur, ref, blk, &blk.lines[i])
	}
	for i, l := range blk.lines {
		hashed := l.sum.sum != [sha256.Size]byte{}
		if hashed != (i >= from) {
			t.Errorf("line %d hashed %v; want only the lines from %d on", i, hashed, from)
		}
	}
}

// BenchmarkLineSums measures two sinks that key events by their line
// (Elasticsearch's _id, Kafka's auditrail-id) taking the lines of shared
// blocks and computing each record's id: with each sink hashing its
// records' lines, and with the block's sums. Reading and parsing the
// blocks are in both; cpu-s/GB is the process's CPU time from getrusage.
// With AUDITRAIL_BENCH_CORPUS set it takes the first
// 64 MiB of that log:
//
//	AUDITRAIL_BENCH_CORPUS=$PWD/testdata-cache/corpus-1g-k8s/audit.log go test -run '^$' -bench LineSums ./agent
func BenchmarkLineSums(b *testing.B) {
	data := benchcorpus.Head(b, 64<<20)
	for i := 0; len(data) < 8<<20; i++ {
		data = append(data, event(i)...)
		data = append(data, '\n')
	}
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared=%v", shared), func(b *testing.B) {
			m := newMetrics(nil)
			reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
			ref := &sinks.FileRef{Seq: 1, ID: "f"}
			e := &entry{ref: ref}
			o := readerOptions{log: testLogger(), now: time.Now, maxLine: 16 << 20, lineSums: shared}
			builders := []*builder{newBuilder("es", reg, m, o), newBuilder("kafka", reg, m, o)}
			var cur batchBuf
			var id []byte
			b.SetBytes(int64(len(data)))
			cpu := cpuTime()
			for b.Loop() {
				c := newBlockCache(16<<20, 4<<20, nil, m)
				for off := int64(0); off < int64(len(data)); {
					blk, _ := c.get(e, off, plainBytes(data))
					for _, bd := range builders {
						for i := range blk.lines {
							off = bd.blockLine(&cur, ref, blk, &blk.lines[i])
						}
						for i := range cur.Records {
							id = sinks.AppendID(id[:0], &cur.Records[i])
						}
						cur.reset()
					}
					blk.release()
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/float64(len(data)), "cpu-s/GB")
		})
	}
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
