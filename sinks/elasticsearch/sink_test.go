package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// target is where a test indexes: the estest server, or a real cluster
// when AUDITRAIL_TEST_ES_URL is set (tests that inject faults then skip).
type target struct {
	t    *testing.T
	url  string
	fake *estest.Server
	user string
	pass string
}

func newTarget(t *testing.T) *target {
	if u := os.Getenv("AUDITRAIL_TEST_ES_URL"); u != "" {
		return &target{t: t, url: u, user: os.Getenv("AUDITRAIL_TEST_ES_USERNAME"), pass: os.Getenv("AUDITRAIL_TEST_ES_PASSWORD")}
	}
	srv := estest.New()
	t.Cleanup(srv.Close)
	return &target{t: t, url: srv.URL, fake: srv}
}

// fakeOnly returns the test server, skipping against a real cluster.
func (tg *target) fakeOnly() *estest.Server {
	if tg.fake == nil {
		tg.t.Skip("needs fault injection; runs against the estest server only")
	}
	return tg.fake
}

// index returns a name unique to this test run, deleted at the end on a
// real cluster.
func (tg *target) index(kind string) string {
	name := fmt.Sprintf("auditrail-test-%s-%08x", kind, rand.Uint32())
	if kind == "stream" {
		name = fmt.Sprintf("logs-auditrailtest.s%08x-default", rand.Uint32())
	}
	if tg.fake == nil {
		tg.t.Cleanup(func() {
			for _, p := range []string{"/_data_stream/" + name, "/" + name} {
				tg.do(http.MethodDelete, p, nil)
			}
		})
	}
	return name
}

func (tg *target) do(method, path string, body any) []byte {
	tg.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, strings.TrimRight(tg.url, "/")+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if tg.user != "" {
		req.SetBasicAuth(tg.user, tg.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tg.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// docs returns the documents with the given ids.
func (tg *target) docs(index string, ids []string) map[string]map[string]any {
	tg.do(http.MethodPost, "/"+index+"/_refresh", nil)
	b := tg.do(http.MethodPost, "/"+index+"/_search", map[string]any{"size": len(ids), "query": map[string]any{"ids": map[string]any{"values": ids}}})
	var r struct {
		Hits struct {
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		tg.t.Fatalf("search: %v: %s", err, b)
	}
	out := map[string]map[string]any{}
	for _, h := range r.Hits.Hits {
		out[h.ID] = h.Source
	}
	return out
}

func (tg *target) count(index string) int {
	tg.do(http.MethodPost, "/"+index+"/_refresh", nil)
	var r struct{ Count int }
	json.Unmarshal(tg.do(http.MethodGet, "/"+index+"/_count", nil), &r)
	return r.Count
}

func (tg *target) config(index string) Config {
	c := Config{Addresses: []string{tg.url}, Index: index, DeadLetterIndex: index + "-dead-letter",
		Username: tg.user, Password: tg.pass, Cluster: "prod-eu", Node: "master-1", AgentVersion: "v9.9.9",
		ItemRetryInitial: units.Duration(time.Millisecond), ItemRetryMax: units.Duration(10 * time.Millisecond)}
	c.ApplyDefaults()
	return c
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if err := cfg.Validate("elasticsearch"); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), "es", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(b *sinks.Batch) []string {
	var out []string
	for i := range b.Records {
		out = append(out, string(sinks.AppendID(nil, &b.Records[i])))
	}
	return out
}

func testBatch() *sinks.Batch {
	ls := sinktest.Events(0, 300, 1)
	ls = append(ls, "not json", "bad utf8 \xff here")
	return sinktest.Batch(sinktest.File(1), 0, ls...)
}

func TestIndexesEveryRecordOnce(t *testing.T) {
	tg := newTarget(t)
	index := tg.index("stream")
	s := newSink(t, tg.config(index))
	b := testBatch()
	for i := 0; i < len(b.Records); i += 3 {
		if b.Records[i].Kind == sinks.KindEvent {
			b.Records[i].Rules = []string{"secret-read", "impersonation"}
		}
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := tg.count(index); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	docs := tg.docs(index, ids(b))
	for i := range b.Records {
		r := &b.Records[i]
		d := docs[string(sinks.AppendID(nil, r))]
		if d == nil {
			t.Fatalf("record %d (%s) not indexed", i, sinks.AppendID(nil, r))
		}
		if src, _ := d["auditrail"].(map[string]any); src["cluster"] != "prod-eu" || src["node"] != "master-1" || src["agentVersion"] != "v9.9.9" {
			t.Errorf("record %d: auditrail field %v", i, d["auditrail"])
		}
		src, _ := d["auditrail"].(map[string]any)
		if got := fmt.Sprint(src["rules"]); (r.Rules == nil && src["rules"] != nil) || (r.Rules != nil && got != "[secret-read impersonation]") {
			t.Errorf("record %d: rules %v, want %v", i, src["rules"], r.Rules)
		}
		switch r.Kind {
		case sinks.KindEvent:
			var orig map[string]any
			json.Unmarshal(r.Line, &orig)
			if d["@timestamp"] != orig["stageTimestamp"] || d["auditID"] != orig["auditID"] || d["stage"] != orig["stage"] {
				t.Errorf("event %d: @timestamp %v auditID %v stage %v; want %v %v %v", i, d["@timestamp"], d["auditID"], d["stage"],
					orig["stageTimestamp"], orig["auditID"], orig["stage"])
			}
		case sinks.KindUnparsed:
			if d["kind"] != "AuditrailUnparsed" || d["file"].(map[string]any)["id"] != r.File.ID {
				t.Errorf("unparsed line %d indexed as %v", i, d)
			}
			if raw, _ := d["rawBase64"].(string); strings.Contains(string(r.Line), "\xff") {
				if got, _ := base64.StdEncoding.DecodeString(raw); !bytes.Equal(got, r.Line) {
					t.Errorf("invalid UTF-8 line: rawBase64 %q does not hold the original bytes", raw)
				}
			} else if d["message"] != string(r.Line) {
				t.Errorf("unparsed line %d: message %v", i, d["message"])
			}
		}
	}

	// Delivered again (after a crash): nothing new, every item a 409.
	again := newSink(t, tg.config(index))
	if err := again.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := tg.count(index); n != len(b.Records) {
		t.Fatalf("after replay: %d documents, want %d", n, len(b.Records))
	}
	if v := testutil.ToFloat64(again.conflicts); int(v) != len(b.Records) {
		t.Errorf("duplicates counted = %v, want %d", v, len(b.Records))
	}
}

// Items rejected with 429 or 503 are sent again alone, not the whole
// batch, until accepted.
func TestRejectedItemsAreRetriedAlone(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	index := tg.index("stream")
	var mu sync.Mutex
	seen := map[string]int{}
	plan := map[string][]int{} // statuses to answer an id with, in order
	srv.FailItems(func(_, id string) int {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := plan[id]; !ok {
			switch n := len(plan); {
			case n%3 == 0:
				plan[id] = []int{429, 429}
			case n%7 == 0:
				plan[id] = []int{503}
			default:
				plan[id] = nil
			}
		}
		seen[id]++
		if p := plan[id]; seen[id] <= len(p) {
			return p[seen[id]-1]
		}
		return 0
	})
	cfg := tg.config(index)
	cfg.MaxInFlightRequests = 1 // for the count of requests below
	s := newSink(t, cfg)
	b := testBatch()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	retried := 0
	for id, n := range seen {
		if n > 3 {
			t.Errorf("%s sent %d times", id, n)
		}
		retried += n - 1
	}
	if retried == 0 || retried > len(b.Records) {
		t.Fatalf("%d resends for %d records", retried, len(b.Records))
	}
	if v := testutil.ToFloat64(s.itemRetries); int(v) != retried {
		t.Errorf("item retries counted = %v, want %d", v, retried)
	}
	if got := srv.BulkRequests(); got != 3 {
		t.Errorf("%d bulk requests, want 3 (all, then the rejected twice)", got)
	}
}

// A whole request answered 503 or 429 fails the write; the agent retries
// the batch, which creates nothing twice.
func TestWholeRequestFailures(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	index := tg.index("stream")
	srv.FailRequests(503, 429)
	s := newSink(t, tg.config(index))
	b := testBatch()
	// The two failures may hit the batch's concurrent requests in one
	// write or in two.
	failed := 0
	for err := s.Write(context.Background(), b); err != nil; err = s.Write(context.Background(), b) {
		if failed++; failed > 2 || !(strings.Contains(err.Error(), "503") || strings.Contains(err.Error(), "429")) || sinks.IsPermanent(err) {
			t.Fatalf("attempt %d: err = %v, want a retryable HTTP 503 or 429, twice at most", failed, err)
		}
	}
	if failed == 0 {
		t.Fatal("the writes succeeded through a 503 and a 429")
	}
	if n := len(srv.Docs(index)); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
	srv.Close()
	if err := s.Write(context.Background(), b); err == nil || sinks.IsPermanent(err) {
		t.Fatalf("with the server gone: err = %v, want a retryable error", err)
	}
}

// An item rejected for good goes, wrapped, to the dead-letter index.
func TestMappingErrorGoesToDeadLetterIndex(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	index := tg.index("stream")
	b := testBatch()
	bad := string(sinks.AppendID(nil, &b.Records[5]))
	srv.FailItems(func(ix, id string) int {
		if ix == index && id == bad {
			return 400
		}
		return 0
	})
	s := newSink(t, tg.config(index))
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs(index)); n != len(b.Records)-1 {
		t.Fatalf("%d documents, want %d", n, len(b.Records)-1)
	}
	dl := srv.Docs(index + "-dead-letter")
	var w struct {
		Kind, Message string
		Error         itemError
	}
	if err := json.Unmarshal(dl[bad], &w); err != nil {
		t.Fatalf("dead-letter document %s: %v (%d documents)", bad, err, len(dl))
	}
	if w.Kind != "AuditrailRejected" || w.Message != string(b.Records[5].Line) || w.Error.Status != 400 || w.Error.Index != index {
		t.Errorf("dead-letter document = %+v", w)
	}
	if v := testutil.ToFloat64(s.deadLettered); v != 1 {
		t.Errorf("dead-lettered = %v, want 1", v)
	}
}

func TestDateIndexTemplateAndAuth(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	cfg := tg.config("k8s-audit-{2006.01.02}")
	cfg.InstallTemplate = true
	cfg.APIKey = "a2V5OnNlY3JldA=="
	cfg.AllowInsecure = true // the fake is an httptest server on http://
	cfg.Compression = true
	s := newSink(t, cfg)
	s.now = func() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }
	if err := s.Write(context.Background(), testBatch()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Docs("k8s-audit-2030.01.02")); n != 2 {
		t.Errorf("%d lines without an event time in today's index, want 2", n)
	}
	if got := srv.LastAuthorization(); !strings.EqualFold(got, "ApiKey a2V5OnNlY3JldA==") {
		t.Errorf("Authorization = %q", got)
	}
	if n := len(srv.Docs("k8s-audit-2026.11.21")); n != 300 {
		t.Errorf("%d events in k8s-audit-2026.11.21, want 300", n)
	}
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		DataStream    any      `json:"data_stream"`
	}
	if err := json.Unmarshal(srv.Template("auditrail-k8s-audit"), &tmpl); err != nil {
		t.Fatalf("template: %v", err)
	}
	if len(tmpl.IndexPatterns) != 1 || tmpl.IndexPatterns[0] != "k8s-audit-*" || tmpl.DataStream != nil {
		t.Errorf("template = %+v", tmpl)
	}
}

// TLS is verified unless the configuration turns verification off: an
// unknown CA fails the write, the CA file makes it work.
func TestTLSVerification(t *testing.T) {
	srv := estest.NewTLS()
	defer srv.Close()
	cfg := Config{Addresses: []string{srv.URL}, Index: "audit-tls"}
	cfg.ApplyDefaults()
	b := testBatch()
	err := newSink(t, cfg).Write(context.Background(), b)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("write to a server with an unknown CA: err = %v, want a certificate error", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TLS.CAFile = caFile
	if err := newSink(t, cfg).Write(context.Background(), b); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	if n := len(srv.Docs("audit-tls")); n != len(b.Records) {
		t.Fatalf("%d documents, want %d", n, len(b.Records))
	}
}

func TestAppendWithTimestamp(t *testing.T) {
	for _, tc := range []struct{ line, meta, want string }{
		{`{"a":1}`, ``, `{"@timestamp":"T","a":1}`},
		{`{}`, ``, `{"@timestamp":"T"}`},
		{` { "a":1}`, ``, `{"@timestamp":"T", "a":1}`},
		{`{"a":1}`, `"m":{"n":"x"}`, `{"@timestamp":"T","m":{"n":"x"},"a":1}`},
		{`{}`, `"m":{}`, `{"@timestamp":"T","m":{}}`},
	} {
		var buf bytes.Buffer
		appendWithTimestamp(&buf, []byte(tc.line), []byte("T"), []byte(tc.meta))
		if buf.String() != tc.want {
			t.Errorf("%s -> %s, want %s", tc.line, buf.String(), tc.want)
		}
		if !json.Valid(buf.Bytes()) {
			t.Errorf("%s -> invalid JSON", tc.line)
		}
	}
}

func TestAllCreated(t *testing.T) {
	for body, want := range map[string]bool{
		`{"took":3,"errors":false,"items":[{"create":{"status":201}}]}`:                                        true,
		`{"errors":false,"items":[{"create":{"status":201}}]}`:                                                 true,
		`{"errors":true,"items":[{"create":{"status":429,"error":{"reason":"\"errors\":false"}}}]}`:            false,
		`{"items":[{"create":{"status":409,"error":{"type":"x","reason":"\"errors\":false"}}}],"errors":true}`: false,
		`{"items":[{"create":{"status":201}}],"errors":false}`:                                                 false, // decoded in full
		`{"errors" : false, "items": []}`:                                                                      false, // decoded in full
	} {
		if got := allCreated([]byte(body)); got != want {
			t.Errorf("allCreated(%s) = %v, want %v", body, got, want)
		}
	}
}

// An Elasticsearch endpoint that accepts connections and never answers
// must not hold up the agent's start: New does no network I/O, even with
// installTemplate, and Check gives up when its context ends.
func TestFrozenEndpointDelaysOnlyCheck(t *testing.T) {
	frozen := sinktest.NewFrozen(t)
	cfg := Config{Addresses: []string{"http://" + frozen.Addr()}, InstallTemplate: true}
	cfg.ApplyDefaults()
	frozen.AssertOnlyCheckWaits(t, newSink(t, cfg))
}

// Two different requests that sent the same Audit-ID header are two
// documents, each keeping its auditID; the batch delivered again, whole or
// cut differently, creates nothing new.
func TestSpoofedAuditIDIndexesEveryEvent(t *testing.T) {
	tg := newTarget(t)
	index := tg.index("stream")
	s := newSink(t, tg.config(index))
	sp := sinktest.Spoofed(false)
	f := sinktest.File(1)
	first := sinktest.Event(1, "ResponseComplete", 400)
	b := sinktest.Batch(f, 0, first, sp[0], sp[1])
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	again := []struct {
		name string
		b    *sinks.Batch
	}{
		{"the same batch", b},
		{"from its second line", &sinks.Batch{Records: b.Records[1:], Segments: b.Segments}},
		{"the spoofed pair alone", sinktest.Batch(f, int64(len(first))+1, sp[0], sp[1])},
	}
	for _, tc := range again {
		if err := s.Write(context.Background(), tc.b); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := tg.count(index); n != 3 {
			t.Fatalf("after %s: %d documents for 3 events, want 3", tc.name, n)
		}
	}
	docs := tg.docs(index, ids(b))
	for i := range b.Records {
		var orig map[string]any
		json.Unmarshal(b.Records[i].Line, &orig)
		d := docs[string(sinks.AppendID(nil, &b.Records[i]))]
		if d == nil || d["requestURI"] != orig["requestURI"] || d["auditID"] != orig["auditID"] {
			t.Errorf("event %d (%s): document %v", i, orig["requestURI"], d)
		}
	}
}
