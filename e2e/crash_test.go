package e2e

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKillAndRestart writes with kube-apiserver's backend over lumberjack,
// rotating about every second, while the agent is killed with SIGKILL ten
// times at random moments and restarted. Every auditID+stage written must
// arrive in the file sink at least once.
func TestKillAndRestart(t *testing.T) {
	for _, compress := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "compressed"}[compress]
		t.Run(name, func(t *testing.T) { killAndRestart(t, compress) })
	}
}

func killAndRestart(t *testing.T, compress bool) {
	root := t.TempDir()
	auditDir, state, out := filepath.Join(root, "audit"), filepath.Join(root, "state"), filepath.Join(root, "out")
	os.MkdirAll(auditDir, 0o700)
	cfgPath := filepath.Join(root, "auditrail.yaml")
	if err := WriteConfig(cfgPath, filepath.Join(auditDir, "audit.log"), state, out); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(WriterConfig{Path: filepath.Join(auditDir, "audit.log"), MaxSizeMB: 1, MaxBackups: 1000, Compress: compress, Seed: 42})
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			for i := 0; i < 20; i++ {
				w.WriteRequest()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	agentLog := filepath.Join(root, "agent.log")
	a := &Agent{Bin: bin, Config: cfgPath}
	if err := a.Start(agentLog); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(len(name(compress)))))
	const kills = 10
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		a.Kill()
		if err := a.Start(agentLog); err != nil {
			t.Fatal(err)
		}
	}
	close(stopWriting)
	<-writerDone
	w.Close()
	written := w.Written()

	var lost []string
	var dups int
	deadline := time.Now().Add(90 * time.Second)
	for {
		rcv, err := ReadFileSink(out)
		if err != nil {
			t.Fatal(err)
		}
		lost, dups = Compare(written, rcv)
		if len(lost) == 0 || time.Now().After(deadline) {
			for kind, n := range rcv.Other {
				t.Errorf("%d unexpected non-event records of kind %q", n, kind)
			}
			for _, r := range rcv.Samples {
				t.Logf("record: %s", r)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("agent did not exit cleanly on SIGTERM: %v", err)
	}
	backups, _ := filepath.Glob(filepath.Join(auditDir, "audit-*"))
	t.Logf("compress=%v written=%d rotations=%d kills=%d lost=%d duplicates=%d", compress, len(written), len(backups), kills, len(lost), dups)
	if len(lost) > 0 {
		b, _ := os.ReadFile(agentLog)
		t.Logf("agent warnings and errors:\n%s", problems(b, 40))
		t.Fatalf("%d events lost, first: %v", len(lost), lost[:min(5, len(lost))])
	}
	if len(backups) < 5 {
		t.Errorf("only %d rotations happened; the scenario needs several", len(backups))
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
