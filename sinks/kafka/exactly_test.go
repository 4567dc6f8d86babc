package kafka

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// childEnv makes the test binary a process that writes one batch with a
// Kafka sink and then waits to be killed (see TestKilledProcess).
const childEnv = "AUDITRAIL_KAFKA_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	os.Exit(m.Run())
}

// runChild writes childBatch to the brokers in AUDITRAIL_KAFKA_TEST_BROKERS
// with the state directory AUDITRAIL_KAFKA_TEST_STATE, says "acked" when
// the write returned nil, and sleeps.
func runChild() {
	cfg := Config{Brokers: strings.Split(os.Getenv("AUDITRAIL_KAFKA_TEST_BROKERS"), ","), Topic: topic,
		StateDir: os.Getenv("AUDITRAIL_KAFKA_TEST_STATE")}
	cfg.ApplyDefaults()
	s, err := New(context.Background(), "kafka", cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)), prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Write(context.Background(), childBatch()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("acked")
	time.Sleep(10 * time.Minute)
}

// childBatch is small enough for one produce request.
func childBatch() *sinks.Batch {
	var lines []string
	for i := range 100 {
		lines = append(lines, sinktest.Event(i, "ResponseComplete", 500))
	}
	return sinktest.Batch(sinktest.File(1), 0, lines...)
}

func stateSink(t *testing.T, c *kfake.Cluster, dir string) *Sink {
	t.Helper()
	cfg := config(c)
	cfg.StateDir = dir
	return newSink(t, cfg)
}

var errAckLost = errors.New("acknowledgement lost")

// crashAfterProduce returns a context for a write of s that ends once the
// brokers stored what it produced, before it returns: as when the agent
// dies, or gives up on the write, with the produce at the brokers.
func crashAfterProduce(s *Sink) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	s.afterProduce = func() error {
		cancel()
		return errAckLost
	}
	return ctx
}

// cut returns records [i, j) of full as a batch of their own, as the agent
// would cut it: same lines, same source positions.
func cut(full *sinks.Batch, i, j int) *sinks.Batch {
	rs := full.Records[i:j]
	last := rs[len(rs)-1]
	return &sinks.Batch{Records: rs, Segments: []sinks.Segment{{File: rs[0].File, Start: rs[0].Offset,
		End: last.Offset + int64(len(last.Line)) + 1}}}
}

// topicRecords reads the whole topic: every record below the partitions'
// current high watermarks.
func topicRecords(t *testing.T, c *kfake.Cluster) []*kgo.Record {
	t.Helper()
	total := int64(0)
	for p := int32(0); ; p++ {
		pi := c.PartitionInfo(topic, p)
		if pi == nil {
			break
		}
		total += pi.HighWatermark
	}
	return consume(t, c, int(total))
}

func kerrOf(code int16) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("error code %d", code)
}

// assertExactlyOnce checks that the topic holds each record of the
// batches once (matched by line and source position), and nothing else.
func assertExactlyOnce(t *testing.T, c *kfake.Cluster, bs ...*sinks.Batch) {
	t.Helper()
	got := map[string]int{}
	recs := topicRecords(t, c)
	for _, r := range recs {
		got[header(r, SourceHeader)+" "+string(r.Value)]++
	}
	want := 0
	for _, b := range bs {
		for i := range b.Records {
			r := &b.Records[i]
			k := string(appendSource(nil, r)) + " " + string(r.Line)
			if got[k] != 1 {
				t.Errorf("record at %s (%.60s...) is in the topic %d times, want 1", appendSource(nil, r), r.Line, got[k])
			}
			want++
		}
	}
	if len(recs) != want {
		t.Errorf("topic holds %d records, want %d", len(recs), want)
	}
}

// A write whose acknowledgement was lost after the brokers stored it,
// followed by a restart (a new sink on the same state directory) that
// writes the same records again, cut as before or differently: each
// record is in the topic once.
func TestRestartAfterLostAckWritesEachRecordOnce(t *testing.T) {
	full := sinktest.Batch(sinktest.File(3), 1000, sinktest.Events(0, 600, 5)...)
	for _, tc := range []struct {
		name string
		// inDoubt is the range written when the acknowledgement was lost;
		// again are the batches written after the restart.
		inDoubt [2]int
		again   [][2]int
	}{
		{"same batch", [2]int{0, 600}, [][2]int{{0, 600}}},
		{"smaller batches", [2]int{0, 600}, [][2]int{{0, 150}, {150, 400}, {400, 600}}},
		{"overlapping and beyond", [2]int{100, 400}, [][2]int{{0, 250}, {250, 600}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cluster(t)
			dir := t.TempDir()
			first := stateSink(t, c, dir)
			ctx := crashAfterProduce(first)
			if err := first.Write(ctx, cut(full, tc.inDoubt[0], tc.inDoubt[1])); !errors.Is(err, errAckLost) {
				t.Fatalf("write with the acknowledgement lost: err = %v", err)
			}
			first.Close(context.Background())

			second := stateSink(t, c, dir)
			for _, r := range tc.again {
				if err := second.Write(context.Background(), cut(full, r[0], r[1])); err != nil {
					t.Fatal(err)
				}
			}
			assertExactlyOnce(t, c, full)
			inDoubt := tc.inDoubt[1] - tc.inDoubt[0]
			if v := testutil.ToFloat64(second.skipped); int(v) != inDoubt {
				t.Errorf("skipped = %v, want the %d records already in the topic", v, inDoubt)
			}
		})
	}
}

// A batch acknowledged by the brokers, written again after a restart
// because the agent died before recording it: not duplicated.
func TestRestartAfterAcknowledgedBatch(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	a := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 200, 1)...)
	b := sinktest.Batch(sinktest.File(1), a.Segments[0].End, sinktest.Events(200, 200, 2)...)
	first := stateSink(t, c, dir)
	for _, x := range []*sinks.Batch{a, b} {
		if err := first.Write(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	first.Close(context.Background())
	second := stateSink(t, c, dir)
	for _, x := range []*sinks.Batch{a, b} {
		if err := second.Write(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	assertExactlyOnce(t, c, a, b)
}

// The agent retries a batch whose write failed after the brokers stored
// it, in the same process: not duplicated. Two different events with the
// same auditID are both delivered, and two identical lines are both
// delivered, once each.
func TestRetryInProcessKeepsLookalikes(t *testing.T) {
	c := cluster(t)
	s := stateSink(t, c, t.TempDir())
	sp := sinktest.Spoofed(false)
	same := sinktest.Event(4242, "ResponseComplete", 900)
	lines := append(sinktest.Events(0, 50, 3), sp[0], same, sp[1], same, "not an event", "not an event")
	b := sinktest.Batch(sinktest.File(1), 0, lines...)
	ctx := crashAfterProduce(s)
	if err := s.Write(ctx, cut(b, 0, 53)); !errors.Is(err, errAckLost) {
		t.Fatalf("err = %v, want the lost acknowledgement", err)
	}
	s.afterProduce = nil
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, c, b)
	copies := 0
	for _, r := range topicRecords(t, c) {
		if string(r.Value) == same {
			copies++
		}
	}
	if copies != 2 {
		t.Errorf("the line written twice in the log is in the topic %d times, want 2", copies)
	}
}

// An acknowledgement lost within a write is retried there, after a
// read-back that finds the whole batch: nothing is sent twice.
func TestLostAckRetriedWithinWrite(t *testing.T) {
	c := cluster(t)
	s := stateSink(t, c, t.TempDir())
	lost := false
	s.afterProduce = func() error {
		if lost {
			return nil
		}
		lost = true
		return errAckLost
	}
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 200, 8)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, c, b)
	if v := testutil.ToFloat64(s.skipped); v != 200 {
		t.Errorf("skipped = %v, want 200", v)
	}
}

// controlProduce makes the first produce request for partition 0 fail
// with NOT_LEADER_OR_FOLLOWER, unstored; every other request is served.
func controlProduce(c *kfake.Cluster) {
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		hit := false
		for _, rt := range req.Topics {
			for _, rp := range rt.Partitions {
				if rp.Partition == 0 {
					once.Do(func() { hit = true })
				}
			}
		}
		if !hit {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 6 // NOT_LEADER_OR_FOLLOWER
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// A produce that fails for some partitions and succeeds for the others is
// retried within the write: the messages already stored are found by the
// read-back and not sent again.
func TestPartialProduceRetriedOnce(t *testing.T) {
	c := cluster(t)
	controlProduce(c)
	s := stateSink(t, c, t.TempDir())
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 300, 4)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, c, b)
	if v := testutil.ToFloat64(s.readBacks); v != 1 {
		t.Errorf("read-backs = %v, want 1 (before the retry)", v)
	}
	if v := testutil.ToFloat64(s.skipped); v == 0 || v == 300 {
		t.Errorf("skipped = %v, want the messages stored by the first attempt", v)
	}
}

// A produce that times out while the broker holds it, and is stored
// after the sink gave up: the agent's next attempt finds it.
func TestTimedOutProduceStoredLater(t *testing.T) {
	c := cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan struct{})
	var held sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		held.Do(func() {
			cancel() // the agent gives up while the broker holds the request
			<-returned
		})
		return nil, nil, false
	})
	s := stateSink(t, c, t.TempDir())
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 300, 6)...)
	err := s.Write(ctx, b)
	close(returned)
	if err == nil {
		t.Fatal("write returned nil while a produce was held by the broker")
	}
	waitStored(t, c, len(b.Records))
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnce(t, c, b)
}

// waitStored waits until the topic holds at least n records.
func waitStored(t *testing.T, c *kfake.Cluster, n int) {
	t.Helper()
	consume(t, c, n)
}

// The partition count grows between the intent and the restart: the
// records the new count sent to the new partitions are found there.
func TestPartitionsAddedBeforeRestart(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	a := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 100, 1)...)
	b := sinktest.Batch(sinktest.File(1), a.Segments[0].End, sinktest.Events(100, 300, 2)...)
	first := stateSink(t, c, dir)
	if err := first.Write(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	first.Close(context.Background())
	addPartitions(t, c, 6)

	second := stateSink(t, c, dir)
	ctx := crashAfterProduce(second)
	if err := second.Write(ctx, b); !errors.Is(err, errAckLost) {
		t.Fatalf("err = %v, want the lost acknowledgement", err)
	}
	second.Close(context.Background())
	inNew := 0
	for _, r := range topicRecords(t, c) {
		if r.Partition >= 3 {
			inNew++
		}
	}
	if inNew == 0 {
		t.Fatal("no record in the new partitions: the test proves nothing")
	}

	third := stateSink(t, c, dir)
	for _, x := range []*sinks.Batch{a, b} {
		if err := third.Write(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	assertExactlyOnce(t, c, a, b)
}

func addPartitions(t *testing.T, c *kfake.Cluster, n int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, n
	req.Topics = append(req.Topics, rt)
	res, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerrOf(res.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create partitions: %v", err)
	}
}

// A read-back window larger than the cap is read from its newest records
// only: the batch is delivered (at-least-once: what was not checked is
// sent again), and the overflow is counted.
func TestReadBackCapFallsBackToAtLeastOnce(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 120, 1)...)
	first := stateSink(t, c, dir)
	ctx := crashAfterProduce(first)
	if err := first.Write(ctx, b); !errors.Is(err, errAckLost) {
		t.Fatalf("err = %v", err)
	}
	first.Close(context.Background())

	second := stateSink(t, c, dir)
	second.readBackMax = 30
	if err := second.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(second.overflows); v != 1 {
		t.Errorf("overflows = %v, want 1", v)
	}
	skipped := int(testutil.ToFloat64(second.skipped))
	if skipped == 0 || skipped > 30 {
		t.Errorf("skipped = %d, want the records found among the newest 30", skipped)
	}
	got := map[string]int{}
	recs := topicRecords(t, c)
	for _, r := range recs {
		got[string(r.Value)]++
	}
	for i := range b.Records {
		if got[string(b.Records[i].Line)] == 0 {
			t.Fatalf("record %d lost", i)
		}
	}
	if len(recs) != 2*len(b.Records)-skipped {
		t.Errorf("topic holds %d records, want %d: the batch twice less what the read-back found", len(recs), 2*len(b.Records)-skipped)
	}
}

// An intent that cannot be read is removed and reported; the sink writes
// on (a batch written again may be duplicated, never lost).
func TestUnreadableIntent(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	path := intentPath(dir, "kafka")
	if err := os.WriteFile(path, []byte(`{"version":1,"topic":"k8s-au`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := stateSink(t, c, dir)
	if v := testutil.ToFloat64(s.overflows); v != 1 {
		t.Errorf("overflows = %v, want the unreadable intent counted", v)
	}
	b := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 10, 1)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := loadIntent(path); err != nil {
		t.Errorf("intent after a write: %v", err)
	}
	assertExactlyOnce(t, c, b)
}

// The process is killed with SIGKILL while its produce is at the broker,
// or after the brokers acknowledged its batch; the next process writes the
// same batch: each record is in the topic once. The topic has one
// partition, so that the batch is one produce request: the one the broker
// holds when the process dies.
func TestKilledProcess(t *testing.T) {
	for _, when := range []string{"during produce", "after acknowledgement"} {
		t.Run(when, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(1, topic))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			dir := t.TempDir()
			cmd := testproc.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", "AUDITRAIL_KAFKA_TEST_BROKERS="+strings.Join(c.ListenAddrs(), ","),
				"AUDITRAIL_KAFKA_TEST_STATE="+dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			var started sync.Mutex // held until cmd.Process is set
			started.Lock()
			if when == "during produce" {
				var once sync.Once
				c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
					c.KeepControl()
					// The request is at the broker: kill the sender, then
					// let the broker store it.
					once.Do(func() {
						started.Lock()
						cmd.Process.Kill()
						started.Unlock()
					})
					return nil, nil, false
				})
			}
			err = cmd.Start()
			started.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if when == "after acknowledgement" {
				if line != "acked\n" {
					cmd.Wait()
					t.Fatalf("child: %q, stderr:\n%s", line, stderr.String())
				}
				cmd.Process.Kill()
			}
			cmd.Wait()
			if _, err := os.Stat(filepath.Join(dir, "kafka-kafka.intent")); err != nil {
				t.Fatalf("no intent left by the killed process: %v", err)
			}
			b := childBatch()
			if when == "during produce" {
				waitStored(t, c, len(b.Records))
			}
			s := stateSink(t, c, dir)
			if err := s.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			assertExactlyOnce(t, c, b)
		})
	}
}

// The intent moves forward at most once per keep, never closer to now
// than keep, and not while a produce is in doubt; after a restart every
// batch written within keep before it is found again.
func TestIntentWindowFollowsTheClock(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	s := stateSink(t, c, dir)
	now := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return now }
	s.keep = 10 * time.Second
	var batches []*sinks.Batch
	var off int64
	write := func(ctx context.Context) error {
		b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(len(batches)*20, 20, uint64(len(batches)))...)
		off = b.Segments[0].End
		batches = append(batches, b)
		return s.Write(ctx, b)
	}
	for i := 0; i <= 40; i++ { // a batch every second for 40 s
		if err := write(context.Background()); err != nil {
			t.Fatal(err)
		}
		if age := now.Sub(s.start.At); i >= 10 && (age < s.keep || age > 2*s.keep+s.keep/2) {
			t.Fatalf("at %ds the intent is %v old, want between keep and 2.5 keep", i, age)
		}
		now = now.Add(time.Second)
	}
	if n := testutil.ToFloat64(s.intents); n < 2 || n > 5 {
		t.Errorf("%v intents written in 40 s with keep 10 s, want one at the start and one per 10-15 s", n)
	}

	// In doubt, the intent stays where it is however old it gets.
	start := s.start.At
	if err := write(crashAfterProduce(s)); !errors.Is(err, errAckLost) {
		t.Fatalf("err = %v", err)
	}
	s.afterProduce = nil
	now = now.Add(time.Minute)
	if err := s.prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.start.At.Equal(start) {
		t.Errorf("intent moved from %v to %v while a produce was in doubt", start, s.start.At)
	}
	s.Close(context.Background())

	// After a restart, the batches of the last keep are found again.
	r := stateSink(t, c, dir)
	n := 0
	for i := len(batches) - 11; i < len(batches); i++ {
		if err := r.Write(context.Background(), batches[i]); err != nil {
			t.Fatal(err)
		}
		n += len(batches[i].Records)
	}
	if v := testutil.ToFloat64(r.skipped); int(v) != n {
		t.Errorf("skipped = %v, want all %d records of the last 11 batches", v, n)
	}
	assertExactlyOnce(t, c, batches...)
}
