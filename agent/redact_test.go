package agent

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// secretEvent returns an audit line of a request on resource (and
// subresource) with the given bodies, as kube-apiserver logs it; an empty
// body is left out.
func secretEvent(id int, verb, resource, sub, req, resp string) string {
	ref := fmt.Sprintf(`{"resource":%q,"namespace":"default","name":"db","apiVersion":"v1"`, resource)
	if sub != "" {
		ref += fmt.Sprintf(`,"subresource":%q`, sub)
	}
	line := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5f6a7b8c-0000-4000-8000-%012d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/%s/db","verb":%q,"user":{"username":"alice@example.com"},"objectRef":%s},"responseStatus":{"metadata":{},"code":200}`,
		id, resource, verb, ref)
	if req != "" {
		line += `,"requestObject":` + req
	}
	if resp != "" {
		line += `,"responseObject":` + resp
	}
	return line + `,"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.001000Z"}`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// lastApplied is kubectl's annotation holding a copy of the object, as a
// JSON string inside the event.
func lastApplied(password string) string {
	return `"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"password\":\"` + b64(password) + `\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"name\":\"db\",\"namespace\":\"default\"}}\n"`
}

// leak is an audit line that carries credential values, and those values
// (base64-encoded ones are looked for in both forms).
type leak struct {
	name   string
	line   string
	values []string
	// noNewline writes the line last in a rotated file, without newline.
	noNewline bool
}

var leaks = []leak{
	{name: "strategic-merge patch with last-applied (kubectl apply)", values: []string{"smp-pass-1", "smp-pass-2"},
		line: secretEvent(1, "patch", "secrets", "",
			`{"data":{"password":"`+b64("smp-pass-2")+`"},"metadata":{"annotations":{`+lastApplied("smp-pass-1")+`}}}`,
			`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default","annotations":{`+lastApplied("smp-pass-1")+`}},"data":{"password":"`+b64("smp-pass-2")+`"},"type":"Opaque"}`)},
	{name: "JSON patch of /data/password", values: []string{"jsonpatch-pass"},
		line: secretEvent(2, "patch", "secrets", "", `[{"op":"replace","path":"/data/password","value":"`+b64("jsonpatch-pass")+`"}]`, "")},
	{name: "JSON patch of /data with an object, value before path", values: []string{"jsonpatch-obj"},
		line: secretEvent(3, "patch", "secrets", "", `[{"value":{"token":"`+b64("jsonpatch-obj")+`"},"op":"add","path":"/data"}]`, "")},
	{name: "merge patch with stringData", values: []string{"merge-plain"},
		line: secretEvent(4, "patch", "secrets", "", `{"stringData":{"password":"merge-plain"}}`, "")},
	{name: "merge patch with an escaped key", values: []string{"escaped-key"},
		line: secretEvent(5, "patch", "secrets", "", `{"str\u0069ngData":{"password":"escaped-key"}}`, "")},
	{name: "TokenReview spec.token, echoed in the response", values: []string{"eyJhbGciOiJSUzI1NiJ9.live-bearer-token"},
		line: secretEvent(6, "create", "tokenreviews", "",
			`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"eyJhbGciOiJSUzI1NiJ9.live-bearer-token"},"status":{"user":{}}}`,
			`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"token":"eyJhbGciOiJSUzI1NiJ9.live-bearer-token"},"status":{"authenticated":true,"user":{"username":"bob"}}}`)},
	{name: "TokenRequest status.token without kind", values: []string{"eyJhbGciOiJSUzI1NiJ9.minted-token"},
		line: secretEvent(7, "create", "serviceaccounts", "token", "",
			`{"metadata":{"name":"builder"},"spec":{"audiences":["api"]},"status":{"token":"eyJhbGciOiJSUzI1NiJ9.minted-token","expirationTimestamp":"2026-11-21T11:00:02Z"}}`)},
	{name: "body the redaction cannot parse", values: []string{"unparseable-body"},
		line: secretEvent(8, "create", "secrets", "", `{"kind":"Secret","data":{"password":"`+b64("unparseable-body")+`" "user":"x"}}`, "")},
	{name: "truncated event (unparsed line)", values: []string{"truncated-pass"},
		line: secretEvent(9, "create", "secrets", "", `{"kind":"Secret","apiVersion":"v1","data":{"password":"`+b64("truncated-pass")+`"}}`, "")[:560]},
	{name: "last line without newline", values: []string{"tail-pass"}, noNewline: true,
		line: secretEvent(10, "create", "secrets", "", `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"`+b64("tail-pass")+`"}}`, "")},
}

// leaked returns the values of l found in b, plain or base64-encoded.
func (l leak) leaked(b []byte) []string {
	var out []string
	for _, v := range l.values {
		if bytes.Contains(b, []byte(v)) || bytes.Contains(b, []byte(b64(v))) {
			out = append(out, v)
		}
	}
	return out
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// writeLeak writes l's line between two plain events; a line without
// newline ends a file that is then rotated.
func writeLeak(t *testing.T, e *env, l leak) {
	t.Helper()
	if !l.noNewline {
		appendLines(t, e.live, event(0), l.line, event(1))
		return
	}
	appendLines(t, e.live, event(0))
	f, err := os.OpenFile(e.live, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(l.line)
	f.Close()
	os.Rename(e.live, lumberjackName(e.dir, time.Now()))
	appendLines(t, e.live, event(1))
}

// No credential value of the reproduced leaks reaches a sink that
// redacts, its dead-letter files or the agent's logs, whatever the body's
// shape; a sink with redactSecrets: false still gets the original bytes.
func TestNoLeakToRedactingSinks(t *testing.T) {
	for _, l := range leaks {
		t.Run(l.name, func(t *testing.T) {
			if got := l.leaked([]byte(l.line)); len(got) != len(l.values) {
				t.Fatalf("the test line does not hold %v", l.values)
			}
			e := newEnv(t)
			writeLeak(t, e, l)
			logs := &syncBuffer{}
			opts := e.options()
			opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			red, raw := &recSink{name: "es"}, &recSink{name: "s3"}
			dead := &recSink{name: "dlq", fail: func(int) error { return sinks.Permanent(errors.New("mapping error")) }}
			keep := sinkOpts(raw)
			keep.KeepSecrets = true
			e.startWith(opts, []SinkOptions{sinkOpts(red), keep, sinkOpts(dead)})
			eventually(t, "both events in every sink", func() bool { return len(red.events()) >= 2 && len(raw.events()) >= 2 })
			dlq := filepath.Join(e.state, "dead-letter", "dlq")
			eventually(t, "a dead-letter file with both events", func() bool {
				return bytes.Contains(readDir(t, dlq), []byte(`"auditID":"00000000-0000-0000-0000-000000000001"`))
			})
			for _, r := range append(red.records(), red.ofKind(sinks.KindTamper)...) {
				if got := l.leaked([]byte(r.Line)); len(got) > 0 {
					t.Errorf("redacting sink got %v in a %s record: %s", got, r.Kind, r.Line)
				}
			}
			if got := l.leaked(readDir(t, dlq)); len(got) > 0 {
				t.Errorf("dead-letter files hold %v", got)
			}
			if got := l.leaked(logs.Bytes()); len(got) > 0 {
				t.Errorf("logs hold %v", got)
			}
			var all []byte
			for _, r := range raw.records() {
				all = append(all, r.Line...)
			}
			if !bytes.Contains(all, []byte(l.line)) {
				t.Errorf("the sink that keeps secrets did not get the original line")
			}
		})
	}
}

// readDir returns the contents of the files in dir, concatenated.
func readDir(t *testing.T, dir string) []byte {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"))
	var out []byte
	for _, p := range m {
		b, _ := os.ReadFile(p)
		out = append(out, b...)
	}
	return out
}

// A body that cannot be redacted is shipped as a marker, counted, and
// reported once per run to every sink as a tamper record (which alert
// destinations turn into an alert), without any of its content.
func TestUnredactableBodyReportedOnce(t *testing.T) {
	e := newEnv(t)
	bad := leaks[7] // body the redaction cannot parse
	appendLines(t, e.live, bad.line, event(0), bad.line, event(1))
	red := &recSink{name: "es"}
	e.startWith(e.options(), []SinkOptions{sinkOpts(red)})
	eventually(t, "4 events", func() bool { return len(red.events()) == 4 })
	if got := red.events()[0]; !strings.Contains(got, `"requestObject":{"auditrailRedacted":"unparseable","sha256":"`) {
		t.Errorf("no marker in place of the body: %s", got)
	}
	if v := counterValue(t, e.reg, "auditrail_redaction_sealed_total", "what", "body"); v != 2 {
		t.Errorf("auditrail_redaction_sealed_total{what=body} = %v, want 2", v)
	}
	var found []got
	eventually(t, "the tamper record", func() bool {
		found = nil
		for _, r := range red.ofKind(sinks.KindTamper) {
			if strings.Contains(r.Line, `"reason":"`+sinks.TamperUnredactable+`"`) {
				found = append(found, r)
			}
		}
		return len(found) > 0
	})
	time.Sleep(100 * time.Millisecond)
	if len(found) != 1 || len(bad.leaked([]byte(found[0].Line))) > 0 {
		t.Errorf("tamper records about the redaction: %v", found)
	}
}
