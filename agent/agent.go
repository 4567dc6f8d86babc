package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/fsutil"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure the agent.
type Options struct {
	// AuditLogPath is kube-apiserver's --audit-log-path.
	AuditLogPath string
	// StateDir holds the checkpoint and the dead-letter directory.
	StateDir string
	// MaxLineBytes is the longest line shipped whole; longer lines are
	// shipped as stubs.
	MaxLineBytes int
	// PollInterval is how often the directory is scanned even without
	// file-system notifications.
	PollInterval time.Duration
	// CheckpointInterval is how often acknowledged positions are committed.
	CheckpointInterval time.Duration
	// DrainTimeout bounds how long shutdown waits for in-flight batches.
	DrainTimeout time.Duration
	// MaxOpenFiles bounds the descriptors held open to keep unread rotated
	// files readable after pruning. Each sink's reader may hold one more.
	MaxOpenFiles int
	// StartAt is "beginning" or "end": where to start on the first run,
	// when there is no checkpoint.
	StartAt string
	// HeartbeatInterval is how long a sink may go without a record before
	// it is sent a heartbeat record; 0 disables heartbeats.
	HeartbeatInterval time.Duration
	// Once stops the agent as soon as every sink has acknowledged
	// everything on disk, instead of following the live file.
	Once bool

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// BatchOptions bound a sink's batches.
type BatchOptions struct {
	MaxEvents     int
	MaxBytes      int
	FlushInterval time.Duration
}

// RetryOptions shape the backoff between failed writes.
type RetryOptions struct {
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

// SinkOptions attach a sink to the agent.
type SinkOptions struct {
	Sink  sinks.Sink
	Batch BatchOptions
	Retry RetryOptions
	// MaxInFlight is how many batches may wait for the writer beyond the
	// one it writes and the one the reader fills (0: none); it bounds
	// the sink's memory.
	MaxInFlight int
	// Drop lists the rules whose events this sink does not receive.
	Drop []DropRule
	// KeepSecrets ships Secret and TokenRequest bodies as they are instead
	// of replacing their values with SHA-256 digests (see
	// internal/redact).
	KeepSecrets bool
	// TagRules, when set, adds to each event record the ids of the
	// detection rules it matches (sinks.Record.Rules).
	TagRules *rules.Set
	// LineSums says the sink keys events by the SHA-256 of their line
	// (sinks.AppendID): the lines the sinks' readers share are hashed
	// once for all the sinks that say so, and the records carry the sum
	// (sinks.Record.Sum). A sink that does not say so gets the same keys,
	// hashed when it asks for them.
	LineSums bool
}

// blockCacheBytes bounds the file data the readers share (see block).
const blockCacheBytes = 4 << 20

// Agent follows the audit log and ships it to every sink at its own pace.
type Agent struct {
	opts  Options
	sinks []SinkOptions
	log   *slog.Logger
	m     *metrics
	store *checkpoint.Store

	// journals are the sinks' delivery journals, by sink name.
	journals map[string]*journal.Store

	mu    sync.Mutex
	ready bool
	reg   *registry
}

// New returns an agent. It does not touch the file system.
func New(opts Options, sinkOpts []SinkOptions) (*Agent, error) {
	if len(sinkOpts) == 0 {
		return nil, errors.New("agent: no sinks")
	}
	seen := make(map[string]bool)
	for _, s := range sinkOpts {
		if seen[s.Sink.Name()] {
			return nil, fmt.Errorf("agent: duplicate sink name %q", s.Sink.Name())
		}
		seen[s.Sink.Name()] = true
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Agent{
		opts: opts, sinks: sinkOpts, log: opts.Logger,
		m: newMetrics(opts.Registerer), store: checkpoint.NewStore(opts.StateDir),
	}, nil
}

// Ready reports whether the agent has loaded its state, started, and
// either delivered something to a sink or had nothing to deliver.
func (a *Agent) Ready() bool {
	a.mu.Lock()
	ready, reg := a.ready, a.reg
	a.mu.Unlock()
	return ready && reg.shipping()
}

// Started reports whether the agent has loaded its state and started.
func (a *Agent) Started() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready
}

// How the agent found its state at start.
const (
	stateResumed = "resumed"
	stateNone    = "none"
	stateCorrupt = "corrupt"
)

// loadState reads the checkpoint. A corrupt one is moved aside and every
// file on disk is read again: duplicates, never loss.
func (a *Agent) loadState() (st *checkpoint.State, how string, err error) {
	if err := fsutil.PrivateDir(a.opts.StateDir); err != nil {
		return nil, "", fmt.Errorf("state directory: %w", err)
	}
	st, found, err := a.store.Load()
	if errors.Is(err, checkpoint.ErrCorrupt) {
		dst, qerr := a.store.Quarantine(a.opts.Now())
		if qerr != nil {
			return nil, "", qerr
		}
		a.log.Error("checkpoint cannot be trusted; it was moved aside and every audit file on disk will be read again (duplicates, no loss)",
			"err", err, "movedTo", dst)
		return &checkpoint.State{}, stateCorrupt, nil
	}
	if err != nil {
		return nil, "", err
	}
	if !found {
		return st, stateNone, nil
	}
	return st, stateResumed, nil
}

// announceStart queues the start record, and a tamper record when the
// state was missing or corrupt, for every sink.
func (a *Agent) announceStart(reg *registry, st *checkpoint.State, how string) {
	now := a.opts.Now()
	rec := sinks.StartRecord{Kind: sinks.StartRecordKind, APIVersion: sinks.RecordAPIVersion, StartedAt: timestamp(now), State: how}
	if !st.SavedAt.IsZero() {
		rec.PreviousRunUntil = timestamp(st.SavedAt)
		rec.DowntimeSeconds = max(now.Sub(st.SavedAt).Seconds(), 0)
	}
	reg.pos.notify(sinks.KindStart, rec, now)
	switch how {
	case stateNone:
		reg.pos.notify(sinks.KindTamper, newTamper(sinks.TamperNoState, fmt.Sprintf(
			"no checkpoint in %s: the agent's first start on this node, or its state directory was deleted", a.opts.StateDir), now), now)
	case stateCorrupt:
		reg.pos.notify(sinks.KindTamper, newTamper(sinks.TamperCorruptState, fmt.Sprintf(
			"the checkpoint in %s could not be trusted and was moved aside; every audit file on disk is read again", a.opts.StateDir), now), now)
	}
}

// Run follows the audit log until ctx is cancelled, then shuts down in
// order and returns. It returns an error only if it cannot start, a sink's
// start-up check found it misconfigured (sinks.Checker), or it cannot
// commit the final checkpoint.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer a.closeState()
	st, how, err := a.loadState()
	if err != nil {
		return err
	}
	fresh := how == stateNone
	names := make([]string, len(a.sinks))
	for i, s := range a.sinks {
		names[i] = s.Sink.Name()
	}
	if err := a.openJournals(st, names, how == stateResumed); err != nil {
		return err
	}
	reg := newRegistry(a.opts.AuditLogPath, names, a.opts.MaxOpenFiles, st, a.m, a.log, a.opts.Now)
	for _, so := range a.sinks {
		if _, chained := so.Sink.(sinks.Anchorer); !chained {
			reg.pos.anchorTo = append(reg.pos.anchorTo, so.Sink.Name())
		}
	}
	a.announceStart(reg, st, how)
	reg.scan()
	if fresh && a.opts.StartAt == "end" {
		reg.skipExisting()
	}
	if err := a.commit(reg); err != nil {
		return err
	}
	for _, j := range a.journals {
		j.Covered(j.Gen()) // the checkpoint just committed holds what they held
	}

	readCtx, stopReading := context.WithCancel(context.Background())
	drainCtx, stopDraining := context.WithCancel(context.Background())
	defer stopDraining()
	var tag *rules.Set
	for _, so := range a.sinks {
		tag = cmp.Or(tag, so.TagRules)
	}
	var blocks *blockCache
	if len(a.sinks) > 1 {
		blocks = newBlockCache(a.opts.MaxLineBytes, blockCacheBytes, tag, a.m)
	}
	var watchers, readers, writers sync.WaitGroup
	watchers.Go(func() { a.watch(readCtx, reg) })
	for _, so := range a.sinks {
		out := make(chan *batchBuf, so.MaxInFlight)
		free := make(chan *batchBuf, so.MaxInFlight+2)
		for range so.MaxInFlight + 2 {
			free <- &batchBuf{}
		}
		rd := newReader(so.Sink.Name(), reg, a.m, readerOptions{
			log: a.log, now: a.opts.Now, maxLine: a.opts.MaxLineBytes, batch: so.Batch,
			poll: a.opts.PollInterval, out: out, free: free, redact: !so.KeepSecrets, drop: so.Drop,
			tag: so.TagRules, lineSums: so.LineSums, heartbeat: a.opts.HeartbeatInterval, blocks: blocks,
		})
		wr := newWriter(so, reg, a.m, a.log, a.opts.Now, filepath.Join(a.opts.StateDir, "dead-letter"), out, free, cancel)
		if j := a.journals[so.Sink.Name()]; j != nil {
			rd.inDoubt, wr.j = j.InDoubt(), j
		}
		readers.Go(func() { rd.run(readCtx, drainCtx) })
		writers.Go(func() { wr.run(drainCtx) })
	}
	committerDone := make(chan struct{})
	stopCommitter := make(chan struct{})
	go func() {
		defer close(committerDone)
		a.commitLoop(reg, stopCommitter)
	}()
	a.mu.Lock()
	a.ready, a.reg = true, reg
	a.mu.Unlock()
	a.log.Info("agent started", "auditLogPath", a.opts.AuditLogPath, "stateDir", a.opts.StateDir, "sinks", names)
	if a.opts.Once {
		go a.stopWhenCaughtUp(ctx, reg, func() { cancel(nil) })
	}

	<-ctx.Done()
	a.log.Info("shutting down", "drainTimeout", a.opts.DrainTimeout.String())
	// 1. Stop reading and watching; readers hand their partial batches to
	//    the writers.
	stopReading()
	deadline := time.AfterFunc(a.opts.DrainTimeout, stopDraining)
	defer deadline.Stop()
	watchers.Wait()
	readers.Wait()
	// 2. Writers finish the batches already handed to them, or give up at
	//    the drain deadline; unacknowledged batches are read again on the
	//    next start.
	writers.Wait()
	// 3. Commit the final positions.
	close(stopCommitter)
	<-committerDone
	err = a.commit(reg)
	// 4. Release the files and close the sinks.
	reg.files.closeAll()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelClose()
	for _, so := range a.sinks {
		if cerr := so.Sink.Close(closeCtx); cerr != nil {
			a.log.Warn("close sink", "sink", so.Sink.Name(), "err", cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("final checkpoint: %w", err)
	}
	if cause := context.Cause(ctx); sinks.IsMisconfigured(cause) {
		return cause
	}
	a.log.Info("stopped")
	return nil
}

// closeState releases the checkpoint's and the journals' files.
func (a *Agent) closeState() {
	a.store.Close()
	for _, j := range a.journals {
		j.Close()
	}
}

func (a *Agent) commitLoop(reg *registry, stop <-chan struct{}) {
	t := time.NewTicker(a.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if err := a.commit(reg); err != nil {
				a.log.Error("commit checkpoint; will retry", "err", err)
			}
		}
	}
}

// openJournals opens every sink's delivery journal and merges it into st:
// each sink resumes from the later of the checkpoint and its journal. A
// journal that cannot be trusted is moved aside, and that sink resumes from
// the checkpoint alone: duplicates, never loss. Without a checkpoint to
// resume (none, or one moved aside) every file is read again, and the
// journals are emptied.
func (a *Agent) openJournals(st *checkpoint.State, names []string, resume bool) error {
	a.journals = make(map[string]*journal.Store, len(names))
	for _, name := range names {
		j, err := journal.Open(a.opts.StateDir, name, a.opts.Now())
		if errors.Is(err, journal.ErrCorrupt) {
			a.log.Error("delivery journal cannot be trusted; this sink resumes from the checkpoint (what it received since may arrive twice)",
				"sink", name, "err", err)
		} else if err != nil {
			return err
		}
		a.journals[name] = j
		if !resume {
			if err := j.Forget(); err != nil {
				return err
			}
			continue
		}
		if conflicts := j.Apply(st, name); len(conflicts) > 0 {
			a.log.Warn("delivery journal names files the checkpoint knows as others; resuming those from the checkpoint",
				"sink", name, "seqs", conflicts)
		}
	}
	return nil
}

func (a *Agent) commit(reg *registry) error {
	// The deliveries acknowledged before the snapshot are in it.
	gens := reg.pos.deliveredGens()
	st, dirty := reg.snapshot()
	if !dirty {
		return nil
	}
	start := time.Now()
	err := a.store.Save(st)
	a.m.commitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		a.m.commitErrors.Inc()
		reg.pos.markDirty()
		return err
	}
	for sink, g := range gens {
		a.journals[sink].Covered(g)
	}
	step("", stepCommitted)
	return nil
}

func (a *Agent) stopWhenCaughtUp(ctx context.Context, reg *registry, stop func()) {
	t := time.NewTicker(min(a.opts.PollInterval, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if reg.caughtUp() {
				a.log.Info("every sink acknowledged everything on disk; stopping")
				stop()
				return
			}
		}
	}
}
