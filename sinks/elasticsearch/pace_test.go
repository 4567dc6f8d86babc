package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

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
	slept := recordSleeps(s)
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 1000, 1)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(tg.fake.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	var total time.Duration
	for _, d := range *slept {
		total += d
	}
	t.Logf("%d bulk requests, %d waits, %v waited in all", tg.fake.BulkRequests(), len(*slept), total)
	if total > time.Second {
		t.Errorf("waited %v in all (%v) for a batch of %d at 50%% rejection; want at most 1s", total, *slept, len(b.Records))
	}
	// Four requests of 250 at first; each round halves the rejected of
	// each, until a request's share fits in one: about 4*3 + 8.
	if n := tg.fake.BulkRequests(); n > 24 {
		t.Errorf("%d bulk requests; halving the rejected each round needs about 20", n)
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
// the write, once the requests in flight beside it have ended; the
// agent's next write of the same batch sends only the items not yet
// acknowledged, by any request.
func TestFailedRequestResendsOnlyUnacknowledged(t *testing.T) {
	for _, inflight := range []int{1, DefaultMaxInFlightRequests} {
		t.Run(fmt.Sprintf("inflight=%d", inflight), func(t *testing.T) {
			tg, index := halfRejected(t)
			srv := tg.fake
			var mu sync.Mutex
			requests := 0
			var again []string // ids sent by the second write
			second := false
			srv.FailRequestsWith(func(body []byte) (int, string) {
				mu.Lock()
				defer mu.Unlock()
				if requests++; requests == 2 {
					return 503, `{"error":{"type":"unavailable"},"status":503}`
				}
				if second {
					again = append(again, actionIDs(t, body)...)
				}
				return 0, ""
			})
			cfg := tg.config(index)
			cfg.MaxInFlightRequests = inflight
			s := newSink(t, cfg)
			b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 1000, 1)...)
			if err := s.Write(context.Background(), b); err == nil || !strings.Contains(err.Error(), "503") {
				t.Fatalf("err = %v, want the 503", err)
			}
			created := srv.Docs(index)
			if len(created) == 0 || len(created) == len(b.Records) {
				t.Fatalf("%d of %d created before the 503; the test needs some, not all", len(created), len(b.Records))
			}
			mu.Lock()
			second = true
			mu.Unlock()
			if err := s.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if n := len(srv.Docs(index)); n != len(b.Records) {
				t.Fatalf("%d documents, want %d", n, len(b.Records))
			}
			mu.Lock()
			defer mu.Unlock()
			resent := map[string]bool{}
			for _, id := range again {
				if created[id] != nil {
					t.Fatalf("the second write sent %s, created before the 503", id)
				}
				resent[id] = true
			}
			if len(resent) != len(b.Records)-len(created) {
				t.Errorf("the second write sent %d distinct items, want the %d not created", len(resent), len(b.Records)-len(created))
			}
		})
	}
}

// actionIDs returns the _id of every action line of a _bulk body.
func actionIDs(t *testing.T, body []byte) []string {
	var out []string
	for line := range bytes.Lines(body) {
		if !bytes.HasPrefix(line, []byte(`{"create":`)) {
			continue
		}
		var a map[string]struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal(line, &a); err != nil {
			t.Errorf("action line %s: %v", line, err)
		}
		out = append(out, a["create"].ID)
	}
	return out
}

// A batch goes in up to maxInFlightRequests bulk requests at once, never
// more, rejected items included; every item is stored once.
func TestRequestsInFlightAreBounded(t *testing.T) {
	tg, index := halfRejected(t)
	srv := tg.fake
	const inflight = 3
	var mu sync.Mutex
	now, most := 0, 0
	all := make(chan struct{})
	srv.BeforeBulk(func() func() {
		mu.Lock()
		now++
		most = max(most, now)
		if now == inflight && all != nil {
			close(all)
			all = nil
		}
		wait := all
		mu.Unlock()
		if wait != nil {
			// Held until the others arrive: a sink that sent one
			// request at a time would go on after a while, with
			// most == 1.
			select {
			case <-wait:
			case <-time.After(5 * time.Second):
			}
		}
		return func() {
			mu.Lock()
			defer mu.Unlock()
			now--
		}
	})
	cfg := tg.config(index)
	cfg.MaxInFlightRequests = inflight
	s := newSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 2000, 1)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	mu.Lock()
	defer mu.Unlock()
	if most != inflight {
		t.Errorf("at most %d requests in flight at once, want %d", most, inflight)
	}
	if v := testutil.ToFloat64(s.itemRetries); v < float64(len(b.Records))/2 {
		t.Errorf("item retries counted = %v for %d records half rejected", v, len(b.Records))
	}
}

// Item retries are logged at most every retryLogEvery, the writes'
// counts added up in between.
func TestItemRetriesLogRateLimited(t *testing.T) {
	tg, index := halfRejected(t)
	var logs bytes.Buffer
	s, err := New(context.Background(), "es", tg.config(index), slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return clock }
	write := func(i int) {
		t.Helper()
		b := sinktest.Batch(sinktest.File(1), int64(i)<<32, sinktest.Events(i*100, 100, 1)...)
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	write(1)
	write(2)
	if n := strings.Count(logs.String(), "sent them again"); n != 1 {
		t.Fatalf("%d retry logs for three writes at once, want 1:\n%s", n, logs.String())
	}
	clock = clock.Add(retryLogEvery)
	write(3)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "writes=3") {
		t.Fatalf("after %v: logs\n%s\nwant a second line adding up the last three writes", retryLogEvery, logs.String())
	}
	total := 0
	for _, l := range lines {
		var n int
		fmt.Sscanf(l[strings.Index(l, "retried=")+len("retried="):], "%d", &n)
		total += n
	}
	if v := testutil.ToFloat64(s.itemRetries); int(v) != total {
		t.Errorf("logs add up to %d retries, the counter says %v", total, v)
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
		{10 * ms, 3, 3, 10 * ms},         // none through, a few: paced
		{10 * ms, 3, 3, 10 * ms},
		{10 * ms, 3, 3, 10 * ms},
		{10 * ms, 3, 3, 100 * ms}, // ten in a row rejected: backs off
		{10 * ms, 3, 3, 200 * ms},
		{10 * ms, 30, 30, 400 * ms},
		{10 * ms, 3, 3, 800 * ms},
		{10 * ms, 3, 3, 1600 * ms},
		{10 * ms, 3, 3, 2 * time.Second}, // to itemRetryMax
		{10 * ms, 1, 3, 3333333},         // some through again: paced, not backed off
		{10 * ms, 3, 3, 10 * ms},
		{10 * ms, 100, 100, 100 * ms}, // a large request all rejected backs off at once
	}
	var r rounds
	for i, st := range steps {
		if got := r.next(cfg, st.took, st.rejected, st.sent); got != st.want {
			t.Errorf("round %d: wait %v, want %v", i, got, st.want)
		}
	}
	if r.n != len(steps) || r.retried != 659 {
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
	cfg := tg.config(index) // itemRetryMax 10ms
	cfg.MaxInFlightRequests = 1
	s := newSink(t, cfg)
	slept := recordSleeps(s)
	b := testBatch()
	srv.FailRequests(503, 429)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records) || len(*slept) != 2 || (*slept)[0] != 10*time.Millisecond {
		t.Fatalf("%d documents of %d, waits %v; want all after two waits of 10ms", n, len(b.Records), *slept)
	}
	srv.FailRequests(503, 503, 503, 503)
	if err := s.Write(context.Background(), testBatch()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("after %d Retry-After: err = %v, want the 503", maxTold, err)
	}
}

// recordSleeps makes s record its waits instead of waiting; the requests
// of a write wait concurrently.
func recordSleeps(s *Sink) *[]time.Duration {
	var mu sync.Mutex
	var slept []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		slept = append(slept, d)
		return nil
	}
	return &slept
}
