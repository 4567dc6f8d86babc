package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The fault matrix: each scenario writes with kube-apiserver's own audit
// backend over lumberjack and runs the real agent against S3 (MinIO),
// Elasticsearch (test server) and Kafka (kfake). Volumes are scaled for a
// 2-core CI machine; the scenarios are not.

// Scenario 1: steady load with rotation every few seconds.
func TestSteadyLoad(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(name(compress), func(t *testing.T) {
			s := NewScenario(t, WriterConfig{MaxSizeMB: 4, BigMB: 3, MaxBackups: 1000, Compress: compress, Seed: 21})
			s.StartAgent()
			s.StartWriting(15)
			time.Sleep(20 * time.Second)
			s.StopWriting()
			written := s.W.Written()
			s.WaitDelivered(time.Minute, written)
			if rot := s.Metric("auditrail_rotations_total"); rot < 3 {
				t.Errorf("%v rotations; the scenario needs several", rot)
			}
			s.StopAgent()
			s.Report(s.Results("steady/"+name(compress), written))
			s.AssertArchiveVerifies()
		})
	}
}

// Scenario 3: each sink down in turn under load (MinIO stopped for a
// minute, one Kafka broker gone for 30 s, Elasticsearch answering 503 to
// every other request for a quarter of a 45 s phase (or of the outage, if
// longer)) while Elasticsearch, busy from start to end, answers 429 to
// half the items, drawn at random on every attempt; the other sinks keep
// up, the one that was down catches up with nothing lost, and
// Elasticsearch, busy, not down, stays under 30 s behind at p99, in its
// phase and over the whole run.
func TestSinkOutages(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 2, MaxBackups: 1000, Compress: true, Seed: 23})
	// Elasticsearch busy for the whole run: half the items answered 429
	// on every attempt, and in the first quarter of its phase every other
	// request 503 as well.
	var flaky atomic.Bool
	var requests atomic.Int64
	s.Srv.ES.FailRequestsFunc(func() int {
		if flaky.Load() && requests.Add(1)%2 == 0 {
			return 503
		}
		return 0
	})
	s.Srv.ES.FailItems(func(_, _ string) int {
		if rand.IntN(2) == 0 {
			return 429
		}
		return 0
	})
	start := time.Now()
	s.StartAgent()
	s.StartWriting(10)
	time.Sleep(5 * time.Second)

	down := time.Now()
	s.Srv.MinIO.Stop()
	time.Sleep(outage(t))
	up := time.Now()
	s.Srv.MinIO.Restart()
	s.AssertKeptUp("s3", down, up, "es")
	s3Down, s3Up := down, up
	s.WaitCaughtUp("s3", 2*time.Minute)

	node := int32(2)
	_, portStr, _ := net.SplitHostPort(s.Srv.Kafka.ListenAddrs()[node])
	port, _ := strconv.Atoi(portStr)
	down = time.Now()
	if err := s.Srv.Kafka.RemoveNode(node); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage(t) / 2)
	s.DumpIfBehind("s3", down, time.Now().Add(-5*time.Second))
	up = time.Now()
	if _, _, err := s.Srv.Kafka.AddNode(node, port); err != nil {
		t.Fatal(err)
	}
	s.AssertKeptUp("kafka", down, up, "es")
	kafkaDown, kafkaUp := down, up
	s.WaitCaughtUp("kafka", 2*time.Minute)

	// Long enough that a sink falling behind is seen: at half its pace it
	// is 20 s behind after 40 s.
	busyFor := max(outage(t), 45*time.Second)
	down = time.Now()
	flaky.Store(true)
	time.Sleep(busyFor / 4)
	flaky.Store(false)
	time.Sleep(busyFor * 3 / 4)
	up = time.Now()
	s.AssertKeptUp("es", down, up)
	esDown, esUp := down, up

	time.Sleep(3 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(2*time.Minute, written)
	s.StopAgent()
	rs := s.Results("sink outages", written)
	s.AssertNoDuplicates(rs) // before Report, which keeps the log of a failure
	s.Report(rs)
	s.AssertArchiveVerifies()
	// A busy cluster slows Elasticsearch down, not to minutes behind:
	// neither while the other sinks are down, nor where its requests fail
	// too, nor over the whole run.
	s.AssertLagUnder("es", s3Down, s3Up, 30*time.Second)
	s.AssertLagUnder("es", kafkaDown, kafkaUp, 30*time.Second)
	s.AssertLagUnder("es", esDown, esUp, 30*time.Second)
	s.AssertLagUnder("es", start, time.Now(), 30*time.Second)
	if b, err := readFile(s.AgentLog); err == nil && strings.Contains(b, "auditrail-test-secret") {
		t.Error("the agent's log shows the S3 secret key")
	}
}

// Scenario 4: the agent stopped while kube-apiserver rotates and gzips
// several backups; on restart it catches up from the .gz files.
func TestDownAcrossRotations(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 1, MaxBackups: 1000, Compress: true, Seed: 24})
	s.StartAgent()
	s.StartWriting(10)
	time.Sleep(4 * time.Second)
	s.StopAgent()
	rotations := func() int { n, _ := globCount(s.Dir, "audit-*"); return n }
	before := rotations()
	for deadline := time.Now().Add(time.Minute); rotations() < before+6 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if rotations() < before+6 {
		t.Fatalf("only %d rotations while the agent was down", rotations()-before)
	}
	time.Sleep(2 * time.Second) // let lumberjack gzip the last backup
	s.StartAgent()
	time.Sleep(2 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(time.Minute, written)
	s.StopAgent()
	t.Logf("%d backups made while the agent was down", rotations()-before)
	s.Report(s.Results("down across rotations", written))
}

// Scenario 5: the agent stopped long enough that lumberjack prunes files
// it never read. Every sink gets gap records and a metric names the loss;
// what was lost is exactly what was pruned unread, and everything still on
// disk arrives.
func TestPrunedWhileDown(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 1, MaxBackups: 2, Compress: true, Seed: 25})
	s.StartAgent()
	s.StartWriting(10)
	time.Sleep(3 * time.Second)
	s.StopAgent()
	rotations := 0
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if s.W.Rotations() >= 6 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.StopWriting()
	rotations = s.W.Rotations()
	time.Sleep(2 * time.Second) // let lumberjack finish gzip and pruning
	onDisk := s.OnDisk()
	written := s.W.Written()
	// Lost, per sink: neither delivered before the stop nor on disk now.
	expectedBy := map[string]map[string]bool{}
	want := map[string]time.Time{}
	for sink, tr := range s.Sinks {
		got := tr.Received().Count
		expectedBy[sink] = map[string]bool{}
		for k, wt := range written {
			if got[k] == 0 && !onDisk[k] {
				expectedBy[sink][k] = true
			} else if onDisk[k] {
				want[k] = wt
			}
		}
		if len(expectedBy[sink]) == 0 {
			t.Fatalf("%s: nothing was pruned unread; the scenario needs more rotations", sink)
		}
	}
	s.StartAgent()
	s.WaitDelivered(time.Minute, want)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if len(s.Sinks["s3"].Gaps()) > 0 && len(s.Sinks["es"].Gaps()) > 0 && len(s.Sinks["kafka"].Gaps()) > 0 {
			break
		}
	}
	rs := s.Results("pruned while down", written)
	for i, r := range rs {
		tr := s.Sinks[r.Sink]
		expected := expectedBy[r.Sink]
		got := map[string]bool{}
		for _, k := range r.LostKeys {
			got[k] = true
		}
		for k := range expected {
			if !got[k] {
				t.Errorf("%s: %s was pruned unread but arrived", r.Sink, k)
				break
			}
		}
		var unexpected []string
		for k := range got {
			if !expected[k] {
				unexpected = append(unexpected, k)
			}
		}
		if len(unexpected) > 0 {
			sort.Strings(unexpected)
			t.Errorf("%s: %d events lost though they were on disk or delivered before the stop: %v", r.Sink, len(unexpected), unexpected[:min(5, len(unexpected))])
		}
		gaps := tr.Gaps()
		if len(gaps) == 0 {
			t.Errorf("%s: no gap record", r.Sink)
		}
		for _, g := range gaps {
			var gr struct {
				Reason string
				File   struct{ ID string }
				Bytes  struct{ From, To int64 }
			}
			if err := json.Unmarshal([]byte(g), &gr); err != nil || gr.Reason != "pruned" || gr.File.ID == "" {
				t.Errorf("%s: gap record %s", r.Sink, g)
			}
		}
		if v := s.Metric("auditrail_gaps_total", `reason="pruned"`, `sink="`+r.Sink+`"`); int(v) != len(gaps) {
			t.Errorf("%s: auditrail_gaps_total{reason=pruned} = %v, want %d (the gap records delivered)", r.Sink, v, len(gaps))
		}
		// Pruned unread and reported by gap records: the table shows them
		// apart from anything else lost.
		rs[i].Lost -= len(expected)
		rs[i].Pruned = len(expected)
		rs[i].LostKeys = nil
		t.Logf("%s: %d gap records for the %d events pruned unread (%d rotations while down)", r.Sink, len(gaps), len(expected), rotations)
	}
	s.StopAgent()
	s.Report(rs)
}

// Scenario 6: bad input in the live file. Good events keep flowing; bad
// lines arrive raw (or, above maxLineBytes, as a stub) in every sink.
func TestBadInput(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 64, MaxBackups: 1000, Seed: 26})
	s.StartAgent()
	s.StartWriting(5)
	time.Sleep(2 * time.Second)
	bad := [][]byte{
		[]byte("this is not json\n"),
		[]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"trunc` + "\n"),
		[]byte("{\"kind\":\"Event\",\"bad\":\"\xff\xfe utf-8\"}\n"),
		[]byte("{\"kind\":\"Event\",\"nul\":\"a\x00b\"}\n"),
		append(append([]byte(`{"kind":"Event","auditID":"huge-line","blob":"`), []byte(strings.Repeat("x", 20<<20))...), "\"}\n"...),
		[]byte(strings.Repeat("\n", 10000)),
	}
	for _, b := range bad {
		s.W.WriteRaw(b)
		for i := 0; i < 5; i++ {
			s.W.WriteRequest()
		}
	}
	time.Sleep(5 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(time.Minute, written)
	time.Sleep(time.Second)
	empty := s.Metric("auditrail_lines_empty_total", `sink="s3"`)
	s.StopAgent()
	rs := s.Results("bad input", written)
	for _, r := range rs {
		// 4 malformed lines shipped raw (or wrapped) and 1 oversized stub.
		if r.Others != 5 {
			t.Errorf("%s: %d non-event records, want 5: %v", r.Sink, r.Others, s.Sinks[r.Sink].Received().Other)
		}
	}
	if empty != 10000 {
		t.Errorf("empty lines counted = %v, want 10000", empty)
	}
	s.Report(rs)
}

// Scenario 7: SIGTERM under load, then a restart: nothing lost, no
// duplicate in any sink, and the archive verifies.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 2, MaxBackups: 1000, Compress: true, Seed: 27})
	s.StartAgent()
	s.StartWriting(15)
	for i := 0; i < 3; i++ {
		time.Sleep(4 * time.Second)
		s.StopAgent()
		time.Sleep(time.Second)
		s.StartAgent()
	}
	time.Sleep(3 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(time.Minute, written)
	s.StopAgent()
	rs := s.Results("SIGTERM under load", written)
	s.AssertNoDuplicates(rs) // before Report, which keeps the log of a failure
	s.Report(rs)
	s.AssertArchiveVerifies()
}
