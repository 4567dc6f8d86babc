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
//
// When not every event is in every sink within -wait (2 minutes) of the writer
// stopping, it prints on stderr, per sink, how many are missing and the
// first few with when and at which offset they were written, saves the
// agent's metrics and goroutines, asks a new Kafka consumer whether the
// brokers hold the ones Kafka's tracker lacks, keeps waiting up to -late
// and says when they arrived, and keeps the run's directory (agent log,
// state, config, the servers' data) with -keep-on-failure.
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
	keep := flag.Bool("keep-on-failure", true, "keep the run's directory when events are missing")
	wait := flag.Duration("wait", 2*time.Minute, "how long after the writer stops every event must be in every sink")
	late := flag.Duration("late", 3*time.Minute, "how much longer to wait for events missing after -wait")
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
	failed := false
	defer func() {
		if failed && *keep {
			log.Printf("kept the run's directory %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	r := &e2e.Runner{Dir: dir}
	defer r.Close()
	srv := e2e.StartServers(r)
	srv.Trusted = true
	live := filepath.Join(dir, "audit", "audit.log")
	if err := os.MkdirAll(filepath.Dir(live), 0o700); err != nil {
		r.Fatal(err)
	}
	cfg := filepath.Join(dir, "auditrail.yaml")
	metricsAddr, err := freePort()
	if err != nil {
		r.Fatal(err)
	}
	pprofAddr, err := freePort()
	if err != nil {
		r.Fatal(err)
	}
	if err := writeConfig(cfg, srv, live, filepath.Join(dir, "state"), metricsAddr, pprofAddr); err != nil {
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
	drained := waitDelivered(written, trackers, *wait)
	cpu1, err := cpuTime(a.Pid())
	if err != nil {
		r.Fatal(err)
	}
	wall := time.Since(start)
	if !drained {
		failed = true
		log.Printf("not every event arrived in every sink within %v of the writer stopping", *wait)
		diagnose(dir, srv, w, trackers, start, start.Add(wrote), metricsAddr, pprofAddr, *late)
	}
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
}

// diagnose reports the events missing at the deadline, saves what the
// agent shows of itself, and waits up to late for the missing events.
func diagnose(dir string, srv *e2e.Servers, w writer, trackers map[string]*e2e.Tracker, start, stopped time.Time,
	metricsAddr, pprofAddr string, late time.Duration) {
	written := w.Written()
	missing := missingKeys(written, trackers)
	report(os.Stderr, missing, written, w, start, stopped)
	snapshot(os.Stderr, dir, metricsAddr, pprofAddr, "deadline")
	if keys := missing["kafka"]; len(keys) > 0 {
		found, err := kafkaHas(srv.Kafka.ListenAddrs(), srv.Topic, keys, 10*time.Second, time.Minute)
		if err != nil {
			log.Printf("kafka: read again: %v", err)
		} else {
			var last time.Time
			for _, ts := range found {
				if ts.After(last) {
					last = ts
				}
			}
			msg := ""
			if len(found) > 0 {
				msg = fmt.Sprintf(", the last produced %.1fs after the writer stopped", last.Sub(stopped).Seconds())
			}
			log.Printf("kafka: a new consumer finds %d of the %d missing events in the brokers%s", len(found), len(keys), msg)
		}
	}
	still := waitLate(os.Stderr, missing, trackers, stopped, late)
	snapshot(os.Stderr, dir, metricsAddr, pprofAddr, "late")
	var b strings.Builder
	for _, name := range sinkNames {
		for _, k := range missing[name] {
			_, ok := trackers[name].FirstSeen(k)
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\tarrived=%v\n", name, k, written[k].Format(time.RFC3339Nano), where(w, k), ok)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "missing.txt"), []byte(b.String()), 0o644); err != nil {
		log.Print(err)
	}
	for _, name := range sinkNames {
		if len(still[name]) > 0 {
			log.Printf("%s: still missing after the further wait: %s", name, keysLine(still[name], 5))
		}
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
	for _, keys := range waitSeen(missingKeys(written, trackers), trackers, limit) {
		if len(keys) > 0 {
			return false
		}
	}
	return true
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
func writeConfig(path string, s *e2e.Servers, auditLog, stateDir, metricsAddr, pprofAddr string) error {
	cfg := strings.Join([]string{
		"auditLogPath: " + auditLog,
		"stateDir: " + stateDir,
		"log: {level: warn}",
		"http: {address: \"" + metricsAddr + "\", pprof: true, pprofAddress: \"" + pprofAddr + "\"}",
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
