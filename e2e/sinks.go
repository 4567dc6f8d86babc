package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
)

// Servers are the real or protocol-faithful servers the network sinks
// ship to, all on 127.0.0.1.
type Servers struct {
	MinIO  *miniotest.Server
	ES     *estest.Server
	Kafka  *kfake.Cluster
	Bucket string
	Index  string
	Topic  string
	// S3Flush is the S3 sink's flush interval in WriteConfig; 1s if zero.
	S3Flush time.Duration
	// Trusted makes the trackers Watch returns take an event's auditID
	// and stage from their first occurrence in the line instead of
	// decoding it: for benchmarks, where the events are the writer's own
	// and kube-apiserver writes both before any body, and decoding every
	// record three times would cost more CPU than the agent.
	Trusted bool

	s3mu sync.Mutex
	s3w  S3Watch
}

// StartServers starts MinIO with an Object Lock bucket, the ES test server
// and a three-broker Kafka cluster.
func StartServers(t miniotest.TB) *Servers {
	t.Helper()
	s := &Servers{MinIO: miniotest.Start(t), ES: estest.New(), Bucket: "audit", Index: "logs-kubernetes.audit-e2e", Topic: "k8s-audit"}
	t.Cleanup(s.ES.Close)
	s.MinIO.Bucket(s.Bucket, true)
	k, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, s.Topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	s.Kafka = k
	return s
}

// WriteConfig writes an agent config with the S3, Elasticsearch and Kafka
// sinks, and a file sink writing to archive unless it is "".
func (s *Servers) WriteConfig(path, auditLog, stateDir, archive string) error {
	cfg := strings.Join([]string{
		"auditLogPath: " + auditLog,
		"stateDir: " + stateDir,
		"pollInterval: 200ms",
		"checkpointInterval: 200ms",
		"drainTimeout: 5s",
		"log: {level: " + logLevel() + ", format: json}",
		"sinks:",
		"  - name: s3",
		"    type: s3",
		"    batch: {maxBytes: 4MiB, flushInterval: " + cmp.Or(s.S3Flush, time.Second).String() + "}",
		"    retry: {initialInterval: 100ms, maxInterval: 2s}",
		"    s3:",
		"      bucket: " + s.Bucket,
		"      endpoint: " + s.MinIO.Endpoint(),
		"      forcePathStyle: true",
		"      region: us-east-1",
		"      cluster: e2e",
		"      node: master-1",
		"      accessKeyID: " + miniotest.AccessKey,
		"      secretAccessKey: ${E2E_S3_SECRET}",
		"      requestTimeout: 10s",
		"      objectLock: {mode: GOVERNANCE, retention: 1h}",
		"  - name: es",
		"    type: elasticsearch",
		"    batch: {maxEvents: 1000, flushInterval: 200ms}",
		"    retry: {initialInterval: 100ms, maxInterval: 2s}",
		"    elasticsearch:",
		"      addresses: [\"" + s.ES.URL + "\"]",
		"      index: " + s.Index,
		"      requestTimeout: 10s",
		"  - name: kafka",
		"    type: kafka",
		"    batch: {maxEvents: 1000, flushInterval: 200ms}",
		"    retry: {initialInterval: 100ms, maxInterval: 2s}",
		"    kafka:",
		"      brokers: [\"" + strings.Join(s.Kafka.ListenAddrs(), "\", \"") + "\"]",
		"      topic: " + s.Topic,
		"      requestTimeout: 10s",
	}, "\n") + "\n"
	if archive != "" {
		cfg += strings.Join([]string{
			"  - name: file",
			"    type: file",
			"    batch: {maxEvents: 1000, flushInterval: 200ms}",
			"    retry: {initialInterval: 100ms, maxInterval: 2s}",
			"    file:",
			"      directory: " + archive,
			"      maxFileBytes: 4MiB",
		}, "\n") + "\n"
	}
	return os.WriteFile(path, []byte(cfg), 0o644)
}

// logLevel is the agent's log level: AUDITRAIL_E2E_LOG_LEVEL, or info.
func logLevel() string {
	if l := os.Getenv("AUDITRAIL_E2E_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// AgentEnv is the environment the agent needs for this config.
func AgentEnv() []string { return []string{"E2E_S3_SECRET=" + miniotest.SecretKey} }

// Runner gives the test servers what they need of a test when they run
// in a program (the benchmark's server launcher and latency tool).
type Runner struct {
	Dir      string
	cleanups []func()
}

// Helper implements miniotest.TB.
func (r *Runner) Helper() {}

// Error logs.
func (r *Runner) Error(args ...any) { log.Print(args...) }

// Fatal runs the cleanups and exits.
func (r *Runner) Fatal(args ...any) { r.Close(); log.Fatal(args...) }

// Fatalf runs the cleanups and exits.
func (r *Runner) Fatalf(f string, a ...any) { r.Close(); log.Fatalf(f, a...) }

// Skip is fatal outside tests.
func (r *Runner) Skip(args ...any) { r.Fatal(args...) }

// TempDir returns a new directory under Dir.
func (r *Runner) TempDir() string {
	d, err := os.MkdirTemp(r.Dir, "tmp")
	if err != nil {
		r.Fatal(err)
	}
	return d
}

// Cleanup registers f to run at Close.
func (r *Runner) Cleanup(f func()) {
	if f != nil {
		r.cleanups = append(r.cleanups, f)
	}
}

// Close runs the cleanups, last first.
func (r *Runner) Close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// Tracker records when each auditID/stage was first seen in a sink and how
// many times.
type Tracker struct {
	mu    sync.Mutex
	first map[string]time.Time
	count map[string]int
	other map[string]int
	stubs int
	gaps  []string
	// agent counts the records about the agent itself (manifests, start
	// records, heartbeats); tampers are the tamper records.
	agent   map[string]int
	tampers []string
	// uris counts, for the auditID/stage keys given to TrackURIs, the
	// requestURIs of the events seen: requests can share an auditID.
	uris map[string]map[string]int
	// trusted: see Servers.Trusted.
	trusted bool
}

func newTracker() *Tracker {
	return &Tracker{first: map[string]time.Time{}, count: map[string]int{}, other: map[string]int{}, agent: map[string]int{},
		uris: map[string]map[string]int{}}
}

// TrackURIs makes the tracker count the requestURIs of the events seen
// with the auditID/stage key from now on.
func (t *Tracker) TrackURIs(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.uris[key] = map[string]int{}
}

// URIs returns how many events of each requestURI were seen with the
// auditID/stage key, which must have been given to TrackURIs.
func (t *Tracker) URIs(key string) map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.uris[key])
}

// Agent returns how many records about the agent itself were seen, by
// kind: AuditrailManifest, AuditrailAgentStarted, AuditrailHeartbeat,
// AuditrailAnchor.
func (t *Tracker) Agent() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.agent)
}

// Tampers returns the tamper records seen.
func (t *Tracker) Tampers() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.tampers...)
}

func (t *Tracker) saw(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.first[key]; !ok {
		t.first[key] = now
	}
	t.count[key]++
}

// Received returns the counts so far.
func (t *Tracker) Received() *Received {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &Received{Count: map[string]int{}, Other: map[string]int{}}
	for k, v := range t.count {
		r.Count[k] = v
	}
	for k, v := range t.other {
		r.Other[k] = v
	}
	return r
}

// Gaps returns the gap records seen.
func (t *Tracker) Gaps() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.gaps...)
}

// Stubs returns how many oversized-line stubs stood in for events.
func (t *Tracker) Stubs() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stubs
}

// FirstSeen returns when key was first seen.
func (t *Tracker) FirstSeen(key string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts, ok := t.first[key]
	return ts, ok
}

// Latencies returns, for the written keys the tracker saw, first-seen
// minus write time, sorted.
func (t *Tracker) Latencies(written map[string]time.Time) []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for k, w := range written {
		if f, ok := t.first[k]; ok {
			out = append(out, f.Sub(w))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Percentile returns the p-th percentile of sorted durations.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

var errNoAuditID = errors.New("no auditID")

// event is what the readers need of a shipped line.
type event struct {
	Kind       string `json:"kind"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
}

// line records the record b, seen at now, and returns its auditID/stage
// key if it counts as an event.
func (t *Tracker) line(b []byte, now time.Time) string {
	if t.trusted && bytes.Contains(b, []byte(`"kind":"Event"`)) {
		if k := LineKey(b); k != "" {
			t.saw(k, now)
			return k
		}
	}
	var ev event
	err := json.Unmarshal(b, &ev)
	if err == nil && ev.Kind == "AuditrailOversizedLine" && ev.AuditID != "" && ev.Stage != "" {
		// A line too long for the sink, delivered as a stub that names it.
		t.mu.Lock()
		t.stubs++
		t.mu.Unlock()
		t.saw(Key(ev.AuditID, ev.Stage), now)
		return Key(ev.AuditID, ev.Stage)
	}
	switch ev.Kind {
	case "AuditrailManifest", "AuditrailAgentStarted", "AuditrailHeartbeat", "AuditrailAnchor":
		t.mu.Lock()
		t.agent[ev.Kind]++
		t.mu.Unlock()
		return ""
	case "AuditrailTamper":
		t.mu.Lock()
		t.tampers = append(t.tampers, string(b))
		t.mu.Unlock()
		return ""
	}
	if err == nil && ev.Kind == "Event" && ev.AuditID == "" {
		ev.Kind = "Event without auditID" // e.g. a malformed line that Go's decoder accepts
		err = errNoAuditID
	}
	if err != nil || ev.Kind != "Event" {
		t.mu.Lock()
		t.other[ev.Kind]++
		if ev.Kind == "AuditrailGap" {
			t.gaps = append(t.gaps, string(b))
		}
		t.mu.Unlock()
		return ""
	}
	k := Key(ev.AuditID, ev.Stage)
	t.saw(k, now)
	t.mu.Lock()
	if u := t.uris[k]; u != nil {
		u[ev.RequestURI]++
	}
	t.mu.Unlock()
	return k
}

// Watch follows every sink until ctx ends, recording what arrives.
func (s *Servers) Watch(ctx context.Context, t miniotest.TB) (s3t, est, kt *Tracker) {
	s3t, est, kt = newTracker(), newTracker(), newTracker()
	s3t.trusted, est.trusted, kt.trusted = s.Trusted, s.Trusted, s.Trusted
	go s.watchS3(ctx, s3t)
	go s.watchES(ctx, est)
	go s.watchKafka(ctx, t, kt)
	return
}

// S3Watch is what the S3 tracker did, for diagnostics.
type S3Watch struct {
	Lists, ListErrs, GetErrs int
	Listed, Done             int // objects in the last listing, and read
	LastList                 time.Time
	LastErr                  string
}

func (w S3Watch) String() string {
	return fmt.Sprintf("%d listings (%d failed), the last at %s listing %d objects; %d objects read, %d reads failed; last error: %s",
		w.Lists, w.ListErrs, w.LastList.Format("15:04:05.000"), w.Listed, w.Done, w.GetErrs, w.LastErr)
}

// S3Watched returns what the S3 tracker did so far.
func (s *Servers) S3Watched() S3Watch {
	s.s3mu.Lock()
	defer s.s3mu.Unlock()
	return s.s3w
}

func (s *Servers) s3Stat(f func(w *S3Watch)) {
	s.s3mu.Lock()
	f(&s.s3w)
	s.s3mu.Unlock()
}

func (s *Servers) watchS3(ctx context.Context, tr *Tracker) {
	c := s.MinIO.Client()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	done := map[string]bool{}
	fail := func(err error, get bool) {
		s.s3Stat(func(w *S3Watch) {
			if get {
				w.GetErrs++
			} else {
				w.ListErrs++
			}
			w.LastErr = err.Error()
		})
	}
	for ctx.Err() == nil {
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(s.Bucket)})
		listed := 0
		for p.HasMorePages() && ctx.Err() == nil {
			lctx, cancel := context.WithTimeout(ctx, s3WatchTimeout)
			page, err := p.NextPage(lctx)
			cancel()
			if err != nil {
				fail(err, false)
				break // MinIO down: try again later
			}
			listed += len(page.Contents)
			for _, o := range page.Contents {
				if done[*o.Key] {
					continue
				}
				body, err := s.getObject(ctx, c, *o.Key)
				if err != nil {
					fail(err, true)
					continue
				}
				raw, err := dec.DecodeAll(body, nil)
				if err != nil {
					fail(err, true)
					continue
				}
				// When MinIO stored the object, not when it was listed.
				stored := time.Now()
				if o.LastModified != nil && o.LastModified.Nanosecond() != 0 {
					stored = *o.LastModified
				}
				sc := bufio.NewScanner(bytes.NewReader(raw))
				sc.Buffer(make([]byte, 1<<20), 64<<20)
				for sc.Scan() {
					tr.line(sc.Bytes(), stored)
				}
				done[*o.Key] = true
			}
		}
		s.s3Stat(func(w *S3Watch) { w.Lists, w.Listed, w.Done, w.LastList = w.Lists+1, listed, len(done), time.Now() })
		sleep(ctx, 100*time.Millisecond)
	}
}

// s3WatchTimeout bounds each request of the S3 tracker: a MinIO that
// holds an answer back (restarted, on a loaded machine) must not keep the
// tracker from the objects stored meanwhile; it tries again on its next
// round.
const s3WatchTimeout = 10 * time.Second

// getObject reads the object at key, within s3WatchTimeout.
func (s *Servers) getObject(ctx context.Context, c *s3.Client, key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s3WatchTimeout)
	defer cancel()
	res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

// WatchFile follows the file sink's archive in dir until ctx ends,
// recording what arrives. A torn batch the sink cuts off after a crash is
// taken back.
func WatchFile(ctx context.Context, dir string) *Tracker {
	tr := newTracker()
	go func() {
		type seen struct {
			off int64
			key string
		}
		read := map[string]int64{}
		keys := map[string][]seen{}
		for ctx.Err() == nil {
			files, _ := filepath.Glob(filepath.Join(dir, "auditrail-*.ndjson"))
			for _, p := range files {
				fi, err := os.Stat(p)
				if err != nil {
					continue
				}
				if size := fi.Size(); size < read[p] {
					kept := keys[p][:0]
					for _, k := range keys[p] {
						if k.off < size {
							kept = append(kept, k)
						} else {
							tr.unsee(k.key)
						}
					}
					keys[p], read[p] = kept, size
				}
				b, err := readFrom(p, read[p])
				if err != nil {
					continue
				}
				now := time.Now()
				for len(b) > 0 {
					i := bytes.IndexByte(b, '\n')
					if i < 0 {
						break
					}
					if k := tr.line(b[:i], now); k != "" {
						keys[p] = append(keys[p], seen{read[p], k})
					}
					read[p] += int64(i + 1)
					b = b[i+1:]
				}
			}
			sleep(ctx, 100*time.Millisecond)
		}
	}()
	return tr
}

func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// unsee takes back an event counted by line.
func (t *Tracker) unsee(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count[key]--; t.count[key] <= 0 {
		delete(t.count, key)
		delete(t.first, key)
	}
}

func (s *Servers) watchES(ctx context.Context, tr *Tracker) {
	next := 0
	for ctx.Err() == nil {
		docs, created, n := s.ES.DocsSince(s.Index, next)
		next = n
		for i, doc := range docs {
			tr.line(doc, created[i]) // when the server accepted it, not when it was polled
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func (s *Servers) watchKafka(ctx context.Context, t miniotest.TB, tr *Tracker) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka.ListenAddrs()...), kgo.ConsumeTopics(s.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	// A consumer can fetch the same offsets again after a broker change;
	// count each stored message once, so duplicates are the producer's.
	type pos struct {
		p int32
		o int64
	}
	seen := map[pos]bool{}
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if !seen[pos{r.Partition, r.Offset}] {
				seen[pos{r.Partition, r.Offset}] = true
				tr.line(r.Value, now)
			}
		})
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Result is one sink's line of a scenario's table.
type Result struct {
	Scenario, Sink            string
	Written, Delivered, Lost  int
	Duplicates, Stubs, Others int
	// Pruned counts events pruned before the agent could read them,
	// reported by gap records (not counted in Lost).
	Pruned        int
	P50, P99, Max time.Duration
	LostKeys      []string
}

// Measure compares what tr saw of a sink with want.
func Measure(scenario, sink string, want map[string]time.Time, tr *Tracker) Result {
	rcv := tr.Received()
	lost, dups := Compare(want, rcv)
	lat := tr.Latencies(want)
	others := 0
	for _, n := range rcv.Other {
		others += n
	}
	return Result{Scenario: scenario, Sink: sink, Written: len(want), Delivered: len(want) - len(lost),
		Lost: len(lost), Duplicates: dups, Stubs: tr.Stubs(), Others: others,
		P50: Percentile(lat, 0.5), P99: Percentile(lat, 0.99), Max: Percentile(lat, 1), LostKeys: lost}
}

// LineKey returns the auditID/stage key of an audit line as
// kube-apiserver writes it, read without decoding the JSON: the first
// "auditID" and "stage" strings, "" when either is missing. Only for
// lines known to be well-formed events.
func LineKey(b []byte) string {
	id, stage := firstString(b, `"auditID":"`), firstString(b, `"stage":"`)
	if id == "" || stage == "" {
		return ""
	}
	return Key(id, stage)
}

// firstString returns the string after the first occurrence of prefix in
// b, up to the next quote; "" if there is none.
func firstString(b []byte, prefix string) string {
	i := bytes.Index(b, []byte(prefix))
	if i < 0 {
		return ""
	}
	v := b[i+len(prefix):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return ""
	}
	return string(v[:j])
}
