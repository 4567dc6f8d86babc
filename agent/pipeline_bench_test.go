package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditrail/auditrail/agent"
	"github.com/auditrail/auditrail/sinks/discard"
)

// BenchmarkThreeSinks measures the whole agent, from the files on disk to
// the acknowledgements of three sinks, on 48 MiB of events in six rotated
// files and the live one. Batches are small and a probe asks for readiness
// every millisecond, so acknowledgements, checkpoints and readiness checks,
// the paths that share the agent's file and position state, are frequent.
// Run it with -mutexprofile to see the contention on that state:
//
//	go test -run '^$' -bench ThreeSinks -mutexprofile mutex.out ./agent
func BenchmarkThreeSinks(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "audit")
	size := writeRotated(b, dir, 7, 48<<20)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		runOnce(b, dir)
	}
}

// writeRotated writes files lumberjack-named backups and the live file
// audit.log into dir, total bytes of events in all, and returns the size
// written.
func writeRotated(b *testing.B, dir string, files int, total int64) int64 {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var written int64
	n := 0
	for i := range files {
		name := filepath.Join(dir, "audit.log")
		if i < files-1 {
			name = filepath.Join(dir, "audit-"+at.Add(time.Duration(i)*time.Minute).Format("2006-01-02T15-04-05.000")+".log")
		}
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for per := int64(0); per < total/int64(files); n++ {
			k, _ := fmt.Fprintf(w, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"00000000-0000-0000-0000-%012d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods?limit=%d","verb":"list","user":{"username":"system:serviceaccount:kube-system:replicaset-controller","groups":["system:serviceaccounts","system:authenticated"]},"sourceIPs":["10.0.0.%d"],"userAgent":"kube-controller-manager/v1.31.0","objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:%02d:%02d.000000Z","stageTimestamp":"2026-11-21T10:%02d:%02d.001000Z"}`+"\n",
				n, n%500, n%250, n/60%60, n%60, n/60%60, n%60)
			per += int64(k)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			b.Fatal(err)
		}
		written += fi.Size()
		f.Close()
	}
	return written
}

// runOnce runs an agent with three discard sinks over dir until every sink
// acknowledged everything, probing its readiness as /readyz does.
func runOnce(b *testing.B, dir string) {
	state, err := os.MkdirTemp(filepath.Dir(dir), "state")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(state)
	var so []agent.SinkOptions
	for _, name := range []string{"s3", "es", "kafka"} {
		so = append(so, agent.SinkOptions{
			Sink:        discard.New(name),
			Batch:       agent.BatchOptions{MaxEvents: 200, MaxBytes: 1 << 20, FlushInterval: 100 * time.Millisecond},
			Retry:       agent.RetryOptions{InitialInterval: 10 * time.Millisecond, MaxInterval: time.Second},
			MaxInFlight: 2,
		})
	}
	a, err := agent.New(agent.Options{
		AuditLogPath: filepath.Join(dir, "audit.log"), StateDir: state, MaxLineBytes: 1 << 20,
		PollInterval: 20 * time.Millisecond, CheckpointInterval: 20 * time.Millisecond, DrainTimeout: 10 * time.Second,
		MaxOpenFiles: 3, StartAt: "beginning", Once: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, so)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				a.Ready()
			}
		}
	}()
	defer close(done)
	if err := a.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}
