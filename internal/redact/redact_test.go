package redact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/benchcorpus"
)

// Events as kube-apiserver's JSON audit backend writes them.
const (
	createSecret = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"6a4a9a5e-0d7c-4b7e-9d55-0b8a1c3f2e11","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets?fieldManager=kubectl-client-side-apply\u0026fieldValidation=Strict","verb":"create","user":{"username":"alice@example.com","groups":["system:authenticated"]},"sourceIPs":["10.0.0.7"],"userAgent":"kubectl/v1.30.2 (linux/amd64) kubernetes/3968350","objectRef":{"resource":"secrets","namespace":"default","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},` +
		`"requestObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default","creationTimestamp":null,"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"password\":\"aHVudGVyMg==\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"name\":\"db\",\"namespace\":\"default\"},\"stringData\":{\"user\":\"admin\"}}\n"}},"data":{"password":"aHVudGVyMg=="},"stringData":{"user":"admin"},"type":"Opaque"},` +
		`"responseObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"default","uid":"0c3e4a52-1d0b-4a3e-8f5e-3b1c2d4e5f60","resourceVersion":"123456","creationTimestamp":"2026-11-21T10:00:00Z"},"data":{"password":"aHVudGVyMg==","user":"YWRtaW4="},"type":"Opaque"},` +
		`"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.004000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"admins\""}}`

	listSecrets = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"1b2c3d4e-0000-4000-8000-000000000001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/secrets?limit=500","verb":"list","user":{"username":"system:serviceaccount:ci:deployer","groups":["system:serviceaccounts"]},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"secrets","namespace":"kube-system","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},` +
		`"responseObject":{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"99"},"items":[{"metadata":{"name":"a","namespace":"kube-system"},"data":{"token":"c2VjcmV0LWE="},"type":"Opaque","kind":"Secret"},{"metadata":{"name":"b","namespace":"kube-system"},"data":{"ca.crt":"Y2VydA==","token":"c2VjcmV0LWI="},"type":"kubernetes.io/service-account-token"}]},` +
		`"requestReceivedTimestamp":"2026-11-21T10:00:01.000000Z","stageTimestamp":"2026-11-21T10:00:01.010000Z"}`

	tokenRequest = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"2c3d4e5f-0000-4000-8000-000000000002","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/serviceaccounts/builder/token","verb":"create","user":{"username":"system:node:master-1","groups":["system:nodes"]},"sourceIPs":["10.0.0.2"],"objectRef":{"resource":"serviceaccounts","namespace":"default","name":"builder","apiVersion":"v1","subresource":"token"},"responseStatus":{"metadata":{},"code":201},` +
		`"requestObject":{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":["https://kubernetes.default.svc"],"expirationSeconds":3600,"boundObjectRef":null},"status":{"token":"","expirationTimestamp":null}},` +
		`"responseObject":{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"name":"builder","namespace":"default","creationTimestamp":"2026-11-21T10:00:02Z"},"spec":{"audiences":["https://kubernetes.default.svc"],"expirationSeconds":3600,"boundObjectRef":null},"status":{"token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGVyIn0.c2lnbmF0dXJl","expirationTimestamp":"2026-11-21T11:00:02Z"}},` +
		`"requestReceivedTimestamp":"2026-11-21T10:00:02.000000Z","stageTimestamp":"2026-11-21T10:00:02.003000Z"}`

	// A Secret read at Metadata level carries no body.
	metadataSecret = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"3d4e5f60-0000-4000-8000-000000000003","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets/db","verb":"get","user":{"username":"alice@example.com"},"objectRef":{"resource":"secrets","namespace":"default","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:00:03.000000Z","stageTimestamp":"2026-11-21T10:00:03.001000Z"}`

	// A ConfigMap whose data mentions "Secret": a near miss.
	configMap = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"4e5f6071-0000-4000-8000-000000000004","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps","verb":"create","user":{"username":"alice@example.com"},"objectRef":{"resource":"configmaps","namespace":"default","name":"cfg","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cfg"},"data":{"note":"\"SecretName\" is db"}},"requestReceivedTimestamp":"2026-11-21T10:00:04.000000Z","stageTimestamp":"2026-11-21T10:00:04.001000Z"}`
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func redactLine(t *testing.T, line string) (string, int) {
	t.Helper()
	var ev auditjson.Event
	b := []byte(line)
	if err := auditjson.Parse(b, &ev); err != nil {
		t.Fatalf("test event does not parse: %v", err)
	}
	if !Candidate(b, &ev) {
		return line, 0
	}
	out, res := Event(nil, b, &ev)
	if res.Sealed > 0 {
		t.Fatalf("%d bodies sealed: %s", res.Sealed, out)
	}
	if !res.Changed() {
		return line, 0
	}
	if !json.Valid(out) {
		t.Fatalf("redacted event is not valid JSON: %s", out)
	}
	var want auditjson.Event
	auditjson.Parse(out, &want)
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("the event's fields are not those of the redacted line:\n%+v\n%+v", ev, want)
	}
	return string(out), res.Values
}

func TestSecretCreate(t *testing.T) {
	out, n := redactLine(t, createSecret)
	for _, secret := range []string{"aHVudGVyMg==", "hunter2", `"admin"`, "YWRtaW4="} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted event still holds %s: %s", secret, out)
		}
	}
	// request: data.password, stringData.user, the last-applied annotation;
	// response: data.password, data.user.
	if n != 5 {
		t.Errorf("%d values redacted, want 5", n)
	}
	var ev struct {
		RequestObject struct {
			Data       map[string]string
			StringData map[string]string
		}
		ResponseObject struct{ Data map[string]string }
	}
	json.Unmarshal([]byte(out), &ev)
	if ev.RequestObject.Data["password"] != sha("hunter2") || ev.ResponseObject.Data["password"] != sha("hunter2") {
		t.Errorf("password digest %s, want the SHA-256 of the decoded value %s", ev.RequestObject.Data["password"], sha("hunter2"))
	}
	if ev.RequestObject.StringData["user"] != sha("admin") || ev.ResponseObject.Data["user"] != sha("admin") {
		t.Errorf("stringData and data of the same value must digest alike: %s %s", ev.RequestObject.StringData["user"], ev.ResponseObject.Data["user"])
	}
	// Everything outside the objects keeps its bytes and order.
	head := createSecret[:strings.Index(createSecret, `"requestObject"`)]
	tail := createSecret[strings.Index(createSecret, `,"requestReceivedTimestamp"`):]
	if !strings.HasPrefix(out, head) || !strings.HasSuffix(out, tail) {
		t.Errorf("fields around the objects changed:\n%s", out)
	}
	var got auditjson.Event
	if err := auditjson.Parse([]byte(out), &got); err != nil || string(got.AuditID) != "6a4a9a5e-0d7c-4b7e-9d55-0b8a1c3f2e11" || string(got.Verb) != "create" {
		t.Errorf("redacted event parses to %+v, %v", got, err)
	}
}

func TestSecretList(t *testing.T) {
	out, n := redactLine(t, listSecrets)
	if n != 3 {
		t.Errorf("%d values redacted, want 3", n)
	}
	for _, v := range []string{"c2VjcmV0LWE=", "c2VjcmV0LWI=", "Y2VydA=="} {
		if strings.Contains(out, v) {
			t.Errorf("list still holds %s", v)
		}
	}
	if !strings.Contains(out, sha("secret-a")) {
		t.Errorf("no digest of secret-a: %s", out)
	}
}

func TestTokenRequest(t *testing.T) {
	out, n := redactLine(t, tokenRequest)
	if n != 1 || strings.Contains(out, "eyJhbGciOiJSUzI1NiJ9") {
		t.Fatalf("%d values redacted: %s", n, out)
	}
	if !strings.Contains(out, sha("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGVyIn0.c2lnbmF0dXJl")) {
		t.Errorf("no digest of the token: %s", out)
	}
}

func TestNothingToRedact(t *testing.T) {
	for name, line := range map[string]string{"metadata level": metadataSecret, "configmap": configMap} {
		out, n := redactLine(t, line)
		if n != 0 || out != line {
			t.Errorf("%s: changed (%d values): %s", name, n, out)
		}
	}
}

// mentionsSecret finds the needles wherever they are, against the 32-byte
// steps and the 42-byte tail of the vector search, and not their look-alikes.
func TestMentionsSecret(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	filler := []byte("SsTt ecret okenRequest Secre TokenReques Sxxxxt Txxxxxxxxxxt")
	for n := range 3000 {
		b := make([]byte, r.IntN(300))
		for k := range b {
			b[k] = filler[r.IntN(len(filler))]
		}
		needle := ""
		if n%3 != 0 && len(b) >= 12 {
			needle = []string{"Secret", "TokenRequest"}[n%2]
			copy(b[r.IntN(len(b)-len(needle)+1):], needle)
		}
		want := bytes.Contains(b, []byte("Secret")) || bytes.Contains(b, []byte("TokenRequest"))
		if needle != "" && !want {
			t.Fatalf("planted %q not found by bytes.Contains", needle)
		}
		if got := mentionsSecret(b); got != want {
			t.Fatalf("mentionsSecret(%q) = %v, want %v", b, got, want)
		}
	}
}

func BenchmarkCandidate(b *testing.B) {
	lines := [][]byte{[]byte(configMap), []byte(metadataSecret)}
	var ev auditjson.Event
	b.SetBytes(int64(len(lines[0]) + len(lines[1])))
	for b.Loop() {
		for _, l := range lines {
			auditjson.Parse(l, &ev)
			if Candidate(l, &ev) && bytes.Contains(l, []byte("never")) {
				b.Fatal("unexpected")
			}
		}
	}
}

// BenchmarkSecrets redacts a Secret create with both bodies, the
// last-applied annotation included, as the agent does: the event parsed
// beforehand, the redacted line appended to a reused buffer.
func BenchmarkSecrets(b *testing.B) {
	line := []byte(createSecret)
	var ev0 auditjson.Event
	if err := auditjson.Parse(line, &ev0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		ev := ev0
		var res Result
		if buf, res = Event(buf[:0], line, &ev); res.Values == 0 {
			b.Fatal("nothing redacted")
		}
	}
}

// BenchmarkSecretsCorpus redacts the events of the first 100,000 lines of
// AUDITRAIL_BENCH_CORPUS that need it, such as a corpus made with
// gencorpus -secret-writes-permille, and reports the time per such event.
func BenchmarkSecretsCorpus(b *testing.B) {
	var lines [][]byte
	var evs []auditjson.Event
	for _, l := range benchcorpus.Lines(b, 100000) {
		var ev auditjson.Event
		line := []byte(l)
		if auditjson.Parse(line, &ev) == nil && Candidate(line, &ev) {
			lines, evs = append(lines, line), append(evs, ev)
		}
	}
	if len(lines) == 0 {
		b.Skip("no events to redact: set " + benchcorpus.Env)
	}
	var buf []byte
	for b.Loop() {
		for i, l := range lines {
			ev := evs[i]
			buf, _ = Event(buf[:0], l, &ev)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/event")
	b.ReportMetric(float64(len(lines)), "events")
}
