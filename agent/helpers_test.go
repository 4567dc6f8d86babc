package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// got is a record as a recording sink saw it.
type got struct {
	Line   string
	Kind   sinks.Kind
	FileID string
	Offset int64
	Rules  string
	// ID is the record's idempotency key, sinks.AppendID.
	ID string
}

// recSink records every accepted batch. fail, when set, decides per call
// whether to fail; block, when set, makes Write wait until it is closed.
type recSink struct {
	name string

	mu    sync.Mutex
	recs  []got
	calls int
	fail  func(call int) error
	block chan struct{}
}

func (s *recSink) Name() string { return s.name }

func (s *recSink) Write(ctx context.Context, b *sinks.Batch) error {
	s.mu.Lock()
	s.calls++
	call, fail, block := s.calls, s.fail, s.block
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(call); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range b.Records {
		if err := checkEvent(&r); err != nil {
			return sinks.Permanent(err)
		}
		s.recs = append(s.recs, got{Line: string(r.Line), Kind: r.Kind, FileID: r.File.ID, Offset: r.Offset,
			Rules: strings.Join(r.Rules, ","), ID: string(sinks.AppendID(nil, &r))})
	}
	return nil
}

// checkEvent reports a record whose parsed fields are not those of its
// own line: records of different sinks share events, and a sink that
// redacts has its own.
func checkEvent(r *sinks.Record) error {
	if (r.Event != nil) != (r.Kind == sinks.KindEvent) {
		return fmt.Errorf("%s record at %d: event %v", r.Kind, r.Offset, r.Event)
	}
	if r.Event == nil {
		return nil
	}
	var want auditjson.Event
	auditjson.Parse(r.Line, &want)
	if !reflect.DeepEqual(*r.Event, want) {
		return fmt.Errorf("record at %d: event fields are not its line's: %.80q", r.Offset, r.Line)
	}
	return nil
}

func (s *recSink) Close(context.Context) error { return nil }

// records returns the records read from the audit files, leaving out the
// tamper, heartbeat, start and anchor records (see ofKind).
func (s *recSink) records() []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []got
	for _, r := range s.recs {
		if r.Kind != sinks.KindTamper && r.Kind != sinks.KindHeartbeat && r.Kind != sinks.KindStart && r.Kind != sinks.KindAnchor {
			out = append(out, r)
		}
	}
	return out
}

// events returns the lines of KindEvent records.
func (s *recSink) events() []string {
	var out []string
	for _, r := range s.records() {
		if r.Kind == sinks.KindEvent {
			out = append(out, r.Line)
		}
	}
	return out
}

func (s *recSink) ofKind(k sinks.Kind) []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []got
	for _, r := range s.recs {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}

// env is a temporary audit directory and state directory.
type env struct {
	t     *testing.T
	dir   string
	live  string
	state string
	reg   *prometheus.Registry
	agent *Agent // the last started
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, dir: filepath.Join(root, "audit"), state: filepath.Join(root, "state")}
	e.live = filepath.Join(e.dir, "audit.log")
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) options() Options {
	e.reg = prometheus.NewRegistry()
	return Options{
		AuditLogPath: e.live, StateDir: e.state, MaxLineBytes: 1 << 20,
		PollInterval: 50 * time.Millisecond, CheckpointInterval: 50 * time.Millisecond,
		DrainTimeout: 5 * time.Second, MaxOpenFiles: 16, StartAt: "beginning",
		Logger: testLogger(), Registerer: e.reg,
	}
}

func sinkOpts(s sinks.Sink) SinkOptions {
	return SinkOptions{
		Sink:        s,
		Batch:       BatchOptions{MaxEvents: 100, MaxBytes: 1 << 20, FlushInterval: 20 * time.Millisecond},
		Retry:       RetryOptions{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond},
		MaxInFlight: 0,
	}
}

// start runs an agent until the returned stop function is called.
func (e *env) start(opts Options, ss ...sinks.Sink) (stop func()) {
	e.t.Helper()
	var so []SinkOptions
	for _, s := range ss {
		so = append(so, sinkOpts(s))
	}
	return e.startWith(opts, so)
}

// startWith is start with the sinks' options given.
func (e *env) startWith(opts Options, so []SinkOptions) (stop func()) {
	e.t.Helper()
	a, err := New(opts, so)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	eventually(e.t, "agent started", a.Started)
	e.agent = a
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// event returns a realistic audit line for id n.
func event(n int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"00000000-0000-0000-0000-%012d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"list","user":{"username":"system:admin","groups":["system:masters"]},"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:%02d.000000Z"}`, n, n%60)
}

func events(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, event(i))
	}
	return out
}

// appendLines appends lines, each with a newline, to path.
func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitEvents waits until s holds n events and checks they are want, in
// order and without duplicates.
func waitEvents(t *testing.T, s *recSink, want []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d events in %s", len(want), s.name), func() bool { return len(s.events()) >= len(want) })
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	gotEv := s.events()
	if len(gotEv) != len(want) {
		t.Fatalf("%s: got %d events, want %d", s.name, len(gotEv), len(want))
	}
	for i := range want {
		if gotEv[i] != want[i] {
			t.Fatalf("%s: event %d = %.80s..., want %.80s...", s.name, i, gotEv[i], want[i])
		}
	}
}

func lumberjackName(dir string, t time.Time) string {
	return filepath.Join(dir, "audit-"+t.UTC().Format(lumberjackTime)+".log")
}

// testLogger discards logs unless AUDITRAIL_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("AUDITRAIL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// shipThenStop writes events 0..n, runs an agent until s has them all, and
// stops it: the starting point of every restart scenario.
func (e *env) shipThenStop(s *recSink, n int) {
	e.t.Helper()
	appendLines(e.t, e.live, events(0, n)...)
	stop := e.start(e.options(), s)
	waitEvents(e.t, s, events(0, n))
	stop()
}
