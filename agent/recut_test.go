package agent

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// cutBatch is what a sink can see of a batch.
type cutBatch struct {
	Records  []string // kind and line
	Segments []string // file id, range, done, last event time
	Cut      time.Time
}

// batchSink records whole batches; while hold is set, Write waits until
// the agent stops.
type batchSink struct {
	mu      sync.Mutex
	hold    bool
	batches []cutBatch
}

func (s *batchSink) Name() string { return "b" }

func (s *batchSink) Write(ctx context.Context, b *sinks.Batch) error {
	var c cutBatch
	for _, r := range b.Records {
		c.Records = append(c.Records, r.Kind.String()+" "+string(r.Line))
	}
	for _, g := range b.Segments {
		c.Segments = append(c.Segments, fmt.Sprintf("%s %d-%d done=%v %s", g.File.ID, g.Start, g.End, g.Done, g.LastEventTime))
	}
	c.Cut = b.Cut.UTC()
	s.mu.Lock()
	s.batches = append(s.batches, c)
	hold := s.hold
	s.mu.Unlock()
	if hold {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *batchSink) got() []cutBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cutBatch(nil), s.batches...)
}

func (s *batchSink) Close(context.Context) error { return nil }

// The batch in flight when the agent stopped without an answer from the
// sink is the first batch of the next start, cut exactly as it was: the
// same records in the same order, byte for byte (the start and tamper
// records of the first run, an unparsed line, the stub of a line above the
// limit with the time it was first read), the same ranges and cut time.
// Reading then goes on after it. A batch that was full by its bytes is cut
// again whole.
func TestBatchInDoubtIsCutAgainExactly(t *testing.T) {
	for _, maxBytes := range []int{1 << 20, 2500} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) { testCutAgain(t, maxBytes) })
	}
}

func testCutAgain(t *testing.T, maxBytes int) {
	e := newEnv(t)
	// A line of 3 KB: the batch that holds it is full by its bytes (at
	// 2500) with the events alone.
	lines := append(events(0, 2), `{"kind":"Event","auditID":"mid","stage":"ResponseComplete","blob":"`+strings.Repeat("y", 3000)+`"}`)
	lines = append(lines, events(2, 5)...)
	lines = append(lines, "not json at all", `{"kind":"Event","auditID":"big","blob":"`+strings.Repeat("x", 8<<10)+`"}`)
	appendLines(t, e.live, append(lines, events(5, 10)...)...)
	opts := e.options()
	opts.MaxLineBytes, opts.DrainTimeout = 4<<10, 100*time.Millisecond
	so := sinkOpts(nil)
	so.Batch.FlushInterval, so.Batch.MaxBytes = 200*time.Millisecond, maxBytes

	first := &batchSink{hold: true}
	so.Sink = first
	stop := e.startWith(opts, []SinkOptions{so})
	eventually(t, "a batch in flight", func() bool { return len(first.got()) > 0 })
	time.Sleep(1100 * time.Millisecond) // stubs made again would say another second
	appendLines(t, e.live, events(10, 12)...)
	stop()
	inDoubt := first.got()[0]
	if len(inDoubt.Records) < 4 {
		t.Fatalf("the batch in flight has %d records: %v", len(inDoubt.Records), inDoubt.Records)
	}

	again := &batchSink{}
	so.Sink = again
	opts = e.options()
	opts.MaxLineBytes = 4 << 10
	e.startWith(opts, []SinkOptions{so})
	eventually(t, "the batch cut again and the rest", func() bool {
		n := 0
		for _, b := range again.got() {
			for _, r := range b.Records {
				if strings.HasPrefix(r, "event ") {
					n++
				}
			}
		}
		return n >= 13
	})
	got := again.got()
	if !reflect.DeepEqual(got[0], inDoubt) {
		t.Errorf("first batch after the restart:\n%+v\nwant the batch in doubt:\n%+v", got[0], inDoubt)
	}
	seen := map[string]int{}
	for _, b := range got {
		for _, r := range b.Records {
			if strings.HasPrefix(r, "event ") {
				seen[r]++
			}
		}
	}
	for _, l := range events(0, 12) {
		if n := seen["event "+l]; n != 1 {
			t.Errorf("event delivered %d times after the restart: %.80s", n, l)
		}
	}
	if _, err := os.Stat(e.state); err != nil {
		t.Fatal(err)
	}
}

// A batch in doubt whose file was pruned while the agent was down cannot
// be cut again: the agent reads on from the acknowledged positions, the
// sink gets a gap record for what is gone, and what is on disk arrives
// once.
func TestBatchInDoubtOfAPrunedFile(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.live, events(0, 5)...)
	opts := e.options()
	opts.DrainTimeout = 100 * time.Millisecond
	so := sinkOpts(nil)
	first := &batchSink{hold: true}
	so.Sink = first
	stop := e.startWith(opts, []SinkOptions{so})
	eventually(t, "a batch in flight", func() bool { return len(first.got()) > 0 })
	stop()
	// Rotated and pruned while the agent was down.
	if err := os.Remove(e.live); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.live, events(5, 9)...)

	again := &batchSink{}
	so.Sink = again
	e.startWith(e.options(), []SinkOptions{so})
	var gaps int
	eventually(t, "the new file and a gap record", func() bool {
		n := 0
		gaps = 0
		for _, b := range again.got() {
			for _, r := range b.Records {
				switch {
				case strings.HasPrefix(r, "event "):
					n++
				case strings.HasPrefix(r, "gap "):
					gaps++
				}
			}
		}
		return n >= 4 && gaps > 0
	})
	time.Sleep(200 * time.Millisecond)
	seen := map[string]int{}
	for _, b := range again.got() {
		for _, r := range b.Records {
			seen[r]++
		}
	}
	for _, l := range events(5, 9) {
		if n := seen["event "+l]; n != 1 {
			t.Errorf("event on disk delivered %d times: %.80s", n, l)
		}
	}
	for r, n := range seen {
		if strings.HasPrefix(r, "event ") && n > 1 {
			t.Errorf("delivered %d times: %.80s", n, r)
		}
	}
	if gaps != 1 {
		t.Errorf("%d gap records, want 1 for the pruned file", gaps)
	}
}
