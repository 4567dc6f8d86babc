package elasticsearch

// The pacing of a write: rounds of rejected items, Retry-After, and the
// records acknowledged before a failed write.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditrail/auditrail/sinks"
)

// pending sets s.items to the records of b not acknowledged in an earlier,
// failed, write.
func (s *Sink) pending(b *sinks.Batch) {
	s.items = s.items[:0]
	for i := range b.Records {
		r := &b.Records[i]
		if len(s.acked) > 0 {
			s.id = sinks.AppendID(s.id[:0], r)
			if _, ok := s.acked[string(s.id)]; ok {
				continue
			}
		}
		s.items = append(s.items, item{rec: r})
	}
}

// remember adds to s.acked the ids of the records of b that are not in
// s.items, the ones still to send: Elasticsearch acknowledged them.
func (s *Sink) remember(b *sinks.Batch) {
	left := make(map[*sinks.Record]bool, len(s.items))
	for _, it := range s.items {
		left[it.rec] = true
	}
	if s.acked == nil {
		s.acked = map[string]struct{}{}
	}
	for i := range b.Records {
		if r := &b.Records[i]; !left[r] {
			s.acked[string(sinks.AppendID(s.id[:0], r))] = struct{}{}
		}
	}
}

// rounds paces the resending of rejected items within a write.
type rounds struct {
	n, retried int
	waited     time.Duration
	// idle is how many rounds in a row had every item rejected.
	idle int
	// told is how many times the write waited as Retry-After said.
	told int
}

// next returns how long to wait before sending again the rejected of
// sent items, after a request that took took. While some items get
// through, the cluster is busy, not down: the wait is the fraction
// rejected of the request's time, at most of itemRetryInitial, so that a
// cluster that answers slowly gets more room and a half-rejected batch
// takes a short round per halving, not a backoff doubling to seconds.
// Only rounds that get nothing through back off, doubling from
// itemRetryInitial up to itemRetryMax.
func (r *rounds) next(cfg Config, took time.Duration, rejected, sent int) time.Duration {
	r.n++
	r.retried += rejected
	d := min(took, time.Duration(cfg.ItemRetryInitial)) * time.Duration(rejected) / time.Duration(sent)
	if rejected < sent {
		r.idle = 0
	} else {
		d = min(time.Duration(cfg.ItemRetryInitial)<<min(r.idle, 20), time.Duration(cfg.ItemRetryMax))
		r.idle++
	}
	r.waited += d
	return d
}

// maxTold is how many times a write waits as a whole request's
// Retry-After says before it fails and leaves the retry to the agent.
const maxTold = 3

// waitAsTold waits, when err is a 429 or 503 with Retry-After, as long
// as the cluster asked, at most itemRetryMax, and reports whether the
// write should send the same items again.
func (s *Sink) waitAsTold(ctx context.Context, err error, r *rounds) bool {
	var b *busyError
	if !errors.As(err, &b) || r.told >= maxTold {
		return false
	}
	r.told++
	d := min(b.wait, time.Duration(s.cfg.ItemRetryMax))
	r.waited += d
	return s.sleep(ctx, d) == nil
}

// busyError is a whole request answered 429 or 503 with a Retry-After.
type busyError struct {
	wait time.Duration
	err  error
}

func (e *busyError) Error() string { return e.err.Error() }
func (e *busyError) Unwrap() error { return e.err }

// busyOr returns err as a busyError if res is a 429 or 503 with a
// Retry-After in seconds or as an HTTP date, err if not.
func busyOr(res *esapi.Response, err error, now time.Time) error {
	v := res.Header.Get("Retry-After")
	if (res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable) || v == "" {
		return err
	}
	if n, perr := strconv.Atoi(v); perr == nil && n >= 0 {
		return &busyError{wait: time.Duration(n) * time.Second, err: err}
	}
	if t, perr := http.ParseTime(v); perr == nil {
		return &busyError{wait: max(t.Sub(now), 0), err: err}
	}
	return err
}

// logRetries logs, once a write, how many items were rejected and sent
// again, and how many requests were answered with a Retry-After: counts
// only, the reasons may quote the documents.
func (s *Sink) logRetries(r *rounds) {
	if r.n == 0 && r.told == 0 {
		return
	}
	s.log.Warn("Elasticsearch rejected items with 429 or 5xx; sent them again", "sink", s.name,
		"retried", r.retried, "rounds", r.n, "retryAfter", r.told, "waited", r.waited)
}
