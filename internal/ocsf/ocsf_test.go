package ocsf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// event is the audit.k8s.io/v1 Event, decoded the ordinary way: the
// expectations of the tests come from it, not from Append's scanner.
type event struct {
	AuditID, Verb, RequestURI, UserAgent, Level, Stage string
	APIVersion                                         string `json:"apiVersion"`
	User                                               struct {
		Username, UID string
		Groups        []string
	}
	SourceIPs []string `json:"sourceIPs"`
	ObjectRef *struct {
		Resource, Subresource, Namespace, Name, UID, APIGroup, APIVersion string
	}
	ResponseStatus           *struct{ Code int }
	Annotations              map[string]string
	StageTimestamp           time.Time
	RequestReceivedTimestamp time.Time
}

func schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/api_activity.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("api_activity.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("api_activity.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func corpus(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("../../examples/audit/audit.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil || len(lines) == 0 {
		t.Fatalf("corpus: %v, %d lines", err, len(lines))
	}
	return lines
}

// mapLine parses and maps line, failing the test on any error.
func mapLine(t testing.TB, line []byte) []byte {
	t.Helper()
	var ev auditjson.Event
	if err := auditjson.Parse(line, &ev); err != nil {
		t.Fatalf("parse %s: %v", line, err)
	}
	out, err := Append(nil, line, &ev)
	if err != nil {
		t.Fatalf("map %s: %v", line, err)
	}
	return out
}

func validate(t testing.TB, s *jsonschema.Schema, out []byte) map[string]any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("output does not follow OCSF %s API Activity: %v\n%s", Version, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// get returns the value at a dotted path of m ("actor.user.name";
// "resources.0.name" for arrays).
func get(m any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch c := m.(type) {
		case map[string]any:
			m = c[p]
		case []any:
			i := int(p[0] - '0')
			if i >= len(c) {
				return nil
			}
			m = c[i]
		default:
			return nil
		}
	}
	return m
}

// Every event of the sample log, written by kube-apiserver's own audit
// backend, maps to an event that follows the OCSF schema and carries the
// event's values where users will look for them.
func TestCorpusFollowsSchemaAndCarriesValues(t *testing.T) {
	s := schema(t)
	for i, line := range corpus(t) {
		out := mapLine(t, line)
		got := validate(t, s, out)
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		act := map[string]float64{"create": 1, "get": 2, "list": 2, "watch": 2, "update": 3, "patch": 3, "delete": 4, "deletecollection": 4}[ev.Verb]
		if act == 0 {
			act = 99
		}
		path, query, _ := strings.Cut(ev.RequestURI, "?")
		want := map[string]any{
			"class_uid": 6003.0, "category_uid": 6.0, "activity_id": act, "type_uid": 600300 + act,
			"metadata.version": Version, "metadata.log_version": ev.APIVersion,
			"time":            float64(ev.StageTimestamp.UnixMilli()),
			"start_time":      float64(ev.RequestReceivedTimestamp.UnixMilli()),
			"actor.user.name": ev.User.Username,
			"api.operation":   ev.Verb, "api.request.uid": ev.AuditID,
			"http_request.url.path": path, "http_request.user_agent": ev.UserAgent,
			"src_endpoint.ip": ev.SourceIPs[0],
			"unmapped.level":  ev.Level, "unmapped.stage": ev.Stage,
		}
		if query != "" {
			want["http_request.url.query_string"] = query
		}
		if ev.User.UID != "" {
			want["actor.user.uid"] = ev.User.UID
		}
		for j, g := range ev.User.Groups {
			want["actor.user.groups."+string(rune('0'+j))+".name"] = g
		}
		if d, ok := ev.Annotations["authorization.k8s.io/decision"]; ok {
			want["actor.authorizations.0.decision"] = d
		}
		if len(ev.SourceIPs) > 1 {
			want["src_endpoint.intermediate_ips.0"] = ev.SourceIPs[1]
		}
		if r := ev.ObjectRef; r != nil {
			typ := r.Resource
			if r.Subresource != "" {
				typ += "/" + r.Subresource
			}
			want["resources.0.type"], want["resources.0.name"] = typ, r.Name
			if r.Namespace != "" {
				want["resources.0.namespace"] = r.Namespace
			}
			if r.APIVersion != "" {
				want["api.version"] = r.APIVersion
			}
			if r.APIGroup != "" {
				want["api.group.name"] = r.APIGroup
			}
		}
		if rs := ev.ResponseStatus; rs != nil && rs.Code != 0 {
			want["api.response.code"] = float64(rs.Code)
			want["status"] = map[bool]string{true: "Success", false: "Failure"}[rs.Code < 400]
		}
		for k, v := range want {
			if g := get(got, k); g != v {
				t.Errorf("line %d: %s = %#v, want %#v", i+1, k, g, v)
			}
		}
		// Nothing is lost: every member of the event is mapped or in
		// unmapped, bodies unchanged.
		var raw map[string]json.RawMessage
		json.Unmarshal(line, &raw)
		for k, v := range raw {
			switch k {
			case "kind", "apiVersion", "auditID", "verb", "requestURI", "stageTimestamp", "user", "sourceIPs", "userAgent", "objectRef":
				continue
			}
			u, _ := json.Marshal(get(got, "unmapped."+k))
			var a, b any
			json.Unmarshal(u, &a)
			json.Unmarshal(v, &b)
			if ua, _ := json.Marshal(a); string(ua) != string(mustMarshal(b)) {
				t.Errorf("line %d: unmapped.%s = %s, want %s", i+1, k, u, v)
			}
		}
	}
}

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestActivityFromVerb(t *testing.T) {
	for verb, want := range map[string]int{"create": 1, "get": 2, "list": 2, "watch": 2, "update": 3, "patch": 3,
		"delete": 4, "deletecollection": 4, "impersonate": 99, "proxy": 99, "": 99, "GET": 99} {
		if got := activity([]byte(verb)); got != want {
			t.Errorf("verb %q: activity %d, want %d", verb, got, want)
		}
	}
}

const sample = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseComplete",` +
	`"requestURI":"/api/v1/namespaces/default/pods?limit=5","verb":"list",` +
	`"user":{"username":"ali\"ce\u2028","uid":"u-1","groups":["dev","system:authenticated"],"extra":{"scopes.x/y":["a"]}},` +
	`"impersonatedUser":{"username":"bob"},"sourceIPs":["203.0.113.7","10.0.0.1","2001:db8::1"],"userAgent":"kubectl/v1.30",` +
	`"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1","resourceVersion":"42"},` +
	`"responseStatus":{"metadata":{},"status":"Failure","message":"pods is forbidden","reason":"Forbidden","code":403},` +
	`"requestReceivedTimestamp":"2026-11-21T15:26:39.160147Z","stageTimestamp":"2026-11-21T15:26:39.9Z",` +
	`"annotations":{"authorization.k8s.io/decision":"forbid"},"newField":[1,2]}`

// Escapes survive, IPs split into origin and proxies, a forbidden request
// is a failure, and what has no OCSF attribute is kept in unmapped.
func TestMapping(t *testing.T) {
	got := validate(t, schema(t), mapLine(t, []byte(sample)))
	for k, v := range map[string]any{
		"actor.user.name": "ali\"ce\u2028", "actor.user.uid": "u-1", "actor.user.groups.1.name": "system:authenticated",
		"actor.authorizations.0.decision": "forbid", "activity_id": 2.0, "type_uid": 600302.0, "status_id": 2.0,
		"status": "Failure", "status_code": "403", "api.response.code": 403.0, "api.response.message": "pods is forbidden",
		"api.response.error": "Forbidden", "src_endpoint.ip": "203.0.113.7", "src_endpoint.intermediate_ips.1": "2001:db8::1",
		"http_request.url.path": "/api/v1/namespaces/default/pods", "http_request.url.query_string": "limit=5",
		"resources.0.name": "", "resources.0.type": "pods", "time": 1795274799900.0, "start_time": 1795274799160.0,
		"unmapped.user.extra.scopes\u002ex/y.0": nil, "unmapped.impersonatedUser.username": "bob",
		"unmapped.objectRef.resourceVersion": "42", "unmapped.newField.1": 2.0,
	} {
		if g := get(got, k); g != v {
			t.Errorf("%s = %#v, want %#v", k, g, v)
		}
	}
	if x := get(got, "unmapped.user.extra"); x == nil {
		t.Errorf("user.extra lost")
	}
}

// Source IPs that are not addresses do not reach src_endpoint (OCSF's
// ip_t), and are kept in unmapped.
func TestBadSourceIP(t *testing.T) {
	line := strings.Replace(sample, `"203.0.113.7","10.0.0.1"`, `"evil\"","10.0.0.1"`, 1)
	got := validate(t, schema(t), mapLine(t, []byte(line)))
	if ip := get(got, "src_endpoint.ip"); ip != "10.0.0.1" {
		t.Errorf("src_endpoint.ip = %v, want 10.0.0.1", ip)
	}
	if raw := get(got, "unmapped.sourceIPs.0"); raw != `evil"` {
		t.Errorf("unmapped.sourceIPs.0 = %v", raw)
	}
	line = strings.Replace(sample, `"sourceIPs":["203.0.113.7","10.0.0.1","2001:db8::1"]`, `"sourceIPs":["fe80::1%eth0"]`, 1)
	got = validate(t, schema(t), mapLine(t, []byte(line)))
	if name := get(got, "src_endpoint.name"); name != "unknown" {
		t.Errorf("src_endpoint = %v, want the name unknown", get(got, "src_endpoint"))
	}
}

// A line auditjson accepts but that is not valid JSON, or has no time,
// is not mapped: the output would not be JSON.
func TestNotMappable(t *testing.T) {
	for _, line := range []string{
		strings.Replace(sample, `"ali\"ce`, `"ali\qce`, 1),
		strings.Replace(sample, `"newField":[1,2]`, `"newField":{"a" 1}`, 1),
		strings.NewReplacer(`"stageTimestamp":"2026-11-21T15:26:39.9Z",`, "", `"requestReceivedTimestamp":"2026-11-21T15:26:39.160147Z",`, "").Replace(sample),
	} {
		var ev auditjson.Event
		if err := auditjson.Parse([]byte(line), &ev); err != nil {
			continue
		}
		dst := []byte("keep")
		out, err := Append(dst, []byte(line), &ev)
		if !errors.Is(err, ErrNotMappable) || string(out) != "keep" {
			t.Errorf("%s: %q, %v; want ErrNotMappable and dst unchanged", line, out, err)
		}
	}
}

func TestMillis(t *testing.T) {
	for ts, want := range map[string]int64{
		"2026-11-21T15:26:39.160147Z": 1795274799160, "2026-11-21T15:26:39Z": 1795274799000,
		"2026-11-21T15:26:39.1Z": 1795274799100, "2026-11-21T16:26:39.5+01:00": 1795274799500,
	} {
		if got, ok := millis([]byte(ts)); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", ts, got, ok, want)
		}
	}
	for _, ts := range []string{"", "2026-02-30T00:00:00Z", "2026-11-21T25:00:00Z", "2026-11-21T15:26:39.Z", "yesterday"} {
		if _, ok := millis([]byte(ts)); ok {
			t.Errorf("%q parsed", ts)
		}
	}
}

// Mapping into a buffer with room allocates nothing.
func TestAppendAllocatesNothing(t *testing.T) {
	lines := corpus(t)
	evs := make([]auditjson.Event, len(lines))
	for i := range lines {
		auditjson.Parse(lines[i], &evs[i])
	}
	dst := make([]byte, 0, 1<<20)
	allocs := testing.AllocsPerRun(10, func() {
		for i := range lines {
			dst, _ = Append(dst[:0], lines[i], &evs[i])
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per corpus", allocs)
	}
}

func FuzzAppend(f *testing.F) {
	f.Add([]byte(sample))
	for _, l := range corpus(f)[:8] {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var ev auditjson.Event
		if auditjson.Parse(line, &ev) != nil {
			return
		}
		out, err := Append(nil, line, &ev)
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("output is not JSON: %v\n%s\n%s", err, line, out)
		}
		if m["class_uid"] != 6003.0 || !slices.Contains([]float64{1, 2, 3, 4, 99}, m["activity_id"].(float64)) {
			t.Fatalf("class or activity wrong: %s", out)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	lines := corpus(b)
	evs := make([]auditjson.Event, len(lines))
	n := 0
	for i := range lines {
		auditjson.Parse(lines[i], &evs[i])
		n += len(lines[i])
	}
	dst := make([]byte, 0, 1<<20)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for i := range lines {
			dst, _ = Append(dst[:0], lines[i], &evs[i])
		}
	}
}

// The schema is not vacuous: what OCSF does not allow fails it.
func TestSchemaRejects(t *testing.T) {
	s := schema(t)
	good := mapLine(t, []byte(sample))
	for _, bad := range [][2]string{
		{`"class_uid":6003`, `"class_uid":6002`},
		{`"activity_id":2`, `"activity_id":7`},
		{`"type_uid":600302`, `"type_uid":600307`},
		{`"time":`, `"time":"x","t":`},
		{`"user":{"name"`, `"user":{"nme"`},
		{`"ip":"203.0.113.7"`, `"ip":"203.0.113.700"`},
		{`"metadata":{"version":"1.7.0",`, `"metadata":{`},
		{`"severity_id":1`, `"severity_id":9`},
		{`"src_endpoint":{"ip":"203.0.113.7",`, `"src_endpoint":{`},
	} {
		out := strings.Replace(string(good), bad[0], bad[1], 1)
		if out == string(good) {
			t.Fatalf("%s is not in the output", bad[0])
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if s.Validate(v) == nil {
			t.Errorf("%s -> %s: validates", bad[0], bad[1])
		}
	}
}

// A member whose value is not of the type kube-apiserver writes is kept
// in unmapped as it is, not dropped.
func TestOddTypesKept(t *testing.T) {
	line := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a2","stage":"ResponseComplete","verb":"get",` +
		`"requestURI":"/api","user":{"username":"alice","uid":5,"groups":["dev",1]},"sourceIPs":"203.0.113.7","userAgent":12,` +
		`"objectRef":{"name":7,"namespace":"default","subresource":"status"},"stageTimestamp":"2026-11-21T15:26:39.9Z"}`
	got := validate(t, schema(t), mapLine(t, []byte(line)))
	for k, v := range map[string]any{
		"unmapped.user.uid": 5.0, "unmapped.user.groups.1": 1.0, "unmapped.sourceIPs": "203.0.113.7",
		"unmapped.userAgent": 12.0, "unmapped.objectRef.name": 7.0, "actor.user.name": "alice",
		"resources.0.namespace": "default", "src_endpoint.name": "unknown", "resources.0.type": "/status",
	} {
		if g := get(got, k); g != v {
			t.Errorf("%s = %#v, want %#v", k, g, v)
		}
	}
	if g := get(got, "unmapped.user.username"); g != nil {
		t.Errorf("unmapped.user.username = %v: mapped members are not repeated", g)
	}
}
