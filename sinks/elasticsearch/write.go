package elasticsearch

// A write: the batch split into bulk requests, up to maxInFlightRequests
// of them at a time, each item acknowledged by the request that stored it.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// minBulkItems is the fewest items a batch is split into requests of: a
// smaller batch goes in one request, as a request costs about as much as
// a few dozen items.
const minBulkItems = 64

// conn is what one request in flight needs for itself: its body, its
// response, and the items it sends, retries and acknowledges.
type conn struct {
	body     bytes.Buffer
	resp     bytes.Buffer
	ruleMeta []byte
	items    []item
	retry    []item
	acked    []*sinks.Record
}

// write is the state of one Write shared by its requests.
type write struct {
	s *Sink
	// chunk is the most items one request takes.
	chunk int

	mu sync.Mutex
	// ready is signalled when items join the queue, a request ends, or
	// the write fails.
	ready sync.Cond
	// queue holds the items to send: the batch's, then those rejected
	// with 429 or 5xx and those due for the dead-letter index.
	queue []item
	// fresh counts the batch's items at the head of the queue, not sent
	// yet.
	fresh int
	// busy counts the requests in flight and those whose rejected items
	// wait out their pacing before they join the queue again.
	busy  int
	err   error
	acked []*sinks.Record
	r     rounds
}

// send delivers s.items in requests of at most w.chunk items, up to
// maxInFlightRequests at a time, until every item is stored or a request
// fails. It returns the first failure; w.acked holds the records stored
// either way.
func (w *write) send(ctx context.Context) error {
	w.ready.L = &w.mu
	n := len(w.queue)
	w.fresh = n
	workers := min(w.s.cfg.MaxInFlightRequests, (n+w.chunk-1)/w.chunk)
	for len(w.s.conns) < workers {
		w.s.conns = append(w.s.conns, &conn{})
	}
	var wg sync.WaitGroup
	for _, c := range w.s.conns[:workers] {
		wg.Go(func() { w.run(ctx, c) })
	}
	wg.Wait()
	return w.err
}

// run sends requests on c until the queue is empty with nothing in
// flight, or the write has failed.
func (w *write) run(ctx context.Context, c *conn) {
	for w.take(c) {
		w.done(c, w.request(ctx, c))
	}
}

// take moves up to w.chunk items from the queue to c.items. Once the
// batch's own items are all sent, it waits while the queue has less than
// w.chunk items and other requests may still add to it, so that the
// items they had rejected go together in full requests, not in a tail of
// small ones each paced on its own. It reports false when there is
// nothing more to send, or the write failed.
func (w *write) take(c *conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.err == nil && w.busy > 0 && w.fresh == 0 && len(w.queue) < w.chunk {
		w.ready.Wait()
	}
	if w.err != nil || len(w.queue) == 0 {
		return false
	}
	n := min(len(w.queue), w.chunk)
	w.fresh -= min(n, w.fresh)
	c.items = append(c.items[:0], w.queue[:n]...)
	w.queue = w.queue[:copy(w.queue, w.queue[n:])]
	w.busy++
	return true
}

// request sends c.items, again after a Retry-After while the write may
// still wait as told, and leaves in c.retry the items to send again.
func (w *write) request(ctx context.Context, c *conn) error {
	for {
		c.acked = c.acked[:0]
		start := w.s.now()
		err := w.s.bulk(ctx, c)
		if err == nil && len(c.retry) > 0 {
			w.mu.Lock()
			d := w.r.next(w.s.cfg, w.s.now().Sub(start), len(c.retry), len(c.items))
			w.mu.Unlock()
			// The rejected items wait here, not in the queue, so that
			// no other request sends them before their time.
			if err := w.s.sleep(ctx, d); err != nil {
				return fmt.Errorf("%d items still rejected: %w", len(c.retry), err)
			}
		}
		if err == nil || !w.waitAsTold(ctx, err) {
			return err
		}
	}
}

// done records what c's request acknowledged and queues what it did not,
// or fails the write with err.
func (w *write) done(c *conn, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy--
	w.acked = append(w.acked, c.acked...)
	if err != nil && w.err == nil {
		w.err = err
	}
	if err == nil {
		w.queue = append(w.queue, c.retry...)
	}
	w.ready.Broadcast()
}

// waitAsTold waits, when err is a 429 or 503 with Retry-After, as long
// as the cluster asked, at most itemRetryMax, and reports whether the
// request should be sent again: at most maxTold times a write.
func (w *write) waitAsTold(ctx context.Context, err error) bool {
	d, ok := retryAfter(err)
	if !ok {
		return false
	}
	w.mu.Lock()
	if w.r.told >= maxTold {
		w.mu.Unlock()
		return false
	}
	w.r.told++
	d = min(d, time.Duration(w.s.cfg.ItemRetryMax))
	w.r.waited += d
	w.mu.Unlock()
	return w.s.sleep(ctx, d) == nil
}
