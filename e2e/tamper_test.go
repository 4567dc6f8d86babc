package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/verify"
)

func findingKinds(rep verify.Report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Kind]++
	}
	return out
}

// The archive proves its own completeness. A clean run verifies, idle
// stretches included, thanks to heartbeats. Stopping the agent for a while
// and truncating the live log on the node are each named by `auditrail
// verify`, while every event still arrives.
func TestVerifyNamesAgentStopAndTruncation(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 1, MaxBackups: 1000, Seed: 31})
	s.Configure("heartbeatInterval: 1s")
	const maxGap = "6s"
	s.StartAgent()
	s.StartWriting(2)
	time.Sleep(3 * time.Second)
	s.StopWriting()
	s.WaitDelivered(30*time.Second, s.W.Written())
	time.Sleep(8 * time.Second) // idle: only heartbeats keep the chain going

	rep, code := s.VerifyArchive("--max-gap", maxGap)
	if code != 0 || !rep.OK || rep.Marked["AuditrailHeartbeat"] < 3 || rep.Marked["AuditrailAgentStarted"] != 1 {
		t.Fatalf("clean run: exit %d, findings %+v, agent records %v", code, rep.Findings, rep.Marked)
	}

	// The agent is stopped for 15 s while kube-apiserver keeps writing.
	s.StopAgent()
	s.StartWriting(2)
	time.Sleep(15 * time.Second)
	s.StartAgent()
	time.Sleep(2 * time.Second)
	s.StopWriting()
	s.WaitDelivered(60*time.Second, s.W.Written())

	// Someone truncates the live log on the node.
	truncatedAt := time.Now()
	if err := os.Truncate(s.Live, 0); err != nil {
		t.Fatal(err)
	}
	s.StartWriting(2)
	time.Sleep(2 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(60*time.Second, written)
	deadline := time.Now().Add(30 * time.Second)
	for len(s.Sinks["s3"].Gaps()) == 0 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
	}
	s.StopAgent()
	rs := s.Results("agent stopped, log truncated", written)
	s.Report(rs)
	for _, r := range rs {
		if r.Lost != 0 {
			t.Errorf("%s lost %d events", r.Sink, r.Lost)
			for _, k := range r.LostKeys {
				t.Logf("lost %s written %s after the truncation", k, written[k].Sub(truncatedAt))
			}
		}
	}

	rep, code = s.VerifyArchive("--max-gap", maxGap)
	k := findingKinds(rep)
	t.Logf("verify: exit %d, findings %v, agent records %v", code, k, rep.Marked)
	if code != 1 || k["agent-stopped"] != 1 || k["time-gap"] < 1 || k["source-gap"] < 1 {
		t.Errorf("verify after a stop and a truncation: exit %d, findings %v, want agent-stopped, time-gap and source-gap", code, k)
	}
	for _, f := range rep.Findings {
		switch f.Kind {
		case "agent-stopped", "time-gap":
		case "source-gap":
			if !strings.Contains(f.Detail, "(truncated") || !strings.Contains(f.Detail, s.Live) {
				t.Errorf("source-gap finding %q, want the live log named as truncated", f.Detail)
			}
		default:
			t.Errorf("unexpected finding %s: %s (%s)", f.Kind, f.Detail, f.Key)
		}
	}
}
