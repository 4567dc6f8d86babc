package agent

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/auditrail/auditrail/internal/fsutil"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/sinks"
)

// writer delivers one sink's batches in order, retrying with exponential
// backoff and jitter, and acknowledges each batch's source ranges only once
// the sink accepted it.
type writer struct {
	sink   sinks.Sink
	name   string
	retry  RetryOptions
	reg    *registry
	m      *metrics
	log    *slog.Logger
	now    func() time.Time
	dlqDir string
	// j is the sink's delivery journal; nil without a state directory.
	j    *journal.Store
	in   <-chan *batchBuf
	free chan<- *batchBuf
	// fail stops the agent with err.
	fail func(err error)
	// anchored is the last chain head published, for a sinks.Anchorer.
	anchored sinks.AnchorRecord
}

func newWriter(so SinkOptions, reg *registry, m *metrics, log *slog.Logger, now func() time.Time, dlqRoot string, in <-chan *batchBuf, free chan<- *batchBuf, fail func(error)) *writer {
	return &writer{
		sink: so.Sink, name: so.Sink.Name(), retry: so.Retry, reg: reg, m: m, log: log, now: now,
		dlqDir: filepath.Join(dlqRoot, so.Sink.Name()), in: in, free: free, fail: fail,
	}
}

// checkTimeout bounds a sink's start-up check (sinks.Checker).
const checkTimeout = 15 * time.Second

// run checks the sink, then delivers batches until the input closes or
// ctx ends.
func (w *writer) run(ctx context.Context) {
	if err := w.check(ctx); err != nil {
		w.fail(err)
		w.discard()
		return
	}
	defer w.flushJournal(ctx)
	for {
		b, ok := w.next(ctx)
		if !ok {
			return
		}
		// A batch with records is journaled: its intent before the first
		// attempt, its positions once accepted (see package journal),
		// written with the next intent or when the sink goes idle.
		journaled := w.j != nil && len(b.Records) > 0
		if journaled {
			if b.Cut.IsZero() {
				b.Cut = w.now().UTC().Round(0) // as the journal keeps it
			}
			in := w.intentOf(b)
			if !w.journal(ctx, "record intent", func() error { return w.j.Intend(in) }) {
				return
			}
			step(w.name, stepIntent)
		}
		if !w.deliver(ctx, b) {
			// Not acknowledged: it is cut again on the next start.
			return
		}
		var gen uint64
		if journaled {
			step(w.name, stepWritten)
			gen = w.j.Record(w.deliveredOf(b), noticeIDs(b.notices))
			step(w.name, stepDelivered)
		}
		w.publishHead() // before the ack, so that the agent is not caught up without it
		w.reg.ack(w.name, b.Segments)
		w.reg.pos.ackNotices(w.name, b.notices)
		if journaled {
			w.reg.pos.deliveredGen(w.name, gen)
			step(w.name, stepAcked)
		}
		if len(b.Records) > 0 {
			w.m.shippedRecords.WithLabelValues(w.name).Add(float64(len(b.Records)))
			w.m.shippedBytes.WithLabelValues(w.name).Add(float64(b.Bytes))
			w.m.batches.WithLabelValues(w.name).Inc()
			w.m.lastSuccess.WithLabelValues(w.name).Set(float64(w.now().UnixNano()) / 1e9)
		}
		b.reset()
		w.free <- b
	}
}

// next returns the next batch, false once the input is closed. When none
// is waiting it first writes the deliveries the journal holds only in
// memory: a sink that goes idle leaves no batch in doubt behind.
func (w *writer) next(ctx context.Context) (*batchBuf, bool) {
	select {
	case b, ok := <-w.in:
		return b, ok
	default:
	}
	w.flushJournal(ctx)
	b, ok := <-w.in
	return b, ok
}

// flushJournal writes the deliveries recorded and not written yet.
func (w *writer) flushJournal(ctx context.Context) {
	if w.j != nil && w.j.Dirty() {
		w.journal(ctx, "record delivery", w.j.Flush)
	}
}

// journal runs commit, a write of the journal, until it succeeds or ctx
// ends; it reports whether it succeeded.
func (w *writer) journal(ctx context.Context, what string, commit func() error) bool {
	bo := backoff{opts: w.retry}
	for {
		err := commit()
		if err == nil {
			return true
		}
		d := bo.next()
		w.log.Error("delivery journal; retrying", "sink", w.name, "step", what, "retryIn", d, "err", err)
		if !sleep(ctx, d) {
			return false
		}
	}
}

func noticeIDs(ns []*notice) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ref.ID
	}
	return out
}

// publishHead queues the sink's hash chain head as an anchor record for the
// other sinks when it moved (sinks.Anchorer).
func (w *writer) publishHead() {
	a, ok := w.sink.(sinks.Anchorer)
	if !ok {
		return
	}
	h, ok := a.Head()
	if !ok || h.Epoch == w.anchored.Epoch && h.Seq == w.anchored.Seq {
		return
	}
	w.anchored = h
	now := w.now()
	h.AnchoredAt = timestamp(now)
	w.reg.pos.anchor(w.name, h, now)
}

// check runs the sink's start-up check, if it has one, in the sink's own
// goroutine: an endpoint that does not answer delays this sink alone. It
// returns the error only when the sink is misconfigured; other failures
// are logged, and the writes retry.
func (w *writer) check(ctx context.Context) error {
	c, ok := w.sink.(sinks.Checker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	err := c.Check(ctx)
	if err == nil || sinks.IsMisconfigured(err) {
		return err
	}
	w.log.Warn("sink start-up check could not complete; writes will retry", "sink", w.name, "err", err)
	return nil
}

// discard hands batches back unacknowledged until the input closes, so
// that the reader never blocks on a writer that stopped: they are read
// again on the next start.
func (w *writer) discard() {
	for b := range w.in {
		b.reset()
		w.free <- b
	}
}

// deliver writes b until the sink accepts it, or routes it to the
// dead-letter directory on a permanent error. It returns false if ctx ended
// first.
func (w *writer) deliver(ctx context.Context, b *batchBuf) bool {
	if len(b.Records) == 0 {
		return true
	}
	bo := backoff{opts: w.retry}
	took := w.m.writeDuration.WithLabelValues(w.name)
	for {
		start := time.Now()
		err := w.sink.Write(ctx, &b.Batch)
		took.Observe(time.Since(start).Seconds())
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if sinks.IsPermanent(err) {
			w.m.failures.WithLabelValues(w.name).Inc()
			w.log.Error("batch failed permanently; writing it to the dead-letter directory",
				"sink", w.name, "records", len(b.Records), "err", err)
			return w.deadLetter(ctx, b, err)
		}
		w.m.retries.WithLabelValues(w.name).Inc()
		d := bo.next()
		w.log.Warn("sink write failed; retrying", "sink", w.name, "records", len(b.Records), "retryIn", d, "err", err)
		if !sleep(ctx, d) {
			return false
		}
	}
}

// deadLetter writes b's records, one per line, to a new file in the sink's
// dead-letter directory, retrying until it succeeds or ctx ends.
func (w *writer) deadLetter(ctx context.Context, b *batchBuf, cause error) bool {
	bo := backoff{opts: w.retry}
	for {
		err := w.writeDeadLetter(b, cause)
		if err == nil {
			w.m.deadLetter.WithLabelValues(w.name).Add(float64(len(b.Records)))
			return true
		}
		w.log.Error("write dead-letter file; retrying", "sink", w.name, "err", err)
		if !sleep(ctx, bo.next()) {
			return false
		}
	}
}

func (w *writer) writeDeadLetter(b *batchBuf, cause error) error {
	if err := fsutil.PrivateDir(w.dlqDir); err != nil {
		return fmt.Errorf("dead-letter directory: %w", err)
	}
	path := filepath.Join(w.dlqDir, fmt.Sprintf("%d.ndjson", w.now().UnixNano()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create dead-letter file: %w", err)
	}
	bw := bufio.NewWriter(f)
	for _, r := range b.Records {
		bw.Write(r.Line)
		bw.WriteByte('\n')
	}
	err = bw.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write dead-letter file %s: %w", path, err)
	}
	w.log.Warn("dead-letter file written", "sink", w.name, "path", path, "records", len(b.Records), "cause", cause.Error())
	return nil
}

// backoff yields exponentially growing intervals with ±20% jitter.
type backoff struct {
	opts RetryOptions
	cur  time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.opts.InitialInterval
	} else {
		b.cur = min(2*b.cur, b.opts.MaxInterval)
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(b.cur) * jitter)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
