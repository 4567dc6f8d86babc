// Command live measures the agent following a live audit log into all
// three network sinks: it starts MinIO, the Elasticsearch API test server
// and a three-broker Kafka cluster on 127.0.0.1, runs the agent binary
// with the sinks at their default batch settings (the S3 flush interval
// 1 s, as every other sink's), and writes -mbps megabytes per second with
// kube-apiserver's audit backend over lumberjack (rotating every
// -maxsize-mb) for -duration; -mbps 0 writes nothing (idle). With -corpus
// it appends the lines of a generated corpus instead, one write per event
// through lumberjack, which costs far less CPU than generating them.
//
// It prints one tab-separated row: the agent's CPU seconds from the first
// write until every event is in every sink (read from /proc/<pid>/stat, so
// start-up is not counted, nor the servers' or this program's CPU), that
// as a share of one core and per GB written, the agent's peak RSS, and
// per sink the p99 of append → acknowledged (the writer's return to the
// object's Last-Modified in MinIO, the document's creation in the test
// server, a consumer receiving it from Kafka) and the events lost.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/auditrail/auditrail/e2e"
	"github.com/auditrail/auditrail/internal/miniotest"
)

func main() {
	bin := flag.String("bin", "", "the auditrail binary")
	mbps := flag.Float64("mbps", 5, "megabytes (1e6 bytes) per second to write; 0: idle")
	duration := flag.Duration("duration", time.Minute, "how long to write (or stay idle)")
	bodies := flag.String("bodies", "k8s", "request and response bodies: k8s (Kubernetes objects), words (words and hex), random")
	secrets := flag.Int("secret-writes-permille", 0, "make this many requests in 1000 Secret writes with bodies")
	maxSize := flag.Int("maxsize-mb", 100, "rotate the audit log at this size, as --audit-log-maxsize")
	cpuProfile := flag.String("cpuprofile", "", "have the agent write a CPU profile of the run here")
	header := flag.Bool("header", false, "print the column names first")
	corpus := flag.String("corpus", "", "append the lines of this corpus (a directory of audit.log and its backups, see gencorpus) through lumberjack instead of generating events with kube-apiserver's backend, which costs more CPU than the agent at high rates")
	flag.Parse()
	if *bin == "" {
		log.Fatal("-bin is required")
	}
	if *header {
		fmt.Println("bodies\tMB/s_written\tMB\tcpu_s\tcore_%\tcpu_s/GB\trss_MiB\tp99_s3_ms\tp99_es_ms\tp99_kafka_ms\tlost")
	}
	dir, err := os.MkdirTemp("", "auditrail-live")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r := &e2e.Runner{Dir: dir}
	defer r.Close()
	srv := e2e.StartServers(r)
	srv.Trusted = true
	live := filepath.Join(dir, "audit", "audit.log")
	if err := os.MkdirAll(filepath.Dir(live), 0o700); err != nil {
		r.Fatal(err)
	}
	cfg := filepath.Join(dir, "auditrail.yaml")
	if err := writeConfig(cfg, srv, live, filepath.Join(dir, "state")); err != nil {
		r.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trackers := map[string]*e2e.Tracker{}
	trackers["s3"], trackers["es"], trackers["kafka"] = srv.Watch(ctx, r)
	var w writer
	if *corpus != "" {
		rw, err := newReplay(*corpus, live, *maxSize)
		if err != nil {
			r.Fatal(err)
		}
		w = rw
	} else {
		w = e2e.NewWriter(e2e.WriterConfig{Path: live, MaxSizeMB: *maxSize, MaxBackups: 1000, Seed: 5,
			RandomBodies: *bodies == "random", WordBodies: *bodies == "words", SecretWritesPermille: *secrets})
	}
	a := &e2e.Agent{Bin: *bin, Config: cfg, Env: e2e.AgentEnv()}
	if *cpuProfile != "" {
		a.Args = []string{"--cpuprofile", *cpuProfile}
	}
	if err := a.Start(filepath.Join(dir, "agent.log")); err != nil {
		r.Fatal(err)
	}
	time.Sleep(3 * time.Second) // start-up: sinks connect, the first scan

	cpu0, err := cpuTime(a.Pid())
	if err != nil {
		r.Fatal(err)
	}
	start := time.Now()
	write(w, start, *mbps, *duration)
	wrote := time.Since(start)
	w.Close()
	written := w.Written()
	drained := waitDelivered(written, trackers, 2*time.Minute)
	cpu1, err := cpuTime(a.Pid())
	if err != nil {
		r.Fatal(err)
	}
	wall := time.Since(start)
	if err := a.Stop(); err != nil {
		log.Printf("agent exit: %v", err)
	}
	_, rss := a.Usage()
	cpu := (cpu1 - cpu0).Seconds()
	perGB := "-"
	if b := w.Bytes(); b > 0 {
		perGB = strconv.FormatFloat(cpu/(float64(b)/1e9), 'f', 2, 64)
	}
	row := []string{*bodies, fmt.Sprintf("%.1f", float64(w.Bytes())/1e6/wrote.Seconds()), fmt.Sprintf("%.0f", float64(w.Bytes())/1e6),
		fmt.Sprintf("%.2f", cpu), fmt.Sprintf("%.2f", 100*cpu/wall.Seconds()), perGB, strconv.FormatInt(rss/1024, 10)}
	lost := 0
	for _, name := range []string{"s3", "es", "kafka"} {
		res := e2e.Measure("live", name, written, trackers[name])
		lost += res.Lost
		row = append(row, strconv.FormatInt(res.P99.Milliseconds(), 10))
	}
	row = append(row, strconv.Itoa(lost))
	fmt.Println(strings.Join(row, "\t"))
	if !drained {
		log.Printf("not every event arrived in every sink within 2 minutes of the writer stopping")
	}
}

// writer appends audit events to the live log.
type writer interface {
	// WriteRequest writes the next request's events.
	WriteRequest()
	// Bytes returns how many bytes were written.
	Bytes() int64
	// Written returns every auditID/stage key written and when.
	Written() map[string]time.Time
	Close() error
}

// write appends events through w at mbps megabytes per second from start
// for d, in whole events every 10 ms; with mbps 0 it waits d.
func write(w writer, start time.Time, mbps float64, d time.Duration) {
	if mbps <= 0 {
		time.Sleep(d)
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for now := range tick.C {
		el := now.Sub(start)
		if el >= d {
			return
		}
		due := int64(el.Seconds() * mbps * 1e6)
		for w.Bytes() < due {
			w.WriteRequest()
		}
	}
}

// waitDelivered waits until every written event is in every sink, or
// limit passes; it reports whether they all arrived.
func waitDelivered(written map[string]time.Time, trackers map[string]*e2e.Tracker, limit time.Duration) bool {
	missing := map[*e2e.Tracker][]string{}
	for _, tr := range trackers {
		for k := range written {
			missing[tr] = append(missing[tr], k)
		}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		done := true
		for tr, keys := range missing {
			kept := keys[:0]
			for _, k := range keys {
				if _, ok := tr.FirstSeen(k); !ok {
					kept = append(kept, k)
				}
			}
			missing[tr] = kept
			done = done && len(kept) == 0
		}
		if done {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// cpuTime returns the user and system CPU time process pid has used, from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	d, err := statCPU(string(b))
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// statCPU returns utime + stime from a /proc/<pid>/stat line.
func statCPU(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	f := strings.Fields(s[i+1:])
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("%d fields", len(f))
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime: fields 14 and 15 of the line
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// writeConfig writes the agent's config: the three network sinks at
// their default batch sizes, every flush interval 1 s.
func writeConfig(path string, s *e2e.Servers, auditLog, stateDir string) error {
	cfg := strings.Join([]string{
		"auditLogPath: " + auditLog,
		"stateDir: " + stateDir,
		"log: {level: warn}",
		"sinks:",
		"  - name: s3",
		"    type: s3",
		"    batch: {flushInterval: 1s}",
		"    s3:",
		"      bucket: " + s.Bucket,
		"      endpoint: " + s.MinIO.Endpoint(),
		"      forcePathStyle: true",
		"      region: us-east-1",
		"      cluster: bench",
		"      node: master-1",
		"      accessKeyID: " + miniotest.AccessKey,
		"      secretAccessKey: ${E2E_S3_SECRET}",
		"      objectLock: {mode: GOVERNANCE, retention: 1h}",
		"  - name: es",
		"    type: elasticsearch",
		"    elasticsearch:",
		"      addresses: [\"" + s.ES.URL + "\"]",
		"      index: " + s.Index,
		"  - name: kafka",
		"    type: kafka",
		"    kafka:",
		"      brokers: [\"" + strings.Join(s.Kafka.ListenAddrs(), "\", \"") + "\"]",
		"      topic: " + s.Topic,
	}, "\n") + "\n"
	return os.WriteFile(path, []byte(cfg), 0o644)
}
