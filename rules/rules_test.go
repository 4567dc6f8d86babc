package rules

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/units"
)

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"get", "get", true}, {"get", "gets", false}, {"", "", true}, {"", "x", false},
		{"*", "", true}, {"*", "a/b", true}, {"system:*", "system:node:a", true}, {"system:*", "alice", false},
		{"system:node:?", "system:node:a", true}, {"system:node:?", "system:node:ab", false},
		{"*-controller", "system:serviceaccount:kube-system:job-controller", true},
		{"a*b*c", "aXbYbZc", true}, {"a*b*c", "aXbYbZ", false},
		{`\*`, "*", true}, {`\*`, "get", false}, {`pods/\?`, "pods/?", true}, {`pods/\?`, "pods/x", false},
	} {
		if got := newGlob(c.pattern).match([]byte(c.s)); got != c.want {
			t.Errorf("%q matching %q = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestPatternsExclusions(t *testing.T) {
	ps, err := compilePatterns([]string{"system:*", "!system:node:*"})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"system:anonymous": true, "system:node:m1": false, "alice": false} {
		if got := ps.match([]byte(s)); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
	only, _ := compilePatterns([]string{"!system:masters"})
	if only.matchAny([][]byte{[]byte("devs"), []byte("system:masters")}) {
		t.Error("an excluded group among others still matched")
	}
	if !only.matchAny([][]byte{[]byte("devs")}) || !only.matchAny(nil) {
		t.Error("exclusion-only patterns must match what they do not exclude")
	}
}

const event = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseComplete",` +
	`"requestURI":"/api/v1/namespaces/prod/configmaps","verb":"create","user":{"username":"alice","groups":["devs","system:authenticated"]},` +
	`"objectRef":{"resource":"configmaps","namespace":"prod","name":"cfg","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},` +
	`"requestObject":{"kind":"ConfigMap","metadata":{"labels":{"tier":"db"}},"data":{"mode":"debug","n":3,"on":true}},` +
	`"stageTimestamp":"2026-11-21T10:00:00.000000Z","annotations":{"authorization.k8s.io/decision":"allow"}}`

func match(t *testing.T, s Spec, line string) bool {
	t.Helper()
	if s.ID == "" {
		s.ID = "r"
	}
	if s.Severity == "" {
		s.Severity = "high"
	}
	r, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	var ev auditjson.Event
	if err := auditjson.Parse([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	return r.Matches([]byte(line), &ev)
}

func TestMatchers(t *testing.T) {
	yes, no := true, false
	for name, c := range map[string]struct {
		spec Spec
		want bool
	}{
		"verb":              {Spec{Verbs: []string{"create"}}, true},
		"verb miss":         {Spec{Verbs: []string{"delete"}}, false},
		"all lists":         {Spec{Verbs: []string{"create"}, Resources: []string{"configmaps"}, Namespaces: []string{"prod"}, Names: []string{"c*"}, Users: []string{"alice"}, Stages: []string{"ResponseComplete"}, APIGroups: []string{""}, Subresources: []string{""}}, true},
		"one list misses":   {Spec{Verbs: []string{"create"}, Namespaces: []string{"dev"}}, false},
		"group":             {Spec{Groups: []string{"devs"}}, true},
		"group excluded":    {Spec{Verbs: []string{"create"}, Groups: []string{"!devs"}}, false},
		"code":              {Spec{Codes: []string{"2??"}}, true},
		"code miss":         {Spec{Codes: []string{"403"}}, false},
		"decision":          {Spec{Decision: "allow"}, true},
		"decision miss":     {Spec{Decision: "forbid"}, false},
		"uri":               {Spec{RequestURIs: []string{"/api/v1/namespaces/*"}}, true},
		"field value":       {Spec{Fields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"debug"}}}}, true},
		"field number":      {Spec{Fields: []FieldSpec{{Path: "requestObject.data.n", Values: []string{"3"}}}}, true},
		"field bool":        {Spec{Fields: []FieldSpec{{Path: "requestObject.data.on", Values: []string{"true"}}}}, true},
		"field array":       {Spec{Fields: []FieldSpec{{Path: "user.groups", Values: []string{"system:*"}}}}, true},
		"field miss":        {Spec{Fields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"prod"}}}}, false},
		"field exists":      {Spec{Fields: []FieldSpec{{Path: "requestObject.metadata.labels", Exists: &yes}}}, true},
		"field absent":      {Spec{Fields: []FieldSpec{{Path: "impersonatedUser", Exists: &no}}}, true},
		"field not absent":  {Spec{Fields: []FieldSpec{{Path: "requestObject.data", Exists: &no}}}, false},
		"all fields":        {Spec{Fields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"debug"}}, {Path: "requestObject.data.n", Values: []string{"4"}}}}, false},
		"any field":         {Spec{AnyFields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"x"}}, {Path: "requestObject.data.n", Values: []string{"3"}}}}, true},
		"any field of none": {Spec{AnyFields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"x"}}, {Paths: []string{"a.b", "c"}, Exists: &yes}}}, false},
	} {
		if got := match(t, c.spec, event); got != c.want {
			t.Errorf("%s: matched %v, want %v", name, got, c.want)
		}
	}
}

func TestDecisionFromCode(t *testing.T) {
	noAnnotations := strings.Replace(event, `,"annotations":{"authorization.k8s.io/decision":"allow"}`, "", 1)
	if !match(t, Spec{Decision: "allow"}, noAnnotations) {
		t.Error("a 201 without annotation is not allowed")
	}
	denied := strings.Replace(noAnnotations, `"code":201`, `"code":403`, 1)
	if !match(t, Spec{Decision: "forbid"}, denied) || match(t, Spec{Decision: "allow"}, denied) {
		t.Error("a 403 without annotation is not forbidden")
	}
}

func TestCompileErrorsNameTheRule(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{ID: "x", Severity: "urgent", Verbs: []string{"get"}}, "rule x: severity must be one of"},
		{Spec{Severity: "high", Verbs: []string{"get"}}, "rule unnamed: id is required"},
		{Spec{ID: "x", Severity: "high"}, "rule x: matches every event"},
		{Spec{ID: "x", Severity: "high", Resources: []string{"pods/exec"}}, "subresources"},
		{Spec{ID: "x", Severity: "high", Users: []string{"!"}}, "users: bad pattern"},
		{Spec{ID: "x", Severity: "high", Decision: "maybe"}, "decision must be allow or forbid"},
		{Spec{ID: "x", Severity: "high", Fields: []FieldSpec{{Path: "a..b", Values: []string{"1"}}}}, "fields[0]: bad path"},
		{Spec{ID: "x", Severity: "high", Fields: []FieldSpec{{Path: "a"}}}, "fields[0]: give exactly one of values and exists"},
		{Spec{ID: "x", Severity: "high", Verbs: []string{"get"}, Rate: &RateSpec{Count: 1, Window: units.Duration(time.Second)}}, "rate: count"},
	} {
		_, err := Compile(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Compile(%+v) = %v, want an error with %q", c.spec, err, c.want)
		}
	}
	_, err := NewSet(true, []string{"no-such-rule"}, []Spec{{ID: "secret-read", Severity: "low", Verbs: []string{"get"}}})
	if err == nil || !strings.Contains(err.Error(), `"no-such-rule" is not a built-in rule`) ||
		!strings.Contains(err.Error(), `rules[0]: id "secret-read" is already used`) {
		t.Errorf("NewSet errors = %v", err)
	}
}

func TestSetDisableAndUserRules(t *testing.T) {
	set, err := NewSet(true, []string{"secret-read"}, []Spec{{ID: "cm-debug", Severity: "low", Resources: []string{"configmaps"},
		Fields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"debug"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range set.Rules() {
		ids = append(ids, r.ID)
	}
	if slices.Contains(ids, "secret-read") || !slices.Contains(ids, "cm-debug") || !slices.Contains(ids, "forbidden-burst") {
		t.Errorf("rules = %v", ids)
	}
	var ev auditjson.Event
	auditjson.Parse([]byte(event), &ev)
	got := set.Match([]byte(event), &ev, false, nil)
	if len(got) != 1 || got[0].ID != "cm-debug" || !got[0].NeedsBody {
		t.Errorf("matched %v", got)
	}
}

func BenchmarkSetNoMatch(b *testing.B) {
	set, _ := NewSet(true, nil, nil)
	line := []byte(event)
	var ev auditjson.Event
	auditjson.Parse(line, &ev)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	var dst []*Rule
	for b.Loop() {
		dst = set.Match(line, &ev, false, dst[:0])
	}
}

// TestSharedNeedlePrefixes covers the needles of a rule that start alike
// ("hostPID", "hostPath"): they are looked for where their shared prefix
// occurs, however often it does, and not inside the bodies for paths
// outside them.
func TestSharedNeedlePrefixes(t *testing.T) {
	yes := true
	spec := Spec{AnyFields: []FieldSpec{
		{Paths: []string{"requestObject.spec.hostPID", "requestObject.spec.hostIPC"}, Values: []string{"true"}},
		{Path: "requestObject.spec.volumes.hostPath", Exists: &yes},
		{Path: "hostNetwork", Values: []string{"true"}},
	}}
	withBody := func(body string) string {
		return strings.Replace(event, `"requestObject":{"kind":"ConfigMap","metadata":{"labels":{"tier":"db"}},"data":{"mode":"debug","n":3,"on":true}}`,
			`"requestObject":`+body, 1)
	}
	ports := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"hostPort":80,"hostIP":"10.0.0.1"}`)
		}
		return b.String()
	}
	for name, c := range map[string]struct {
		line string
		want bool
	}{
		"prefix only":       {withBody(`{"spec":{"containers":[{"ports":[` + ports(3) + `]}]}}`), false},
		"needle":            {withBody(`{"spec":{"containers":[{"ports":[` + ports(3) + `]}],"hostPID":true}}`), true},
		"needle false":      {withBody(`{"spec":{"containers":[{"ports":[` + ports(3) + `]}],"hostPID":false}}`), false},
		"second needle":     {withBody(`{"spec":{"hostIPC":true}}`), true},
		"other field":       {withBody(`{"spec":{"volumes":[{"name":"v","hostPath":{"path":"/"}}]}}`), true},
		"after many spots":  {withBody(`{"spec":{"containers":[{"ports":[` + ports(40) + `]}],"hostPID":true}}`), true},
		"many spots, none":  {withBody(`{"spec":{"containers":[{"ports":[` + ports(40) + `]}],"hostPID":false}}`), false},
		"top level":         {strings.Replace(event, `"verb":"create"`, `"verb":"create","hostNetwork":true`, 1), true},
		"top level in body": {withBody(`{"hostNetwork":true}`), false},
		"escaped quote":     {withBody(`{"spec":{"note":"\"hostPID\"","hostIPC":false}}`), false},
		"escaped key":       {withBody(`{"spec":{"containers":[{"ports":[` + ports(3) + `]}],"host\u0050ID":true}}`), true},
		"escaped key false": {withBody(`{"spec":{"containers":[{"ports":[` + ports(3) + `]}],"host\u0050ID":false}}`), false},
		"escaped, no spots": {withBody(`{"spec":{"\u0068ostIPC":true}}`), true},
	} {
		if got := match(t, spec, c.line); got != c.want {
			t.Errorf("%s: matched %v, want %v", name, got, c.want)
		}
	}
}

func TestIndexQuoted(t *testing.T) {
	needles := []string{`"hostPID"`, `"host`, `"`, `""`, `"a"`, `x"`}
	texts := []string{``, `"`, `""`, `"hostPID"`, `hostPID"`, `x"hostPID"`, `"host"hostPID"`, `h"host`,
		`{"a":"b","hostIP":"1","hostPID":true}`, `""a"`, `"a"a"`, `abc`, `\"hostPID\"`}
	for _, n := range needles {
		for _, s := range texts {
			if got, want := indexQuoted([]byte(s), []byte(n)), strings.Index(s, n); got != want {
				t.Errorf("indexQuoted(%q, %q) = %d, want %d", s, n, got, want)
			}
		}
	}
}

// TestSetTriesCandidates checks that a set, which tries an event only
// against the rules that may match its resource, matches what trying every
// rule in order matches.
func TestSetTriesCandidates(t *testing.T) {
	specs := []Spec{
		{ID: "cm-wild", Severity: "low", Resources: []string{"config*"}},
		{ID: "not-secrets", Severity: "low", Resources: []string{"!secrets"}, Verbs: []string{"create"}},
		{ID: "cm-exact", Severity: "low", Resources: []string{"configmaps", "pods"}},
		{ID: "any-create", Severity: "low", Verbs: []string{"create"}},
	}
	set, err := NewSet(true, nil, specs)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []string{"configmaps", "secrets", "pods", "clusterrolebindings", "widgets", ""} {
		for _, verb := range []string{"create", "get"} {
			line := strings.Replace(strings.Replace(event, `"resource":"configmaps"`, `"resource":"`+res+`"`, 1),
				`"verb":"create"`, `"verb":"`+verb+`"`, 1)
			if res == "" {
				line = strings.Replace(line, `"resource":"",`, "", 1)
			}
			var ev auditjson.Event
			if err := auditjson.Parse([]byte(line), &ev); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, r := range set.Rules() {
				if r.Rate == nil && r.Matches([]byte(line), &ev) {
					want = append(want, r.ID)
				}
			}
			var got []string
			for _, r := range set.Match([]byte(line), &ev, false, nil) {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: matched %v, want %v", verb, res, got, want)
			}
			if len(want) == 0 && verb == "create" {
				t.Errorf("%s %s: the test matches nothing", verb, res)
			}
		}
	}
}
