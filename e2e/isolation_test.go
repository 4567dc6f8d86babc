package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/miniotest"
)

// outage is how long a sink stays down; AUDITRAIL_E2E_OUTAGE overrides it.
func outage(t *testing.T) time.Duration {
	if v := os.Getenv("AUDITRAIL_E2E_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("AUDITRAIL_E2E_OUTAGE: %v", err)
		}
		return d
	}
	return 60 * time.Second
}

// TestSinkIsolation stops MinIO for a minute under steady load with
// rotation: Elasticsearch and Kafka keep receiving within seconds the whole
// time, and when MinIO is back, S3 catches up with nothing lost.
func TestSinkIsolation(t *testing.T) {
	srv := StartServers(t)
	root := t.TempDir()
	auditDir := filepath.Join(root, "audit")
	os.MkdirAll(auditDir, 0o700)
	live := filepath.Join(auditDir, "audit.log")
	cfgPath := filepath.Join(root, "auditrail.yaml")
	if err := srv.WriteConfig(cfgPath, live, filepath.Join(root, "state")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3t, est, kt := srv.Watch(ctx, t)

	w := NewWriter(WriterConfig{Path: live, MaxSizeMB: 2, MaxBackups: 1000, Compress: true, Seed: 11})
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopWriting:
				return
			case <-tick.C:
			}
			for i := 0; i < 15; i++ {
				w.WriteRequest()
			}
		}
	}()

	agentLog := filepath.Join(root, "agent.log")
	a := &Agent{Bin: bin, Config: cfgPath, Env: AgentEnv()}
	if err := a.Start(agentLog); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	down := time.Now()
	srv.MinIO.Stop()
	time.Sleep(outage(t))
	up := time.Now()
	srv.MinIO.Restart()
	time.Sleep(3 * time.Second)
	close(stopWriting)
	<-writerDone
	w.Close()
	written := w.Written()

	// While S3 was down, the other sinks kept up: every event written in
	// the outage (but its last 5 s) arrived in them before S3 came back.
	late := map[string]int{}
	inOutage := 0
	for k, wt := range written {
		if wt.Before(down) || wt.After(up.Add(-5*time.Second)) {
			continue
		}
		inOutage++
		for name, tr := range map[string]*Tracker{"es": est, "kafka": kt} {
			if f, ok := tr.FirstSeen(k); !ok || f.After(up) {
				late[name]++
			}
		}
	}
	if inOutage == 0 {
		t.Fatal("no events written during the outage")
	}
	for name, n := range late {
		t.Errorf("%s: %d of %d events written while S3 was down arrived only after it came back", name, n, inOutage)
	}

	deadline := time.Now().Add(2 * time.Minute)
	for {
		var lostAny bool
		for _, tr := range []*Tracker{s3t, est, kt} {
			if lost, _ := Compare(written, tr.Received()); len(lost) > 0 {
				lostAny = true
			}
		}
		if !lostAny || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("agent did not exit cleanly on SIGTERM: %v", err)
	}
	if b, _ := os.ReadFile(agentLog); bytes.Contains(b, []byte(miniotest.SecretKey)) {
		t.Error("the agent's log shows the S3 secret key")
	} else if !bytes.Contains(b, []byte(`"sink":"s3"`)) {
		t.Error("the agent logged nothing about the S3 outage")
	}
	t.Logf("written=%d (in the %v outage: %d), S3 down at +5s", len(written), outage(t), inOutage)
	for _, s := range []struct {
		name string
		tr   *Tracker
	}{{"s3", s3t}, {"es", est}, {"kafka", kt}} {
		line, lost := Summary(s.name, written, s.tr)
		t.Log(line)
		if len(lost) > 0 {
			b, _ := os.ReadFile(agentLog)
			t.Logf("agent warnings and errors:\n%s", problems(b, 20))
			t.Errorf("%s: %d events lost, first: %v", s.name, len(lost), lost[:min(5, len(lost))])
		}
		for kind, n := range s.tr.Received().Other {
			t.Errorf("%s: %d unexpected records of kind %q", s.name, n, kind)
		}
	}
}
