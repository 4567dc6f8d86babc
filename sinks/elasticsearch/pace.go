package elasticsearch

// The pacing of a write: rounds of rejected items, Retry-After, and the
// records acknowledged before a failed write.

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditrail/auditrail/sinks"
)

// pending returns the records of b not acknowledged in an earlier,
// failed, write.
func (s *Sink) pending(b *sinks.Batch) []item {
	items := s.items[:0]
	var id []byte
	for i := range b.Records {
		r := &b.Records[i]
		if len(s.acked) > 0 {
			id = sinks.AppendID(id[:0], r)
			if _, ok := s.acked[string(id)]; ok {
				continue
			}
		}
		items = append(items, item{rec: r})
	}
	return items
}

// remember adds the ids of acked, records Elasticsearch stored in a write
// that failed, to s.acked.
func (s *Sink) remember(acked []*sinks.Record) {
	if s.acked == nil {
		s.acked = map[string]struct{}{}
	}
	var id []byte
	for _, r := range acked {
		id = sinks.AppendID(id[:0], r)
		s.acked[string(id)] = struct{}{}
	}
}

// rounds paces the resending of rejected items within a write.
type rounds struct {
	n, retried int
	waited     time.Duration
	// refused counts the items rejected since the last one accepted, and
	// idle the waits backed off since.
	refused, idle int
	// told is how many times the write waited as Retry-After said.
	told int
}

// idleItems is how many items in a row must be rejected, none accepted,
// before the waits back off: a request of one or two items all rejected
// says little of a cluster that rejects half (one in a thousand
// rejects ten in a row), a run of ten that it may reject everything.
const idleItems = 10

// next returns how long to wait before sending again the rejected of
// sent items, after a request that took took. While items get through,
// the cluster is busy, not down: the wait is the fraction rejected of the
// request's time, at most of itemRetryInitial, so that a cluster that
// answers slowly gets more room and a half-rejected batch takes a short
// round per halving, not a backoff doubling to seconds. Only once
// idleItems in a row were rejected do the waits back off, doubling from
// itemRetryInitial up to itemRetryMax.
func (r *rounds) next(cfg Config, took time.Duration, rejected, sent int) time.Duration {
	r.n++
	r.retried += rejected
	d := min(took, time.Duration(cfg.ItemRetryInitial)) * time.Duration(rejected) / time.Duration(sent)
	if rejected < sent {
		r.refused, r.idle = 0, 0
	} else if r.refused += rejected; r.refused >= idleItems {
		d = min(time.Duration(cfg.ItemRetryInitial)<<min(r.idle, 20), time.Duration(cfg.ItemRetryMax))
		r.idle++
	}
	r.waited += d
	return d
}

// maxTold is how many times a write waits as a whole request's
// Retry-After says before it fails and leaves the retry to the agent.
const maxTold = 3

// retryAfter returns how long a request answered 429 or 503 with
// Retry-After asks to wait, and whether it did.
func retryAfter(err error) (time.Duration, bool) {
	var b *busyError
	if !errors.As(err, &b) {
		return 0, false
	}
	return b.wait, true
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

// retryLogEvery is the least time between two logs of item retries.
const retryLogEvery = 10 * time.Second

// retryLog adds up the item retries of the writes since it last logged.
type retryLog struct {
	last     time.Time
	writes   int
	requests int
	retried  int
	told     int
	waited   time.Duration
}

// logRetries adds up the retries of a write and logs them, with those of
// the writes before that were not logged, at most every retryLogEvery:
// counts only, the reasons may quote the documents.
func (s *Sink) logRetries(r *rounds) {
	l := &s.retryLog
	if r.n > 0 || r.told > 0 {
		l.writes++
		l.requests += r.n
		l.retried += r.retried
		l.told += r.told
		l.waited += r.waited
	}
	now := s.now()
	if l.writes == 0 || (!l.last.IsZero() && now.Sub(l.last) < retryLogEvery) {
		return
	}
	s.log.Warn("Elasticsearch rejected items with 429 or 5xx; sent them again", "sink", s.name,
		"retried", l.retried, "requests", l.requests, "writes", l.writes, "retryAfter", l.told, "waited", l.waited)
	*l = retryLog{last: now}
}
