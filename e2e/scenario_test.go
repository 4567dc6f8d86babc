package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/verify"
)

// Scenario is one end-to-end run: kube-apiserver's writer, the real agent
// shipping to S3 (MinIO), Elasticsearch (test server) and Kafka (kfake),
// and readers that record what each sink received and when.
type Scenario struct {
	T        *testing.T
	Srv      *Servers
	Dir      string // the audit log directory
	Live     string
	Config   string
	AgentLog string
	Metrics  string // the agent's /metrics URL
	Pprof    string // the agent's /debug/pprof/ URL
	W        *Writer
	Agent    *Agent
	Sinks    map[string]*Tracker

	mu         sync.Mutex
	stop, done chan struct{}
}

// NewScenario starts the servers and the readers and writes the agent's
// config; wc.Path is set to the live audit log.
func NewScenario(t *testing.T, wc WriterConfig) *Scenario {
	t.Helper()
	srv := StartServers(t)
	root := t.TempDir()
	s := &Scenario{T: t, Srv: srv, Dir: filepath.Join(root, "audit"), Config: filepath.Join(root, "auditrail.yaml"),
		AgentLog: filepath.Join(root, "agent.log")}
	s.Live = filepath.Join(s.Dir, "audit.log")
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	s.Metrics = "http://" + addr + "/metrics"
	s.Pprof = "http://" + pprofAddr + "/debug/pprof/"
	archive := filepath.Join(root, "archive")
	if err := srv.WriteConfig(s.Config, s.Live, filepath.Join(root, "state"), archive); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(s.Config, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "http: {address: %q, pprof: true, pprofAddress: %q}\n", addr, pprofAddr)
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s3t, est, kt := srv.Watch(ctx, t)
	s.Sinks = map[string]*Tracker{"s3": s3t, "es": est, "kafka": kt, "file": WatchFile(ctx, archive)}
	wc.Path = s.Live
	s.W = NewWriter(wc)
	s.Agent = &Agent{Bin: bin, Config: s.Config, Env: AgentEnv()}
	t.Cleanup(func() {
		s.StopWriting()
		if s.Agent.cmd != nil && s.Agent.cmd.ProcessState == nil {
			s.Agent.Kill()
		}
	})
	return s
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Configure appends top-level keys to the agent's configuration.
func (s *Scenario) Configure(yaml string) {
	s.T.Helper()
	f, err := os.OpenFile(s.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		s.T.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yaml + "\n"); err != nil {
		s.T.Fatal(err)
	}
}

// StartAgent starts the agent.
func (s *Scenario) StartAgent() {
	s.T.Helper()
	if err := s.Agent.Start(s.AgentLog); err != nil {
		s.T.Fatal(err)
	}
}

// StopAgent sends SIGTERM and fails the test if the agent does not exit
// cleanly.
func (s *Scenario) StopAgent() {
	s.T.Helper()
	if err := s.Agent.Stop(); err != nil {
		s.T.Errorf("agent did not exit cleanly on SIGTERM: %v", err)
	}
}

// StartWriting writes perTick requests every 50 ms until StopWriting.
func (s *Scenario) StartWriting(perTick int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for i := 0; i < perTick; i++ {
				s.W.WriteRequest()
			}
		}
	}(s.stop, s.done)
}

// StopWriting stops the writer started by StartWriting.
func (s *Scenario) StopWriting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
}

// WaitDelivered waits until every sink holds every written event, or
// timeout; want decides which written keys count.
func (s *Scenario) WaitDelivered(timeout time.Duration, want map[string]time.Time) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for _, tr := range s.Sinks {
			if lost, _ := Compare(want, tr.Received()); len(lost) > 0 {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// WaitCaughtUp waits until sink has received every event written so
// far, and fails the test if it has not within timeout. A scenario that
// takes sinks down in turn calls it before the next outage, so that a
// sink still catching up from its own outage is not judged on keeping up
// with the next one.
func (s *Scenario) WaitCaughtUp(sink string, timeout time.Duration) {
	s.T.Helper()
	want := s.W.Written()
	deadline := time.Now().Add(timeout)
	for {
		lost, _ := Compare(want, s.Sinks[sink].Received())
		if len(lost) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.T.Errorf("%s: %d of %d events written not delivered %v after it was back", sink, len(lost), len(want), timeout)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Results compares what each sink received with want.
func (s *Scenario) Results(name string, want map[string]time.Time) []Result {
	var out []Result
	for _, sink := range []string{"s3", "es", "kafka", "file"} {
		out = append(out, Measure(name, sink, want, s.Sinks[sink]))
	}
	return out
}

// Report logs the results as a table, appends them to the file named by
// AUDITRAIL_E2E_TABLE if set, and fails the test for every lost event.
func (s *Scenario) Report(rs []Result) {
	s.T.Helper()
	s.T.Logf("%-24s %-6s %8s %9s %5s %6s %5s %5s %6s %8s %8s", "scenario", "sink", "written", "delivered", "lost", "pruned", "dups", "stubs", "other", "p50", "p99")
	for _, r := range rs {
		s.T.Logf("%-24s %-6s %8d %9d %5d %6d %5d %5d %6d %8v %8v", r.Scenario, r.Sink, r.Written, r.Delivered, r.Lost, r.Pruned,
			r.Duplicates, r.Stubs, r.Others, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
		if r.Lost > 0 {
			s.T.Errorf("%s: %d events lost, first: %v", r.Sink, r.Lost, r.LostKeys[:min(5, len(r.LostKeys))])
		}
	}
	if path := os.Getenv("AUDITRAIL_E2E_TABLE"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			for _, r := range rs {
				fmt.Fprintf(f, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %v | %v |\n", r.Scenario, r.Sink, r.Written, r.Delivered,
					r.Lost, r.Pruned, r.Duplicates, r.Stubs, r.Others, r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond))
			}
			f.Close()
		}
	}
	if s.T.Failed() {
		b, _ := os.ReadFile(s.AgentLog)
		if dir := os.Getenv("AUDITRAIL_E2E_KEEP_LOGS"); dir != "" {
			p := filepath.Join(dir, strings.ReplaceAll(s.T.Name(), "/", "_")+".agent.log")
			if err := os.WriteFile(p, b, 0o644); err == nil {
				s.T.Logf("agent log kept in %s", p)
			}
		}
		s.T.Logf("agent warnings and errors:\n%s", problems(b, 30))
	}
}

// exactlyOnce are the sinks that receive every event exactly once, crashes
// included: all of them.
var exactlyOnce = []string{"s3", "es", "kafka", "file"}

// AssertNoDuplicates fails the test for every event that arrived more than
// once in a sink that delivers exactly once.
func (s *Scenario) AssertNoDuplicates(rs []Result) {
	s.T.Helper()
	for _, r := range rs {
		if slices.Contains(exactlyOnce, r.Sink) && r.Duplicates > 0 {
			s.T.Errorf("%s: %d events arrived more than once", r.Sink, r.Duplicates)
		}
	}
}

// AssertKeptUp checks that every event written while sink down was down
// (but the last 5 s of it) reached the other sinks before it came back,
// but for the sinks in busy: slowed down by faults of their own for the
// whole run, they are judged by their lag (AssertLagUnder) instead.
//
// A tracker may be behind what its server holds (the S3 tracker lists
// and reads objects in the test process, which -race slows down several
// times), so the check first gives the trackers up to settleTimeout to
// see the events, then judges by when each event was first seen: for S3
// and Elasticsearch the server's time of storing it, for Kafka and the
// file sink the time the tracker read it, never earlier than the
// delivery. Waiting therefore never makes a late delivery look on time.
func (s *Scenario) AssertKeptUp(down string, from, to time.Time, busy ...string) {
	s.T.Helper()
	keys := slices.Collect(maps.Keys(s.writtenBetween(from, to.Add(-5*time.Second))))
	n := len(keys)
	var judged []string
	for name := range s.Sinks {
		if name != down && !slices.Contains(busy, name) {
			judged = append(judged, name)
		}
	}
	s.settle(judged, keys)
	late := map[string]int{}
	for _, k := range keys {
		for _, name := range judged {
			if f, ok := s.Sinks[name].FirstSeen(k); !ok || f.After(to) {
				late[name]++
			}
		}
	}
	if n == 0 {
		s.T.Errorf("no events written while %s was down", down)
	}
	for name, c := range late {
		s.T.Errorf("%s down: %d of %d events written meanwhile reached %s only after %s was back", down, c, n, name, down)
		if name == "s3" {
			s.logStored(from)
		}
	}
}

// writtenBetween returns the events written from from to to, with when.
func (s *Scenario) writtenBetween(from, to time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for k, wt := range s.W.Written() {
		if !wt.Before(from) && !wt.After(to) {
			out[k] = wt
		}
	}
	return out
}

// settleTimeout bounds how long AssertKeptUp waits for the trackers to
// see what their servers hold.
const settleTimeout = time.Minute

// settle waits until the trackers of sinks have seen every one of keys,
// or settleTimeout passed.
func (s *Scenario) settle(sinks, keys []string) {
	deadline := time.Now().Add(settleTimeout)
	for _, name := range sinks {
		for _, k := range keys {
			for {
				if _, ok := s.Sinks[name].FirstSeen(k); ok || time.Now().After(deadline) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// DumpIfBehind saves the agent's goroutines when sink has not received
// every event written from from to to, so that what its reader and
// writer wait on is seen while it is behind: into AUDITRAIL_E2E_KEEP_LOGS
// if set, else into the test's log. It reports whether sink was behind.
func (s *Scenario) DumpIfBehind(sink string, from, to time.Time) bool {
	s.T.Helper()
	window := s.writtenBetween(from, to)
	behind, n := 0, len(window)
	for k := range window {
		if _, ok := s.Sinks[sink].FirstSeen(k); !ok {
			behind++
		}
	}
	if behind == 0 {
		return false
	}
	s.T.Logf("%s has %d of the %d events written from %s to %s not yet", sink, behind, n, from.Format("15:04:05"), to.Format("15:04:05"))
	if sink == "s3" {
		s.logStored(from)
	}
	var own bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&own, 2)
	s.keep(sink+"-behind.test.goroutines", own.Bytes())
	res, err := http.Get(s.Pprof + "goroutine?debug=2")
	if err != nil {
		s.T.Logf("goroutine dump: %v", err)
		return true
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	s.keep(sink+"-behind.agent.goroutines", b)
	return true
}

// keep writes b, a diagnostic, into AUDITRAIL_E2E_KEEP_LOGS if set, else
// into the test's log.
func (s *Scenario) keep(what string, b []byte) {
	if dir := os.Getenv("AUDITRAIL_E2E_KEEP_LOGS"); dir != "" {
		p := filepath.Join(dir, fmt.Sprintf("%s.%s.%s", strings.ReplaceAll(s.T.Name(), "/", "_"), time.Now().Format("150405"), what))
		if err := os.WriteFile(p, b, 0o644); err == nil {
			s.T.Logf("%s kept in %s", what, p)
			return
		}
	}
	s.T.Logf("%s:\n%s", what, b)
}

// logStored logs the objects MinIO stored since from, listed apart from
// the S3 tracker: whether the agent is behind, or the tracker.
func (s *Scenario) logStored(from time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Srv.MinIO.Client()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(s.Srv.Bucket)})
	var stored []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.T.Logf("list the bucket: %v", err)
			return
		}
		for _, o := range page.Contents {
			if o.LastModified != nil && o.LastModified.After(from) {
				stored = append(stored, o.LastModified.Format("15:04:05.000"))
			}
		}
	}
	slices.Sort(stored)
	s.T.Logf("MinIO holds %d objects stored since %s: %v", len(stored), from.Format("15:04:05.000"), stored)
	s.T.Logf("the S3 tracker: %v", s.Srv.S3Watched())
}

// AssertLagUnder checks that the p99 of the lag of sink, for the events
// written from from to to, is under bound; an event not delivered counts
// as late.
func (s *Scenario) AssertLagUnder(sink string, from, to time.Time, bound time.Duration) {
	s.T.Helper()
	var lags []time.Duration
	for k, wt := range s.writtenBetween(from, to) {
		lag := time.Duration(math.MaxInt64)
		if f, ok := s.Sinks[sink].FirstSeen(k); ok {
			lag = f.Sub(wt)
		}
		lags = append(lags, lag)
	}
	slices.Sort(lags)
	p50, p99 := Percentile(lags, 0.5), Percentile(lags, 0.99)
	s.T.Logf("%s lag for the %d events written from %s to %s: p50 %v, p99 %v", sink, len(lags),
		from.Format("15:04:05"), to.Format("15:04:05"), p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	if p99 >= bound {
		s.T.Errorf("%s: p99 lag %v for events written while it was busy, want under %v", sink, p99.Round(time.Millisecond), bound)
	}
}

// Metric returns the sum of the agent's samples of a metric whose labels
// contain every one of match.
func (s *Scenario) Metric(name string, match ...string) float64 {
	res, err := http.Get(s.Metrics)
	if err != nil {
		s.T.Fatalf("scrape %s: %v", s.Metrics, err)
	}
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if ok {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// OnDisk returns the keys of the events in the audit directory's files
// now, plain or gzip'd.
func (s *Scenario) OnDisk() map[string]bool {
	keys := map[string]bool{}
	s.EachLine(func(line []byte) {
		var ev event
		if json.Unmarshal(line, &ev) == nil && ev.Kind == "Event" {
			keys[Key(ev.AuditID, ev.Stage)] = true
		}
	})
	return keys
}

// EachLine calls f with every line of the audit directory's files now,
// plain or gzip'd, oldest file first.
func (s *Scenario) EachLine(f func(line []byte)) {
	s.T.Helper()
	files, _ := filepath.Glob(filepath.Join(s.Dir, "audit*"))
	sort.Strings(files)
	for _, p := range files {
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		var r io.Reader = fh
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(fh)
			if err != nil {
				fh.Close()
				continue
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			f(sc.Bytes())
		}
		fh.Close()
	}
}

func globCount(dir, pattern string) (int, error) {
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	return len(m), err
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// VerifyArchive runs `auditrail verify` over the scenario's bucket, with
// args added, and returns its report; it fails the test when the command
// cannot run.
func (s *Scenario) VerifyArchive(args ...string) (report verify.Report, code int) {
	s.T.Helper()
	cmd := testproc.Command(bin, append([]string{"verify", "--config", s.Config, "--json"}, args...)...)
	cmd.Env = append(os.Environ(), AgentEnv()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code != 1 {
		s.T.Fatalf("auditrail verify: %v\n%s", err, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		s.T.Fatalf("verify report: %v\n%s", err, out.String())
	}
	return report, code
}

// AssertArchiveVerifies checks that the S3 archive has no findings: every
// checksum, chain link and retention holds, and when the scenario has a
// Kafka or Elasticsearch sink, the chain heads the agent published there as
// anchors agree with the archive and reach its last epoch.
func (s *Scenario) AssertArchiveVerifies() {
	s.T.Helper()
	var args []string
	cfg, err := readFile(s.Config)
	if err != nil {
		s.T.Fatal(err)
	}
	var sources []string
	for _, name := range []string{"kafka", "es"} {
		if strings.Contains(cfg, "name: "+name+"\n") {
			sources = append(sources, name)
		}
	}
	anchored := len(sources) > 0
	if anchored {
		args = append(args, "--anchors", strings.Join(sources, ","))
	}
	rep, code := s.VerifyArchive(args...)
	if code != 0 || !rep.OK || rep.Objects == 0 {
		s.T.Errorf("auditrail verify exited %d over %d objects: %+v", code, rep.Objects, rep.Findings)
	}
	for _, e := range rep.Epochs {
		s.T.Logf("archive: chain %s epoch %s objects %d..%d, anchored up to %d", e.Chain, e.Epoch, e.FirstSeq, e.LastSeq, e.AnchoredSeq)
	}
	if n := len(rep.Epochs); anchored && (rep.Anchors == 0 || n > 0 && rep.Epochs[n-1].AnchoredSeq == 0) {
		s.T.Errorf("verify --anchors %s checked %d anchors; the last epoch has none", strings.Join(sources, ","), rep.Anchors)
	}
}
