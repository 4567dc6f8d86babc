package elasticsearch

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// halfRejected makes the server answer 429 to every other item it
// receives, on every attempt, as a busy cluster does.
func halfRejected(t *testing.T) (*target, string) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	var mu sync.Mutex
	n := 0
	srv.FailItems(func(_, _ string) int {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%2 == 0 {
			return 429
		}
		return 0
	})
	return tg, tg.index("stream")
}

// At 50% per-item 429, a 1,000-event batch is delivered in a few rounds
// paced by the fraction rejected, not behind a backoff doubling to
// seconds; the retries are logged with counts only.
func TestHalfRejectedKeepsPace(t *testing.T) {
	tg, index := halfRejected(t)
	cfg := tg.config(index)
	cfg.ItemRetryInitial, cfg.ItemRetryMax = 0, 0
	cfg.ApplyDefaults()
	var logs bytes.Buffer
	s, err := New(context.Background(), "es", cfg, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var slept []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 1000, 1)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(tg.fake.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	var total time.Duration
	for _, d := range slept {
		total += d
	}
	t.Logf("%d bulk requests, %d waits, %v waited in all", tg.fake.BulkRequests(), len(slept), total)
	if total > time.Second {
		t.Errorf("waited %v in all (%v) for a batch of %d at 50%% rejection; want at most 1s", total, slept, len(b.Records))
	}
	if n := tg.fake.BulkRequests(); n > 13 {
		t.Errorf("%d bulk requests; halving the rejected each round needs about 11", n)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "retried=") {
		t.Errorf("item retries not logged with counts:\n%s", out)
	}
	if strings.Contains(out, "injected") || strings.Contains(out, "requestURI") {
		t.Errorf("the log quotes a reason or an event:\n%s", out)
	}
}

// A whole request that fails after some items were acknowledged fails
// the write; the agent's next write of the same batch sends only the
// items not yet acknowledged.
func TestFailedRequestResendsOnlyUnacknowledged(t *testing.T) {
	tg, index := halfRejected(t)
	srv := tg.fake
	var mu sync.Mutex
	var sent []int // action lines per request
	srv.FailRequestsWith(func(body []byte) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, bytes.Count(body, []byte(`{"create":`)))
		if len(sent) == 2 {
			return 503, `{"error":{"type":"unavailable"},"status":503}`
		}
		return 0, ""
	})
	s := newSink(t, tg.config(index))
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 100, 1)...)
	if err := s.Write(context.Background(), b); err == nil {
		t.Fatal("the write succeeded through a 503")
	}
	created := len(srv.Docs(index))
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) < 3 || sent[2] != len(b.Records)-created {
		t.Errorf("items per request %v: after the 503 the write resent %v items, want the %d not created", sent, sent[2:3], len(b.Records)-created)
	}
}

func TestRoundsPace(t *testing.T) {
	cfg := Config{}
	cfg.ApplyDefaults() // 100ms, 2s
	ms := time.Millisecond
	steps := []struct {
		took           time.Duration
		rejected, sent int
		want           time.Duration
	}{
		{40 * ms, 500, 1000, 20 * ms},    // half through: half the request's time
		{5 * time.Second, 1, 4, 25 * ms}, // a slow answer: at most itemRetryInitial
		{10 * ms, 3, 3, 100 * ms},        // none through: backs off
		{10 * ms, 3, 3, 200 * ms},
		{10 * ms, 3, 3, 400 * ms},
		{10 * ms, 3, 3, 800 * ms},
		{10 * ms, 3, 3, 1600 * ms},
		{10 * ms, 3, 3, 2 * time.Second}, // to itemRetryMax
		{10 * ms, 1, 3, 3333333},         // some through again: paced, not backed off
		{10 * ms, 3, 3, 100 * ms},
	}
	var r rounds
	for i, st := range steps {
		if got := r.next(cfg, st.took, st.rejected, st.sent); got != st.want {
			t.Errorf("round %d: wait %v, want %v", i, got, st.want)
		}
	}
	if r.n != len(steps) || r.retried != 523 {
		t.Errorf("rounds %d, retried %d", r.n, r.retried)
	}
}

// A whole request answered 429 or 503 with Retry-After is sent again
// within the write after the wait asked for, at most itemRetryMax, up to
// maxTold times; without the header it fails the write (see
// TestWholeRequestFailures).
func TestRetryAfterIsHonoured(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	index := tg.index("stream")
	srv.RetryAfter("1")
	s := newSink(t, tg.config(index)) // itemRetryMax 10ms
	var slept []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	b := testBatch()
	srv.FailRequests(503, 429)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records) || len(slept) != 2 || slept[0] != 10*time.Millisecond {
		t.Fatalf("%d documents of %d, waits %v; want all after two waits of 10ms", n, len(b.Records), slept)
	}
	srv.FailRequests(503, 503, 503, 503)
	if err := s.Write(context.Background(), testBatch()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("after %d Retry-After: err = %v, want the 503", maxTold, err)
	}
}
