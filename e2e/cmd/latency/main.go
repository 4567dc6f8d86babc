// Command latency measures how long audit events take from kube-apiserver's
// writer to every sink at a fixed rate: it starts MinIO, the Elasticsearch
// API test server and a three-broker Kafka cluster on 127.0.0.1, runs the
// agent binary with all three sinks, writes -rate events per second with
// kube-apiserver's audit backend over lumberjack (rotating every
// -maxsize-mb) for -duration, and prints p50, p99 and max per sink, and the
// agent's CPU time and peak RSS.
//
// Latency is from the writer's return to the event being visible in the
// sink's store; the readers poll S3 and Elasticsearch every 100 ms, so
// those figures carry up to that much extra. -s3-flush sets the S3 sink's
// flush interval, which S3's latency mostly is.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/auditrail/auditrail/e2e"
)

func main() {
	bin := flag.String("bin", "", "the auditrail binary")
	rate := flag.Int("rate", 5000, "events per second")
	duration := flag.Duration("duration", time.Minute, "how long to write")
	maxSize := flag.Int("maxsize-mb", 10, "rotate the audit log at this size")
	s3Flush := flag.Duration("s3-flush", time.Second, "the S3 sink's flush interval: its latency")
	flag.Parse()
	if *bin == "" {
		log.Fatal("-bin is required")
	}
	dir, err := os.MkdirTemp("", "auditrail-latency")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r := &e2e.Runner{Dir: dir}
	defer r.Close()
	srv := e2e.StartServers(r)
	auditDir := filepath.Join(dir, "audit")
	os.MkdirAll(auditDir, 0o700)
	live := filepath.Join(auditDir, "audit.log")
	cfg := filepath.Join(dir, "auditrail.yaml")
	srv.S3Flush = *s3Flush
	if err := srv.WriteConfig(cfg, live, filepath.Join(dir, "state"), ""); err != nil {
		r.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3t, est, kt := srv.Watch(ctx, r)
	w := e2e.NewWriter(e2e.WriterConfig{Path: live, MaxSizeMB: *maxSize, MaxBackups: 1000, Compress: true, Seed: 5})
	a := &e2e.Agent{Bin: *bin, Config: cfg, Env: e2e.AgentEnv()}
	if err := a.Start(filepath.Join(dir, "agent.log")); err != nil {
		r.Fatal(err)
	}
	time.Sleep(2 * time.Second)

	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	for now := range tick.C {
		if now.Sub(start) >= *duration {
			break
		}
		due := int(now.Sub(start).Seconds() * float64(*rate))
		for w.Count() < due {
			w.WriteRequest()
		}
	}
	tick.Stop()
	w.Close()
	written := w.Written()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		done := true
		for _, tr := range []*e2e.Tracker{s3t, est, kt} {
			if lost, _ := e2e.Compare(written, tr.Received()); len(lost) > 0 {
				done = false
			}
		}
		if done {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		log.Printf("agent exit: %v", err)
	}
	cpu, rss := a.Usage()
	fmt.Printf("wrote %d events in %v (%.0f/s), %d rotations\n", len(written), *duration, float64(len(written))/duration.Seconds(), w.Rotations())
	for _, s := range []struct {
		name string
		tr   *e2e.Tracker
	}{{"s3", s3t}, {"es", est}, {"kafka", kt}} {
		r := e2e.Measure("latency", s.name, written, s.tr)
		fmt.Printf("%-6s received=%d lost=%d duplicates=%d latency p50=%v p99=%v max=%v\n", r.Sink, r.Delivered, r.Lost,
			r.Duplicates, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	}
	fmt.Printf("agent: %.2f CPU s (%.0f%% of a core), peak RSS %d MiB\n", cpu.Seconds(), 100*cpu.Seconds()/(duration.Seconds()+2), rss/1024)
}
