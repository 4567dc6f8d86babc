package apiserver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditrail/auditrail/e2e"
	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/sinks/alert"
	"github.com/auditrail/auditrail/verify"
)

// writeConfig writes the agent's configuration: S3 (MinIO), Elasticsearch
// (test server), Kafka (kfake), a file sink and a webhook alert
// destination.
func writeConfig(t *testing.T, srv *e2e.Servers, path, auditLog, stateDir, fileDir, hookURL, hookSecret string) {
	t.Helper()
	if err := srv.WriteConfig(path, auditLog, stateDir, fileDir); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "heartbeatInterval: 5s\nalerts:\n  rateLimit: {burst: 100000, interval: 1s}\n  destinations:\n"+
		"    - {name: soc, type: webhook, url: %q, secret: %q, allowInsecure: true}\n", hookURL, hookSecret)
}

// diskEvent is what the test needs of one line kube-apiserver wrote.
type diskEvent struct {
	Kind       string    `json:"kind"`
	AuditID    string    `json:"auditID"`
	Stage      string    `json:"stage"`
	RequestURI string    `json:"requestURI"`
	Time       time.Time `json:"stageTimestamp"`
	line       []byte
}

// Key is the auditID/stage key the sinks' trackers count by.
func (e diskEvent) Key() string { return e2e.Key(e.AuditID, e.Stage) }

// readAuditDir returns every line of kube-apiserver's audit files, live and
// rotated, plain or gzip'd, and how many were rotated. It waits for
// lumberjack to finish compressing: a backup being compressed exists both
// plain and as a partial .gz.
func readAuditDir(t *testing.T, dir string) (evs []diskEvent, rotated int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for compressing(dir) {
		if time.Now().After(deadline) {
			t.Fatal("kube-apiserver's backups still being compressed after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "audit*"))
	sort.Strings(files)
	for _, p := range files {
		if filepath.Base(p) != "audit.log" {
			rotated++
		}
		eachLine(t, p, func(line []byte) {
			var ev diskEvent
			if err := json.Unmarshal(line, &ev); err != nil || ev.Kind != "Event" || ev.AuditID == "" {
				t.Errorf("%s: a line that is not an audit event: %.200s", p, line)
				return
			}
			ev.line = bytes.Clone(line)
			evs = append(evs, ev)
		})
	}
	return evs, rotated
}

func compressing(dir string) bool {
	gz, _ := filepath.Glob(filepath.Join(dir, "audit*.gz"))
	for _, p := range gz {
		if _, err := os.Stat(strings.TrimSuffix(p, ".gz")); err == nil {
			return true
		}
	}
	return false
}

// eachLine calls f with every line of a file, gunzipping .gz files.
func eachLine(t *testing.T, path string, f func([]byte)) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(fh)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		f(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// fileSink counts the events in the file sink's files by auditID/stage
// and, for the keys in uris, by requestURI too.
func fileSink(t *testing.T, dir string, uris map[string]map[string]int) *e2e.Received {
	t.Helper()
	rcv := &e2e.Received{Count: map[string]int{}, Other: map[string]int{}}
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	for _, p := range files {
		eachLine(t, p, func(line []byte) {
			var ev diskEvent
			if json.Unmarshal(line, &ev) != nil || ev.Kind != "Event" {
				rcv.Other[ev.Kind]++
				return
			}
			rcv.Count[ev.Key()]++
			if u := uris[ev.Key()]; u != nil {
				u[ev.RequestURI]++
			}
		})
	}
	return rcv
}

// webhook receives alerts and checks their signature.
type webhook struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu     sync.Mutex
	alerts map[string]int // auditID/rule → deliveries
	bodies [][]byte
}

func newWebhook(t *testing.T, secret string) *webhook {
	w := &webhook{t: t, secret: secret, alerts: map[string]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if got := r.Header.Get(alert.SignatureHeader); got != alert.Sign([]byte(w.secret), r.Header.Get(alert.TimestampHeader), body) {
		w.t.Errorf("alert with a bad signature %q", got)
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	var a alert.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		w.t.Errorf("alert body %s: %v", body, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.alerts[a.AuditID+"/"+a.Rule]++
	w.bodies = append(w.bodies, body)
}

func (w *webhook) received() (alerts map[string]int, bodies [][]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	alerts = make(map[string]int, len(w.alerts))
	for k, v := range w.alerts {
		alerts[k] = v
	}
	return alerts, append([][]byte(nil), w.bodies...)
}

// store is everything one place holds, for the search for secrets.
type store struct {
	name  string
	blobs [][]byte
}

// s3Objects returns the decompressed content of every object in bucket.
func s3Objects(t *testing.T, srv *e2e.Servers) store {
	t.Helper()
	ctx := context.Background()
	c := srv.MinIO.Client()
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	st := store{name: "s3"}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", srv.Bucket, err)
		}
		for _, o := range page.Contents {
			res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", *o.Key, err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", *o.Key, err)
			}
			if raw, err := dec.DecodeAll(body, nil); err == nil {
				body = raw
			}
			st.blobs = append(st.blobs, body)
		}
	}
	return st
}

// esDocs returns every document of the index.
func esDocs(srv *e2e.Servers) store {
	st := store{name: "es"}
	for _, d := range srv.ES.Docs(srv.Index) {
		st.blobs = append(st.blobs, d)
	}
	return st
}

// kafkaRecords returns the value and headers of every record of the topic.
func kafkaRecords(t *testing.T, srv *e2e.Servers) store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Kafka.ListenAddrs()...), kgo.ConsumeTopics(srv.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, srv.Topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	st := store{name: "kafka"}
	for got := int64(0); got < want; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafka: read %d of %d records", got, want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			st.blobs = append(st.blobs, r.Value)
			for _, h := range r.Headers {
				st.blobs = append(st.blobs, []byte(h.Key), h.Value)
			}
		})
	}
	return st
}

// files returns the content of every file under dir.
func files(t *testing.T, name, dir string) store {
	t.Helper()
	st := store{name: name}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		st.blobs = append(st.blobs, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// found counts, per store, the blobs holding any of the needles.
func found(stores []store, needles []string) map[string]int {
	out := map[string]int{}
	for _, st := range stores {
		out[st.name] += 0 // every place shows, found or not
		for _, b := range st.blobs {
			for _, n := range needles {
				if bytes.Contains(b, []byte(n)) {
					out[st.name]++
				}
			}
		}
	}
	return out
}

// verifyArchive runs `auditrail verify --json` over the S3 archive.
func verifyArchive(t *testing.T, config string) (rep verify.Report, code int, stderr string) {
	t.Helper()
	cmd := testproc.Command(bin, "verify", "--config", config, "--json")
	cmd.Env = append(os.Environ(), e2e.AgentEnv()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code != 1 {
		t.Fatalf("auditrail verify: %v\n%s", err, errb.String())
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("verify report: %v\n%s", err, out.String())
	}
	return rep, code, errb.String()
}
