package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// A sink that blocks forever does not delay another sink.
func TestBlockedSinkDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t)
	stuck := &recSink{name: "stuck", block: make(chan struct{})}
	fast := &recSink{name: "fast"}
	e.start(e.options(), stuck, fast)
	for i := 0; i < 5; i++ {
		appendLines(t, e.live, events(i*1000, i*1000+500)...)
	}
	var want []string
	for i := 0; i < 5; i++ {
		want = append(want, events(i*1000, i*1000+500)...)
	}
	waitEvents(t, fast, want)
	if len(stuck.records()) != 0 {
		t.Fatal("blocked sink recorded data")
	}
}

// Retryable errors are retried; the batch is delivered once.
func TestRetryThenSucceed(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec", fail: func(call int) error {
		if call <= 3 {
			return errors.New("connection refused")
		}
		return nil
	}}
	appendLines(t, e.live, events(0, 10)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 10))
	if v := counterValue(t, e.reg, "auditrail_sink_retries_total"); v != 3 {
		t.Fatalf("retries = %v, want 3", v)
	}
	// Every attempt is timed, failed or not.
	eventually(t, "a timed write attempt per batch and retry", func() bool {
		attempts, batches := counterValue(t, e.reg, "auditrail_sink_write_duration_seconds"), counterValue(t, e.reg, "auditrail_sink_batches_total")
		return batches > 0 && attempts == batches+3
	})
}

// A permanent error routes the batch to the dead-letter directory; the
// positions move on and the next batches are delivered.
func TestPermanentErrorGoesToDeadLetter(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec", fail: func(call int) error {
		if call == 1 {
			return sinks.Permanent(errors.New("mapping error"))
		}
		return nil
	}}
	appendLines(t, e.live, events(0, 5)...)
	e.start(e.options(), s)
	eventually(t, "dead-letter file", func() bool {
		m, _ := filepath.Glob(filepath.Join(e.state, "dead-letter", "rec", "*.ndjson"))
		return len(m) == 1
	})
	m, _ := filepath.Glob(filepath.Join(e.state, "dead-letter", "rec", "*.ndjson"))
	b, _ := os.ReadFile(m[0])
	// The first batch also holds the start records, which go with it.
	if !strings.HasSuffix(string(b), "\n"+strings.Join(events(0, 5), "\n")+"\n") || !strings.Contains(string(b), sinks.StartRecordKind) {
		t.Fatalf("dead-letter content = %q", b)
	}
	appendLines(t, e.live, events(5, 8)...)
	waitEvents(t, s, events(5, 8))
}

// A graceful stop commits positions: a restart delivers nothing again.
func TestStopCommitsNoDuplicates(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 1000)
	st, found, err := checkpoint.NewStore(e.state).Load()
	if err != nil || !found || len(st.Files) != 1 {
		t.Fatalf("checkpoint after stop: %+v %v %v", st, found, err)
	}
	fi, _ := os.Stat(e.live)
	if c := st.Files[0].Cursors["rec"]; c.Offset != fi.Size() {
		t.Fatalf("committed offset %d, want %d", c.Offset, fi.Size())
	}
	e.start(e.options(), s)
	appendLines(t, e.live, events(1000, 1001)...)
	waitEvents(t, s, events(0, 1001))
}

// A new sink added to the config starts from the beginning of what is on
// disk; the existing sink continues where it was.
func TestNewSinkReadsFromStart(t *testing.T) {
	e := newEnv(t)
	a := &recSink{name: "a"}
	e.shipThenStop(a, 10)
	b := &recSink{name: "b"}
	e.start(e.options(), a, b)
	waitEvents(t, b, events(0, 10))
	waitEvents(t, a, events(0, 10))
}

// A corrupt checkpoint is moved aside and everything is read again.
func TestCorruptCheckpointRereads(t *testing.T) {
	e := newEnv(t)
	a := &recSink{name: "a"}
	e.shipThenStop(a, 10)
	corruptCheckpoint(t, e.state, []byte(`{"version":1,"garbage`))
	b := &recSink{name: "a"}
	e.start(e.options(), b)
	waitEvents(t, b, events(0, 10))
	m, _ := filepath.Glob(filepath.Join(e.state, checkpoint.Name+".*.corrupt-*"))
	if len(m) != 2 {
		t.Fatalf("corrupt checkpoint not kept aside: %v", m)
	}
}

// startAt: end skips what is on disk at the first start only.
func TestStartAtEnd(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 10)...)
	opts := e.options()
	opts.StartAt = "end"
	e.start(opts, s)
	appendLines(t, e.live, events(10, 12)...)
	waitEvents(t, s, events(10, 12))
}

// counterValue sums the values of the counters or gauges called name, or
// the sample counts of the histograms; with labelValue (a label's name
// and value), only the series that have that label value.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labelValue ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := len(labelValue) < 2
			for _, lp := range m.GetLabel() {
				match = match || lp.GetName() == labelValue[0] && lp.GetValue() == labelValue[1]
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				sum += g.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			}
		}
	}
	return sum
}

// Ready (the /readyz probe) waits for a first delivery when there is data
// to ship, and is true at once when there is none.
func TestReadiness(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.live, events(0, 10)...)
	blocked := &recSink{name: "blocked", block: make(chan struct{})}
	e.start(e.options(), blocked)
	time.Sleep(200 * time.Millisecond)
	if e.agent.Ready() {
		t.Fatal("ready before any sink acknowledged the data on disk")
	}
	close(blocked.block)
	eventually(t, "ready after the first delivery", e.agent.Ready)

	empty := newEnv(t)
	empty.start(empty.options(), &recSink{name: "rec"})
	eventually(t, "ready with nothing to ship", empty.agent.Ready)
}

// Per-file gauges show each sink's acknowledged offset and go away with
// the file.
func TestFileOffsetMetrics(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 10)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 10))
	size := float64(len(strings.Join(events(0, 10), "\n")) + 1)
	eventually(t, "offset gauge at the end of the file", func() bool {
		return counterValue(t, e.reg, "auditrail_file_offset_bytes") == size && counterValue(t, e.reg, "auditrail_file_size_bytes") == size
	})
	backup := lumberjackName(e.dir, time.Now())
	os.Rename(e.live, backup)
	appendLines(t, e.live, events(10, 12)...)
	waitEvents(t, s, events(0, 12))
	os.Remove(backup)
	size2 := float64(len(strings.Join(events(10, 12), "\n")) + 1)
	eventually(t, "the pruned file's gauges removed", func() bool {
		return counterValue(t, e.reg, "auditrail_file_offset_bytes") == size2
	})
}

// Secret values in event bodies are replaced by digests for every sink
// but one that opted out.
func TestSecretsRedacted(t *testing.T) {
	e := newEnv(t)
	secret := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5f6a7b8c-0000-4000-8000-000000000005","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets/db","verb":"get","user":{"username":"alice@example.com"},"objectRef":{"resource":"secrets","namespace":"default","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default"},"data":{"password":"aHVudGVyMg=="},"type":"Opaque"},"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.001000Z"}`
	appendLines(t, e.live, event(0), secret, event(1))
	redacted, raw := &recSink{name: "es"}, &recSink{name: "s3"}
	keep := sinkOpts(raw)
	keep.KeepSecrets = true
	e.startWith(e.options(), []SinkOptions{sinkOpts(redacted), keep})
	eventually(t, "3 events in both sinks", func() bool { return len(redacted.events()) == 3 && len(raw.events()) == 3 })
	if got := redacted.events()[1]; strings.Contains(got, "aHVudGVyMg==") || !strings.Contains(got, `"password":"sha256:`) {
		t.Errorf("redacted sink got %s", got)
	}
	if got := raw.events()[1]; got != secret {
		t.Errorf("opted-out sink got %s, want the original", got)
	}
	if got := redacted.events()[0]; got != event(0) {
		t.Errorf("an event without secrets changed: %s", got)
	}
	if r, o := redacted.records()[1].ID, raw.records()[1].ID; r != o {
		t.Errorf("the redacted event's id is %s, the original's %s: sinks disagree on what it is", r, o)
	}
	if v := counterValue(t, e.reg, "auditrail_redacted_values_total"); v != 1 {
		t.Errorf("auditrail_redacted_values_total = %v, want 1", v)
	}
}

// A sink's drop rules keep matching events from it, and only from it;
// the cursor still moves past them and the drops are counted per rule.
func TestDropRules(t *testing.T) {
	e := newEnv(t)
	lease := func(n int) string {
		return strings.Replace(strings.Replace(event(n), `"verb":"list"`, `"verb":"get"`, 1),
			`"objectRef":{"resource":"pods"`, `"objectRef":{"resource":"leases"`, 1)
	}
	ctrl := strings.Replace(lease(1), `"username":"system:admin"`, `"username":"system:kube-controller-manager"`, 1)
	lines := []string{event(0), ctrl, lease(2), event(3), "not json"}
	appendLines(t, e.live, lines...)
	filtered, all := &recSink{name: "es"}, &recSink{name: "s3"}
	fo := sinkOpts(filtered)
	fo.Drop = []DropRule{{Name: "controller-leases", Verbs: []string{"get", "watch"}, Resources: []string{"leases"}, Users: []string{"system:kube-*"}}}
	e.startWith(e.options(), []SinkOptions{fo, sinkOpts(all)})
	eventually(t, "every line in the unfiltered sink", func() bool { return len(all.records()) == 5 })
	eventually(t, "the filtered sink caught up", func() bool { return len(filtered.records()) == 4 })
	want := []string{event(0), lease(2), event(3)}
	if got := filtered.events(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("filtered sink got %d events, want the lease read by system:admin kept and the controller's dropped:\n%s", len(got), strings.Join(got, "\n"))
	}
	if v := counterValue(t, e.reg, "auditrail_events_dropped_total"); v != 1 {
		t.Errorf("auditrail_events_dropped_total = %v, want 1", v)
	}
	eventually(t, "the filtered sink's cursor at the end", func() bool {
		return e.agent.reg.caughtUp()
	})
}

// A sink with TagRules gets the ids of the rules each event matched; one
// without gets none.
func TestTagRules(t *testing.T) {
	e := newEnv(t)
	read := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"5f6a7b8c-0000-4000-8000-000000000006","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/prod/secrets/db","verb":"get","user":{"username":"alice@example.com","groups":["system:authenticated"]},"impersonatedUser":{"username":"bob"},"objectRef":{"resource":"secrets","namespace":"prod","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.001000Z","annotations":{"authorization.k8s.io/decision":"allow"}}`
	appendLines(t, e.live, event(0), read, "not json")
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tagged, plain := &recSink{name: "es"}, &recSink{name: "s3"}
	to := sinkOpts(tagged)
	to.TagRules = set
	e.startWith(e.options(), []SinkOptions{to, sinkOpts(plain)})
	eventually(t, "3 lines in both sinks", func() bool { return len(tagged.records()) == 3 && len(plain.records()) == 3 })
	var gotTags, plainTags []string
	for i := range 3 {
		gotTags = append(gotTags, tagged.records()[i].Rules)
		plainTags = append(plainTags, plain.records()[i].Rules)
	}
	if want := []string{"", "secret-read,impersonation", ""}; !slices.Equal(gotTags, want) {
		t.Errorf("tagged sink rules %q, want %q", gotTags, want)
	}
	if want := []string{"", "", ""}; !slices.Equal(plainTags, want) {
		t.Errorf("untagged sink rules %q", plainTags)
	}
}

// Sinks at the same position share the blocks they read: every block is
// read from the file once, and what one sink's reader took from a block is
// what the other's took, line for line, around the lines a block does not
// hold (above the size limit, a NUL hole) and that each reader frames
// itself.
func TestSinksShareBlocks(t *testing.T) {
	e := newEnv(t)
	var lines []string
	lines = append(lines, events(0, 2000)...)
	lines = append(lines, "", "not json", strings.Repeat("x", 8<<10), "\x00\x00"+event(2000))
	lines = append(lines, events(2001, 4000)...)
	appendLines(t, e.live, lines...)
	a, b := &recSink{name: "a"}, &recSink{name: "b"}
	opts := e.options()
	opts.MaxLineBytes = 4 << 10
	e.start(opts, a, b)
	want := append(events(0, 2000), events(2000, 4000)...)
	waitEvents(t, a, want)
	waitEvents(t, b, want)
	ra, rb := a.records(), b.records()
	if len(ra) != len(rb) {
		t.Fatalf("a has %d records, b %d", len(ra), len(rb))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.Kind == sinks.KindOversized {
			x.Line, y.Line = "", "" // stubs say when they were made
		}
		if x != y {
			t.Fatalf("record %d: a %s %s@%d %.80q, b %s %s@%d %.80q", i, x.Kind, x.FileID, x.Offset, x.Line, y.Kind, y.FileID, y.Offset, y.Line)
		}
	}
	offsets := make(map[string]int64)
	var off int64
	for _, l := range lines {
		offsets[l] = off
		off += int64(len(l)) + 1
	}
	for _, r := range ra {
		if want, ok := offsets[r.Line]; ok && r.Offset != want {
			t.Errorf("%s %.60q at offset %d, want %d", r.Kind, r.Line, r.Offset, want)
		}
	}
	if n := len(a.ofKind(sinks.KindOversized)) + len(a.ofKind(sinks.KindUnparsed)); n != 2 {
		t.Errorf("%d oversized and unparsed records, want 2", n)
	}
	read, shared := counterValue(t, e.reg, "auditrail_reader_blocks_total", "how", "read"),
		counterValue(t, e.reg, "auditrail_reader_blocks_total", "how", "shared")
	if read == 0 || shared != read {
		t.Errorf("blocks read %v, shared %v: want every block read once and shared once", read, shared)
	}
}

// checkedSink is a recSink with a start-up check that waits for release
// and then returns err.
type checkedSink struct {
	*recSink
	release chan struct{}
	err     error
	checked chan struct{}
}

func (s *checkedSink) Check(ctx context.Context) error {
	close(s.checked)
	select {
	case <-s.release:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A sink whose start-up check hangs (an endpoint that accepts and never
// answers) delays that sink alone; the others ship at once, and it ships
// once its check ends.
func TestSinkCheckDelaysOnlyItsSink(t *testing.T) {
	e := newEnv(t)
	slow := &checkedSink{recSink: &recSink{name: "slow"}, release: make(chan struct{}), checked: make(chan struct{})}
	fast := &recSink{name: "fast"}
	appendLines(t, e.live, events(0, 50)...)
	e.start(e.options(), slow, fast)
	<-slow.checked
	waitEvents(t, fast, events(0, 50))
	if n := len(slow.records()); n != 0 {
		t.Fatalf("the sink being checked recorded %d records", n)
	}
	close(slow.release)
	waitEvents(t, slow.recSink, events(0, 50))
}

// A check that finds the sink misconfigured stops the agent with that
// error; nothing of that sink is acknowledged.
func TestMisconfiguredSinkStopsAgent(t *testing.T) {
	e := newEnv(t)
	bad := &checkedSink{recSink: &recSink{name: "bad"}, release: make(chan struct{}), checked: make(chan struct{}),
		err: sinks.Misconfigured(errors.New("bucket b does not have Object Lock enabled"))}
	close(bad.release)
	appendLines(t, e.live, events(0, 10)...)
	a, err := New(e.options(), []SinkOptions{sinkOpts(bad), sinkOpts(&recSink{name: "good"})})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(context.Background()) }()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the agent kept running with a misconfigured sink")
	}
	if !sinks.IsMisconfigured(err) || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("Run: err = %v, want the misconfiguration", err)
	}
	if n := len(bad.records()); n != 0 {
		t.Errorf("the misconfigured sink recorded %d records", n)
	}
	st, _, err := checkpoint.NewStore(e.state).Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Files {
		if c := f.Cursors["bad"]; c.Offset != 0 {
			t.Errorf("the misconfigured sink's position in %s moved to %d", f.Path, c.Offset)
		}
	}
}
