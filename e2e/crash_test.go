package e2e

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// Scenario 2: the agent killed with SIGKILL ten times at random moments
// (some during checkpoint commits, which run every 200 ms) and restarted
// each time, while kube-apiserver's writer rotates about every second.
// Every auditID+stage written must arrive in every sink exactly once, and
// the archive must verify. The
// fast run writes five times the rate, about 1,000 events/s, so that the
// batches in flight at a kill are large (about a second of events for S3,
// up to 1,000 events for the others) and the files rotate twice a second.
func TestKillAndRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		compress bool
		perTick  int
	}{{"plain", false, 10}, {"compressed", true, 10}, {"fast", true, 50}} {
		compress := tc.compress
		t.Run(tc.name, func(t *testing.T) {
			s := NewScenario(t, WriterConfig{MaxSizeMB: 1, MaxBackups: 1000, Compress: compress, Seed: 42})
			s.StartAgent()
			s.StartWriting(tc.perTick)
			rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			const kills = 10
			for i := 0; i < kills; i++ {
				time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
				s.Agent.Kill()
				s.StartAgent()
			}
			s.StopWriting()
			written := s.W.Written()
			s.WaitDelivered(90*time.Second, written)
			s.StopAgent()
			rs := s.Results("SIGKILL x10/"+tc.name, written)
			s.AssertNoDuplicates(rs) // before Report, which keeps the log of a failure
			s.Report(rs)
			s.AssertArchiveVerifies()
			log, err := readFile(s.AgentLog)
			if err != nil {
				t.Fatal(err)
			}
			started := strings.Count(log, `"msg":"agent started"`)
			t.Logf("%d of 11 starts got as far as \"agent started\"", started)
			for sink, tr := range s.Sinks {
				for kind, n := range tr.Received().Other {
					t.Errorf("%s: %d unexpected non-event records of kind %q", sink, n, kind)
				}
				for _, g := range tr.Gaps() {
					t.Logf("%s: %s", sink, g)
				}
				// SIGKILL loses no state: only the first start, which
				// has none, is a tamper signal.
				if tp := tr.Tampers(); len(tp) < 1 || !allContain(tp, `"reason":"no-state"`) {
					t.Errorf("%s: tamper records %v, want the first start's no-state only", sink, tp)
				}
				// A run killed before it committed its start record
				// (it does so before logging "agent started") never
				// started: on a busy machine a kill can come that early.
				if n := tr.Agent()["AuditrailAgentStarted"]; n < started {
					t.Errorf("%s: %d start records for 11 starts of which %d logged \"agent started\"", sink, n, started)
				}
			}
			if r := s.W.Rotations(); r < 5 {
				t.Errorf("only %d rotations happened; the scenario needs several", r)
			}
		})
	}
}

func name(compress bool) string { return map[bool]string{false: "plain", true: "compressed"}[compress] }

// problems returns up to n warning and error lines of an agent log.
func problems(b []byte, n int) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if len(out) < n && (strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`)) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// full reports whether the scenarios run at full volume
// (AUDITRAIL_E2E_FULL=1): longer sink outages and load phases. By default
// they are shortened so that the whole suite fits a busy 2-core machine;
// what they assert is the same.
func full() bool { return os.Getenv("AUDITRAIL_E2E_FULL") == "1" }

// outage is how long a sink stays down: 60 s at full volume, 20 s by
// default; AUDITRAIL_E2E_OUTAGE overrides both.
func outage(t *testing.T) time.Duration {
	if v := os.Getenv("AUDITRAIL_E2E_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUDITRAIL_E2E_OUTAGE: %v", err)
		}
		return d
	}
	if full() {
		return 60 * time.Second
	}
	return 20 * time.Second
}

func allContain(ss []string, sub string) bool {
	for _, s := range ss {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
