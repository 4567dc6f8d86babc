package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/kafka"
	"github.com/auditrail/auditrail/sinks/sinktest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const secret = "s3cr3t-hmac-key-of-32-bytes-or-more"

// receiver is a webhook endpoint that verifies signatures and can be
// told to fail.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	alerts   []Alert
	bodies   []string
	failNext int
	status   int
	// maxBody, if set, is the largest body accepted; larger ones get 413.
	maxBody int
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, status: http.StatusServiceUnavailable}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.failNext > 0 {
		rc.failNext--
		http.Error(w, "busy", rc.status)
		return
	}
	if rc.maxBody > 0 && len(body) > rc.maxBody {
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/slack/") {
		rc.bodies = append(rc.bodies, string(body))
		return
	}
	ts := r.Header.Get(TimestampHeader)
	if got, want := r.Header.Get(SignatureHeader), Sign([]byte(secret), ts, body); got != want {
		rc.t.Errorf("signature %q, want %q", got, want)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var a Alert
	if err := json.Unmarshal(body, &a); err != nil {
		rc.t.Errorf("alert body: %v", err)
	}
	if r.Header.Get(IDHeader) != a.ID {
		rc.t.Errorf("id header %q, body id %q", r.Header.Get(IDHeader), a.ID)
	}
	rc.alerts = append(rc.alerts, a)
}

func (rc *receiver) received() []Alert {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Alert(nil), rc.alerts...)
}

// testConfig configures d; the receivers are httptest servers on http://.
func testConfig(d Destination) *Config {
	d.AllowInsecure = true
	c := &Config{Cluster: "prod", Node: "master-1", Destinations: []Destination{d}}
	c.ApplyDefaults()
	return c
}

func newTestSink(t *testing.T, cfg *Config) *Sink {
	t.Helper()
	if err := cfg.Validate("alerts"); err != nil {
		t.Fatal(err)
	}
	set, err := cfg.RuleSet()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), cfg, set, cfg.Destinations[0], "v1.2.3", slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// secretReads returns n secret reads by alice, each in two stages.
func secretReads(from, n int) []string {
	var out []string
	for i := from; i < from+n; i++ {
		out = append(out, sinktest.Event(i, "ResponseStarted", 400), sinktest.Event(i, "ResponseComplete", 400))
	}
	return out
}

// lease is an event that matches no rule.
func lease(i int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"1ea5e000-0000-4000-8000-%012d","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler","verb":"update","user":{"username":"system:kube-scheduler","groups":["system:authenticated"]},"objectRef":{"resource":"leases","namespace":"kube-system","name":"kube-scheduler","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"stageTimestamp":"2026-11-21T10:00:00.000000Z"}`, i)
}

func TestWebhookSignedAndDeduplicatedAcrossStages(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
	lines := append(secretReads(1, 3), lease(1))
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...)); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 3 {
		t.Fatalf("received %d alerts for 3 requests, want 3: %+v", len(got), got)
	}
	a := got[0]
	if a.Rule != "secret-read" || a.Severity != "high" || a.User != "alice@example.com" || a.Verb != "get" ||
		a.Resource != "secrets" || a.Namespace != "kube-system" || a.Code != 200 || a.Cluster != "prod" ||
		a.Node != "master-1" || a.Stage != "ResponseStarted" || a.Source == nil || a.Source.File != sinktest.File(1).ID {
		t.Errorf("alert = %+v", a)
	}
	var ev map[string]any
	if err := json.Unmarshal(a.Event, &ev); err != nil || ev["auditID"] != a.AuditID {
		t.Errorf("alert event = %s (%v)", a.Event, err)
	}
	if got[0].ID == got[1].ID || len(got[0].ID) != 32 {
		t.Errorf("alert ids %q %q", got[0].ID, got[1].ID)
	}
}

func TestReceiverDownThenBack(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
	b := sinktest.Batch(sinktest.File(1), 0, secretReads(1, 4)...)

	// The second alert fails: the first is delivered, Write fails and the
	// agent will write the same batch again.
	rc.mu.Lock()
	rc.failNext = 0
	rc.mu.Unlock()
	calls := 0
	s.dest.(*httpDest).client.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 2 {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: fmt.Errorf("connection refused")}
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	if err := s.Write(context.Background(), b); err == nil {
		t.Fatal("Write succeeded with the receiver down")
	}
	if n := len(rc.received()); n != 1 {
		t.Fatalf("%d alerts delivered before the failure, want 1", n)
	}
	// The receiver answers 503 twice, then recovers.
	rc.mu.Lock()
	rc.failNext = 2
	rc.mu.Unlock()
	for i := 0; i < 2; i++ {
		if err := s.Write(context.Background(), b); err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("Write with the receiver answering 503 = %v", err)
		}
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	ids := map[string]int{}
	for _, a := range got {
		ids[a.AuditID]++
	}
	if len(got) != 4 || len(ids) != 4 {
		t.Errorf("received %d alerts for %d requests, want 4 for 4: %v", len(got), len(ids), ids)
	}
	// The batch acknowledged, writing it again sends nothing.
	if err := s.Write(context.Background(), b); err != nil || len(rc.received()) != 4 {
		t.Errorf("replay sent more alerts: %d (%v)", len(rc.received()), err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// An alert refused for good is sent again without its event; refused
// again, the alerts after it are still delivered and the write fails for
// good, which sends the batch to the dead-letter directory.
func TestRefusedAlert(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refusals  int
		permanent bool
		delivered int
	}{
		{"refused with its event", 1, false, 2},
		{"refused without it too", 2, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t)
			rc.status, rc.failNext = http.StatusBadRequest, tc.refusals
			s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
			lines := []string{sinktest.Event(1, "ResponseComplete", 400), sinktest.Event(2, "ResponseComplete", 400)}
			err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...))
			if sinks.IsPermanent(err) != tc.permanent || (err == nil) == tc.permanent {
				t.Errorf("Write = %v, want permanent %v", err, tc.permanent)
			}
			got := rc.received()
			if len(got) != tc.delivered || got[len(got)-1].AuditID != "3c6ef362-0000-4000-8000-000000000002" {
				t.Errorf("delivered %v, want %d ending with the second", uris(got), tc.delivered)
			}
			if tc.delivered == 2 && (got[0].Event != nil || got[0].EventTruncated != TruncatedOmitted) {
				t.Errorf("first alert sent again with event %q (%s)", got[0].Event, got[0].EventTruncated)
			}
			if v := testutil.ToFloat64(s.refused.WithLabelValues("secret-read")); (v == 1) != tc.permanent {
				t.Errorf("refused alerts counted: %v", v)
			}
		})
	}
}

func TestRateLimitReportsSuppressed(t *testing.T) {
	rc := newReceiver(t)
	cfg := testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret})
	cfg.RateLimit = RateLimit{Burst: 2, Interval: units.Duration(time.Minute)}
	s := newTestSink(t, cfg)
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	f := sinktest.File(1)

	if err := s.Write(context.Background(), sinktest.Batch(f, 0, secretReads(1, 5)...)); err != nil {
		t.Fatal(err)
	}
	if got := rc.received(); len(got) != 2 || got[0].Suppressed+got[1].Suppressed != 0 {
		t.Fatalf("a burst of 5 with a limit of 2 delivered %+v", got)
	}
	// Half a minute later one token is back: the next alert carries the
	// count of the three held back.
	now = now.Add(30 * time.Second)
	if err := s.Write(context.Background(), sinktest.Batch(f, 10000, secretReads(6, 1)...)); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 3 || got[2].Suppressed != 3 || got[2].Summary {
		t.Fatalf("next alert = %+v, want 3 suppressed", got[len(got)-1])
	}
	// Three more held back, then no matching event at all: once the limit
	// allows, a summary reports them.
	if err := s.Write(context.Background(), sinktest.Batch(f, 20000, secretReads(7, 3)...)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := s.Write(context.Background(), sinktest.Batch(f, 30000, lease(1))); err != nil {
		t.Fatal(err)
	}
	got = rc.received()
	last := got[len(got)-1]
	if len(got) != 4 || !last.Summary || last.Rule != "secret-read" || last.Suppressed != 3 {
		t.Errorf("after the window: %+v", got[3:])
	}
	total := 0
	for _, a := range got {
		if !a.Summary {
			total++
		}
		total += a.Suppressed
	}
	if total != 9 {
		t.Errorf("alerts plus suppressed = %d, want the 9 requests", total)
	}
}

func TestForbiddenBurstAlert(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
	var lines []string
	for i := 0; i < 12; i++ {
		l := strings.Replace(sinktest.Event(100+i, "ResponseComplete", 300), `"code":200`, `"code":403`, 1)
		lines = append(lines, strings.Replace(l, "alice@example.com", "mallory", 1))
	}
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...)); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	if len(got) != 1 || got[0].Rule != "forbidden-burst" || got[0].Count != 10 || got[0].User != "mallory" {
		t.Errorf("12 403s gave %+v, want one forbidden-burst alert at the 10th", got)
	}
}

func TestSlackMessageAndURLNeverInErrors(t *testing.T) {
	rc := newReceiver(t)
	token := "T000/B000/XXXXXXXXXXXXXXXX"
	s := newTestSink(t, testConfig(Destination{Name: "chat", Type: "slack", URL: rc.srv.URL + "/slack/" + token}))
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, secretReads(1, 1)...)); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	bodies := rc.bodies
	rc.mu.Unlock()
	var msg struct{ Text string }
	if len(bodies) != 1 || json.Unmarshal([]byte(bodies[0]), &msg) != nil ||
		!strings.Contains(msg.Text, "[HIGH] secret-read") || !strings.Contains(msg.Text, "alice@example.com get secrets s-1 in kube-system") {
		t.Errorf("slack bodies = %q", bodies)
	}
	rc.srv.Close()
	err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 10000, secretReads(2, 1)...))
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("error with the receiver gone = %v (must not quote the URL's token)", err)
	}
}

func TestKafkaDestination(t *testing.T) {
	const topic = "audit-alerts"
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kc := &kafka.Config{Brokers: c.ListenAddrs(), Topic: topic}
	s := newTestSink(t, testConfig(Destination{Name: "soc-kafka", Type: "kafka", Kafka: kc}))
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, append(secretReads(1, 3), lease(1))...)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 3 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 3 {
		t.Fatalf("consumed %d alerts, want 3", len(recs))
	}
	for _, r := range recs {
		var a Alert
		if err := json.Unmarshal(r.Value, &a); err != nil || a.Rule != "secret-read" || string(r.Key) != a.ID {
			t.Errorf("message key %q value %s (%v)", r.Key, r.Value, err)
		}
		rules := ""
		for _, h := range r.Headers {
			if h.Key == "auditrail-rules" {
				rules = string(h.Value)
			}
		}
		if rules != "secret-read" {
			t.Errorf("auditrail-rules header = %q", rules)
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	c := &Config{
		Disable: []string{"nope"},
		Destinations: []Destination{
			{Name: "a", Type: "webhook", URL: "ftp://x"},
			{Name: "a", Type: "pager"},
			{Name: "k", Type: "kafka"},
			{Name: "s", Type: "slack", URL: "https://hooks.example/x", Secret: "x"},
		},
	}
	c.ApplyDefaults()
	err := c.Validate("alerts")
	for _, want := range []string{
		`alerts.disable: "nope" is not a built-in rule`,
		"alerts.destinations[0].url must be an http or https URL",
		`alerts.destinations[1].name "a" is used by another destination`,
		"alerts.destinations[1].type must be one of webhook, slack, kafka",
		"alerts.destinations[2].kafka section is required",
		"alerts.destinations[3].secret is only valid for type webhook",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v\nlack %q", err, want)
		}
	}
}

func TestGapRecordRaisesCriticalAlert(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
	gap := `{"kind":"AuditrailGap","apiVersion":"auditrail.io/v1","reason":"truncated","sink":"alert-soc","detectedAt":"2026-11-21T10:00:00Z","file":{"id":"2049-1001-0123456789abcdef","path":"/var/log/kubernetes/audit/audit.log"},"bytes":{"from":100,"to":5000,"toKnown":true},"time":{}}`
	b := sinktest.Batch(sinktest.File(1), 0, lease(1), gap)
	b.Records[1].Kind = sinks.KindGap
	for range 2 {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	got := rc.received()
	if len(got) != 1 || got[0].Rule != "audit-log-gap" || got[0].Severity != "critical" ||
		!strings.Contains(got[0].Description, "truncated, bytes 100-5000 of /var/log/kubernetes/audit/audit.log") {
		t.Errorf("alerts for a gap record: %+v", got)
	}
}

// A tamper record raises one high alert naming the reason, even when it
// comes after records of later files, and only once when delivered again.
func TestTamperRecordRaisesAlert(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(3), 0, lease(1))); err != nil {
		t.Fatal(err)
	}
	tamper := `{"kind":"AuditrailTamper","apiVersion":"auditrail.io/v1","reason":"deleted","detectedAt":"2026-11-21T10:00:00Z","detail":"the live audit log disappeared without being rotated","file":{"id":"2049-1001-0123456789abcdef","path":"/var/log/kubernetes/audit/audit.log"}}`
	b := &sinks.Batch{Records: []sinks.Record{{Line: []byte(tamper), Kind: sinks.KindTamper,
		File: &sinks.FileRef{ID: "tamper-20261121T100000.000000000Z-0a0b0c0d0e0f"}}}}
	for range 2 {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	got := rc.received()
	if len(got) != 1 || got[0].Rule != "audit-trail-tamper" || got[0].Severity != "high" ||
		!strings.Contains(got[0].Description, "deleted: the live audit log disappeared") {
		t.Errorf("alerts for a tamper record: %+v", got)
	}
}

// Requests that sent the same Audit-ID header each raise their alert,
// whatever they did; a crash and the same lines evaluated again give the
// same alert ids.
func TestSpoofedAuditIDRaisesEveryAlert(t *testing.T) {
	execs := sinktest.Spoofed(true)
	// The same exec into the same pod twice, a second apart.
	twice := [2]string{execs[0], strings.ReplaceAll(execs[1], "cloud-admin-credentials", "harmless")}
	for _, tc := range []struct {
		name  string
		lines [2]string
		rule  string
	}{
		{"secret reads", sinktest.Spoofed(false), "secret-read"},
		{"execs into two pods", execs, "pod-exec"},
		{"the same exec twice", twice, "pod-exec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ids [2][]string
			for run := range ids {
				rc := newReceiver(t)
				s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
				if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, tc.lines[:]...)); err != nil {
					t.Fatal(err)
				}
				got := rc.received()
				if len(got) != 2 {
					t.Fatalf("%d alerts for two requests with Audit-ID %s, want 2: %v", len(got), sinktest.SpoofedAuditID, uris(got))
				}
				for i, a := range got {
					if a.Rule != tc.rule || a.AuditID != sinktest.SpoofedAuditID || a.Source.Offset != sinktest.Batch(sinktest.File(1), 0, tc.lines[:]...).Records[i].Offset {
						t.Errorf("alert %d: rule %s, auditID %s, source %+v", i, a.Rule, a.AuditID, a.Source)
					}
					ids[run] = append(ids[run], a.ID)
				}
				if ids[run][0] == ids[run][1] {
					t.Errorf("both alerts have id %s", ids[run][0])
				}
			}
			if fmt.Sprint(ids[0]) != fmt.Sprint(ids[1]) {
				t.Errorf("alert ids %v after a restart, %v before", ids[1], ids[0])
			}
		})
	}
}

// uris returns the requestURIs of alerts.
func uris(alerts []Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, a.RequestURI)
	}
	return out
}

// Benign matches by one user do not use up the rate limit of another:
// mallory's alert goes out, and the summary says whose were held back.
func TestRateLimitPerUser(t *testing.T) {
	rc := newReceiver(t)
	cfg := testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret})
	cfg.RateLimit = RateLimit{Burst: 2, Interval: units.Duration(time.Minute)}
	s := newTestSink(t, cfg)
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	lines := secretReads(1, 10) // alice, ten requests in two stages
	lines = append(lines, sinktest.Spoofed(false)[1])
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...)); err != nil {
		t.Fatal(err)
	}
	got := rc.received()
	users := map[string]int{}
	for _, a := range got {
		users[a.User]++
	}
	if len(got) != 3 || users["alice@example.com"] != 2 || users["mallory"] != 1 {
		t.Fatalf("alerts by user %v, want alice's 2 and mallory's 1", users)
	}
	now = now.Add(time.Minute)
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 100000, lease(1))); err != nil {
		t.Fatal(err)
	}
	got = rc.received()
	if last := got[len(got)-1]; len(got) != 4 || !last.Summary || last.User != "alice@example.com" || last.Suppressed != 8 {
		t.Errorf("summary = %+v, want alice's 8 held back", got[3:])
	}
}

// Object and user names cannot make the Slack message mention a channel
// or show a link.
func TestSlackTextEscapesMarkup(t *testing.T) {
	rc := newReceiver(t)
	s := newTestSink(t, testConfig(Destination{Name: "chat", Type: "slack", URL: rc.srv.URL + "/slack/T000"}))
	line := sinktest.Spoofed(false)[0]
	line = strings.ReplaceAll(line, `"name":"harmless"`, `"name":"\u003c!channel\u003e \u003chttps://evil.example|open\u003e"`)
	line = strings.ReplaceAll(line, `"mallory"`, `"a\u0026b \u003c!here\u003e"`)
	if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, line)); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	bodies := rc.bodies
	rc.mu.Unlock()
	var msg struct{ Text string }
	if len(bodies) != 1 || json.Unmarshal([]byte(bodies[0]), &msg) != nil {
		t.Fatalf("slack bodies = %q", bodies)
	}
	if strings.ContainsAny(msg.Text, "<>") || !strings.Contains(msg.Text, "&lt;!channel&gt; &lt;https://evil.example|open&gt;") ||
		!strings.Contains(msg.Text, "a&amp;b &lt;!here&gt; get") {
		t.Errorf("slack text = %q", msg.Text)
	}
}

// bigRead is alice's secret read number n with a response body of size
// bytes.
func bigRead(n, size int) string {
	body := `"responseObject":{"kind":"Secret","data":{"k":"` + strings.Repeat("A", size) + `"}},"annotations"`
	return strings.Replace(sinktest.Event(n, "ResponseComplete", 400), `"annotations"`, body, 1)
}

// bigBinding is a cluster-admin binding whose request body holds size
// bytes of labels besides the roleRef the rule matches.
func bigBinding(size int) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"b1","stage":"ResponseComplete","requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings","verb":"create","user":{"username":"mallory"},"objectRef":{"resource":"clusterrolebindings","name":"own","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"ClusterRoleBinding","metadata":{"name":"own","labels":{"pad":"` +
		strings.Repeat("B", size) + `"}},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"},"subjects":[{"kind":"User","name":"mallory"}]},"stageTimestamp":"2026-11-21T10:00:00.000100Z","annotations":{"authorization.k8s.io/decision":"allow"}}`
}

// An alert too large for the receiver is sent with its event cut down,
// then without it; the alerts after it in the batch are delivered too.
func TestOversizedAlertLosesNothingElse(t *testing.T) {
	for _, tc := range []struct {
		name    string
		big     string
		maxBody int
		// cut is the eventTruncated the big alert arrives with; keep is
		// what its event must still hold.
		cut, keep string
	}{
		{"response body of 1 MiB", bigRead(2, 1<<20), 256 << 10, "bodies", `"requestURI":"/api/v1/namespaces/kube-system/secrets/s-2"`},
		{"request body the rule matched", bigBinding(1 << 20), 256 << 10, "bodies", `"roleRef":{"name":"cluster-admin"}`},
		{"annotation of 1 MiB", sinktest.Event(2, "ResponseComplete", 1<<20), 256 << 10, "omitted", ""},
		{"receiver takes no event", bigRead(2, 1<<20), 900, "omitted", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t)
			rc.maxBody = tc.maxBody
			s := newTestSink(t, testConfig(Destination{Name: "soc", Type: "webhook", URL: rc.srv.URL, Secret: secret}))
			lines := []string{sinktest.Event(1, "ResponseComplete", 400), tc.big, sinktest.Event(3, "ResponseComplete", 400)}
			if err := s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...)); err != nil {
				t.Fatalf("Write = %v", err)
			}
			got := rc.received()
			if len(got) != 3 {
				t.Fatalf("received %d alerts of 3", len(got))
			}
			big := got[1]
			if big.EventTruncated != tc.cut || !strings.Contains(string(big.Event), tc.keep) || (tc.cut == "omitted") != (big.Event == nil) {
				t.Errorf("big alert: eventTruncated %q, event of %d bytes %.300s", big.EventTruncated, len(big.Event), big.Event)
			}
			if tc.maxBody > MaxEventBytes && (got[0].EventTruncated != "" || got[2].EventTruncated != "") {
				t.Errorf("small alerts cut: %q %q", got[0].EventTruncated, got[2].EventTruncated)
			}
		})
	}
}
