package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

const topic = "k8s-audit"

func cluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func config(c *kfake.Cluster) Config {
	cfg := Config{Brokers: c.ListenAddrs(), Topic: topic, Cluster: "prod", Node: "master-1", AgentVersion: "v9.9.9"}
	cfg.ApplyDefaults()
	return cfg
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if err := cfg.Validate("kafka"); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), "kafka", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// consume reads the topic from the start until it holds n records.
func consume(t *testing.T, c *kfake.Cluster, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestProducesEveryRecordWithKeyAndHeaders(t *testing.T) {
	c := cluster(t)
	s := newSink(t, config(c))
	ls := sinktest.Events(0, 500, 3)
	// Both stages of some requests, to check they share a partition in order.
	for i := 0; i < 20; i++ {
		ls = append(ls, sinktest.Event(9000+i, "ResponseStarted", 700), sinktest.Event(9000+i, "ResponseComplete", 900))
	}
	ls = append(ls, "not an event \xff")
	b := sinktest.Batch(sinktest.File(1), 0, ls...)
	for i := 0; i < len(b.Records); i += 4 {
		if b.Records[i].Kind == sinks.KindEvent {
			b.Records[i].Rules = []string{"secret-read", "pod-exec"}
		}
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := consume(t, c, len(ls))
	if len(got) != len(ls) {
		t.Fatalf("%d records, want %d", len(got), len(ls))
	}
	byValue := map[string]*kgo.Record{}
	for _, r := range got {
		byValue[string(r.Value)] = r
	}
	partitionOf := map[string]int32{}
	for i := range b.Records {
		rec := &b.Records[i]
		m := byValue[string(rec.Line)]
		if m == nil {
			t.Fatalf("record %d missing", i)
		}
		if !bytes.Equal(m.Key, sinks.AppendKey(nil, rec)) {
			t.Errorf("record %d: key %q", i, m.Key)
		}
		if rec.Kind == sinks.KindEvent {
			if header(m, "stage") != string(rec.Event.Stage) || header(m, "verb") != "get" || header(m, "resource") != "secrets" ||
				header(m, "namespace") != "kube-system" || header(m, "user") != "alice@example.com" {
				t.Errorf("record %d: headers %v", i, m.Headers)
			}
			if p, ok := partitionOf[string(m.Key)]; ok && p != m.Partition {
				t.Errorf("stages of %s on partitions %d and %d", m.Key, p, m.Partition)
			}
			partitionOf[string(m.Key)] = m.Partition
		} else if header(m, "auditrail-kind") != "unparsed" {
			t.Errorf("unparsed line: headers %v", m.Headers)
		}
		if header(m, "cluster") != "prod" || header(m, "node") != "master-1" || header(m, "agent-version") != "v9.9.9" {
			t.Errorf("record %d: headers %v", i, m.Headers)
		}
		if want := strings.Join(rec.Rules, ","); header(m, "auditrail-rules") != want {
			t.Errorf("record %d: auditrail-rules header %q, want %q", i, header(m, "auditrail-rules"), want)
		}
	}
	for i := 0; i < 20; i++ {
		started := byValue[sinktest.Event(9000+i, "ResponseStarted", 700)]
		complete := byValue[sinktest.Event(9000+i, "ResponseComplete", 900)]
		if started.Offset >= complete.Offset {
			t.Errorf("request %d: ResponseStarted at offset %d after ResponseComplete at %d", i, started.Offset, complete.Offset)
		}
	}
	if v := testutil.ToFloat64(s.produced); int(v) != len(ls) {
		t.Errorf("produced = %v, want %d", v, len(ls))
	}
}

func TestOversizedLineBecomesStub(t *testing.T) {
	c := cluster(t)
	cfg := config(c)
	cfg.MaxMessageBytes = units.ByteSize(64 << 10)
	s := newSink(t, cfg)
	big := sinktest.Event(1, "ResponseComplete", 100<<10)
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Event(0, "ResponseComplete", 800), big)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := consume(t, c, 2)
	var stub *kgo.Record
	for _, r := range got {
		if header(r, "auditrail-stub") == "oversized" {
			stub = r
		}
	}
	if stub == nil {
		t.Fatal("no stub for the oversized line")
	}
	if !strings.Contains(string(stub.Value), `"kind":"AuditrailOversizedLine"`) || !strings.Contains(string(stub.Value), string(b.Records[1].Event.AuditID)) ||
		!strings.Contains(string(stub.Value), `"size":`) || !bytes.Equal(stub.Key, b.Records[1].Event.AuditID) {
		t.Errorf("stub = %s (key %s)", stub.Value, stub.Key)
	}
	if v := testutil.ToFloat64(s.stubs); v != 1 {
		t.Errorf("stubs = %v, want 1", v)
	}
}

func TestMissingTopicRefusesToStart(t *testing.T) {
	c := cluster(t)
	cfg := config(c)
	cfg.Topic = "no-such-topic"
	err := newSink(t, cfg).Check(context.Background())
	if !sinks.IsMisconfigured(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want a missing-topic misconfiguration", err)
	}
}

// A broker that accepts connections and never answers must not hold up
// the agent's start: New does no network I/O, and Check gives up when its
// context ends, with an error that is not a misconfiguration.
func TestFrozenBrokerDelaysOnlyCheck(t *testing.T) {
	frozen := sinktest.NewFrozen(t)
	cfg := Config{Brokers: []string{frozen.Addr()}, Topic: topic}
	cfg.ApplyDefaults()
	frozen.AssertOnlyCheckWaits(t, newSink(t, cfg))
}

// With autoCreateTopic, a missing topic is created on first write (the
// test cluster allows it).
func TestAutoCreateTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Brokers: c.ListenAddrs(), Topic: "created-on-demand", AutoCreateTopic: true}
	cfg.ApplyDefaults()
	s := newSink(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 10, 1)...)
	for {
		err := s.Write(ctx, b)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("write with auto-created topic: %v", err)
		}
	}
	if c.TopicInfo("created-on-demand") == nil {
		t.Fatal("topic not created")
	}
}

// One broker leaves mid-stream: writes fail over to the remaining brokers
// and nothing is lost.
func TestBrokerGoesAway(t *testing.T) {
	c := cluster(t)
	s := newSink(t, config(c))
	first := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 300, 1)...)
	if err := s.Write(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNode(c.LeaderFor(topic, 0)); err != nil {
		t.Fatal(err)
	}
	second := sinktest.Batch(sinktest.File(1), first.Segments[0].End, sinktest.Events(300, 300, 2)...)
	deadline := time.Now().Add(60 * time.Second)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Write(ctx, second)
		cancel()
		if err == nil {
			t.Logf("second batch delivered after %d attempts", attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second batch not delivered: %v", err)
		}
	}
	got := consume(t, c, 600)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	for _, b := range []*sinks.Batch{first, second} {
		for i := range b.Records {
			if !seen[string(b.Records[i].Line)] {
				t.Fatalf("record %d of a batch lost", i)
			}
		}
	}
}

// TestCloseReleasesConnections checks that a closed sink leaves no
// connection to the brokers open: an agent that restarts its sinks must not
// pile them up.
func TestCloseReleasesConnections(t *testing.T) {
	c := cluster(t)
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	cfg := config(c)
	s, err := New(context.Background(), "kafka", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 50, 1)...)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before New: connections left open", runtime.NumGoroutine(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Requests that sent the same Audit-ID header keep it as their key, but
// each message carries an auditrail-id header of its own, the same when
// the batch is delivered again: what consumers deduplicate on.
func TestSpoofedAuditIDGetsItsOwnID(t *testing.T) {
	c := cluster(t)
	s := newSink(t, config(c))
	sp := sinktest.Spoofed(false)
	b := sinktest.Batch(sinktest.File(1), 0, sp[0], sp[1], "not an event")
	for range 2 { // delivered again after a crash
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	got := consume(t, c, 6)
	ids := map[string]map[string]bool{} // line -> auditrail-id values
	for _, m := range got {
		if ids[string(m.Value)] == nil {
			ids[string(m.Value)] = map[string]bool{}
		}
		ids[string(m.Value)][header(m, "auditrail-id")] = true
	}
	seen := map[string]string{}
	for i := range b.Records {
		r := &b.Records[i]
		want := string(sinks.AppendID(nil, r))
		if got := ids[string(r.Line)]; len(got) != 1 || !got[want] {
			t.Errorf("record %d delivered twice with auditrail-id %v, want %q both times", i, got, want)
		}
		if other, ok := seen[want]; ok || want == "" {
			t.Errorf("record %d has the auditrail-id %q of %q", i, want, other)
		}
		seen[want] = string(r.Line)
	}
}
