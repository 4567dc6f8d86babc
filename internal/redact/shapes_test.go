package redact

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// event returns an audit line of a request on resource (and subresource)
// with the given bodies; an empty body is left out.
func event(resource, sub, req, resp string) string {
	ref := `{"resource":"` + resource + `","namespace":"default","name":"db","apiVersion":"v1"`
	if sub != "" {
		ref += `,"subresource":"` + sub + `"`
	}
	line := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5f6a7b8c-0000-4000-8000-000000000001","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/x","verb":"patch","user":{"username":"alice@example.com"},"objectRef":` + ref + `},"responseStatus":{"metadata":{},"code":200}`
	if req != "" {
		line += `,"requestObject":` + req
	}
	if resp != "" {
		line += `,"responseObject":` + resp
	}
	return line + `,"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.001000Z"}`
}

func enc(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

const annotation = `"kubectl.kubernetes.io/last-applied-configuration":"{\"apiVersion\":\"v1\",\"data\":{\"password\":\"bGEtcGFzcw==\"},\"kind\":\"Secret\"}\n"`

// Every shape of body that carries a credential, decided by the resource:
// the values are gone, the digests are of the values, and the event's
// fields are those of the redacted line.
func TestShapes(t *testing.T) {
	for _, c := range []struct {
		name, line string
		gone       []string // values that must not remain
		digests    []string // values whose digest must be there
		values     int
		sealed     int
	}{
		{"strategic-merge patch", event("secrets", "", `{"data":{"password":"`+enc("p1")+`"},"metadata":{"annotations":{`+annotation+`}}}`, ""),
			[]string{enc("p1"), "bGEtcGFzcw=="}, []string{"p1"}, 2, 0},
		{"both bodies shrink", event("secrets", "", `{"metadata":{"annotations":{`+annotation+`}},"data":{"k":"`+enc("p2")+`"}}`, `{"metadata":{"annotations":{`+annotation+`}}}`),
			[]string{"bGEtcGFzcw==", enc("p2")}, []string{"p2"}, 3, 0},
		{"merge patch, stringData", event("secrets", "", `{"stringData":{"password":"plain"}}`, ""), []string{"plain"}, []string{"plain"}, 1, 0},
		{"merge patch, escaped key", event("secrets", "", `{"d\u0061ta":{"password":"`+enc("esc")+`"}}`, ""), []string{enc("esc")}, []string{"esc"}, 1, 0},
		{"merge patch, data not a map", event("secrets", "", `{"data":"`+enc("whole")+`"}`, ""), []string{enc("whole")}, []string{"whole"}, 1, 0},
		{"merge patch, deleted key", event("secrets", "", `{"data":{"password":null}}`, ""), nil, nil, 0, 0},
		{"JSON patch of /data/password", event("secrets", "", `[{"op":"replace","path":"/data/password","value":"`+enc("jp")+`"}]`, ""),
			[]string{enc("jp")}, []string{"jp"}, 1, 0},
		{"JSON patch of /stringData/x", event("secrets", "", `[{"op":"add","path":"/stringData/x","value":"sd"}]`, ""), []string{`"sd"`}, []string{"sd"}, 1, 0},
		{"JSON patch of /data, value first", event("secrets", "", `[{"value":{"a":"`+enc("v1")+`","b":"`+enc("v2")+`"},"op":"add","path":"/data"}]`, ""),
			[]string{enc("v1"), enc("v2")}, []string{"v1", "v2"}, 2, 0},
		{"JSON patch of the annotation", event("secrets", "", `[{"op":"add","path":"/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration","value":"{\"data\":{\"k\":\"bGEtcGFzcw==\"}}"}]`, ""),
			[]string{"bGEtcGFzcw=="}, nil, 1, 0},
		{"JSON patch with an escaped path", event("secrets", "", `[{"op":"add","path":"/d\u0061ta/k","value":"`+enc("ep")+`"}]`, ""), []string{enc("ep")}, []string{"ep"}, 1, 0},
		{"JSON patch of a label", event("secrets", "", `[{"op":"add","path":"/metadata/labels/app","value":"web"}]`, ""), nil, nil, 0, 0},
		{"JSON patch replacing the object", event("secrets", "", `[{"op":"replace","path":"","value":{"data":{"k":"`+enc("root")+`"}}}]`, ""),
			[]string{enc("root")}, []string{"root"}, 1, 0},
		{"TokenReview", event("tokenreviews", "", `{"kind":"TokenReview","spec":{"token":"tok-123"}}`, `{"kind":"TokenReview","spec":{"token":"tok-123"},"status":{"authenticated":true}}`),
			[]string{"tok-123"}, []string{"tok-123"}, 2, 0},
		{"TokenRequest", event("serviceaccounts", "token", `{"spec":{"audiences":["a"]},"status":{"token":""}}`, `{"status":{"token":"minted"}}`),
			[]string{"minted"}, []string{"minted"}, 1, 0},
		{"a ServiceAccount is not a token", event("serviceaccounts", "", `{"metadata":{"name":"token"},"secrets":[{"name":"x"}]}`, ""), nil, nil, 0, 0},
		{"bad syntax is sealed", event("secrets", "", `{"data":{"k":"`+enc("bad")+`" "x":1}}`, ""), []string{enc("bad")}, nil, 0, 1},
		{"a string body is sealed", event("secrets", "", `"data: {k: c2VjcmV0}"`, ""), []string{"c2VjcmV0"}, nil, 0, 1},
		{"too deep is sealed", event("secrets", "", strings.Repeat(`{"a":`, 300)+`{"data":{"k":"deep"}}`+strings.Repeat(`}`, 300), ""), []string{"deep"}, nil, 0, 1},
		{"the response sealed, the request redacted", event("secrets", "", `{"data":{"k":"`+enc("req")+`"}}`, `{"data":{"k":"x"]}`), []string{enc("req"), `"x"`}, []string{"req"}, 1, 1},
		{"a ConfigMap is left alone", event("configmaps", "", `{"data":{"k":"v"}}`, ""), nil, nil, 0, 0},
		{"a Secret in another resource, by kind", event("widgets", "", `{"kind":"Secret","data":{"k":"`+enc("kind")+`"}}`, ""), []string{enc("kind")}, []string{"kind"}, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			line := []byte(c.line)
			var ev auditjson.Event
			if err := auditjson.Parse(line, &ev); err != nil {
				t.Fatalf("test line does not parse: %v", err)
			}
			if want := c.values+c.sealed > 0; Candidate(line, &ev) != want && want {
				t.Fatalf("not a candidate")
			}
			out, res := Event([]byte("prefix"), line, &ev)
			if res.Values != c.values || res.Sealed != c.sealed {
				t.Errorf("%d values, %d bodies sealed; want %d, %d", res.Values, res.Sealed, c.values, c.sealed)
			}
			if !res.Changed() {
				if string(out) != "prefix" {
					t.Errorf("unchanged, yet appended %s", out)
				}
				return
			}
			out = out[len("prefix"):]
			for _, v := range c.gone {
				if strings.Contains(string(out), v) {
					t.Errorf("%s remains: %s", v, out)
				}
			}
			for _, v := range c.digests {
				if !strings.Contains(string(out), sha(v)) {
					t.Errorf("no digest of %s: %s", v, out)
				}
			}
			if c.sealed > 0 && !strings.Contains(string(out), `{"auditrailRedacted":"unparseable","sha256":"`) {
				t.Errorf("no marker: %s", out)
			}
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
			var want auditjson.Event
			if err := auditjson.Parse(out, &want); err != nil || !reflect.DeepEqual(ev, want) {
				t.Errorf("the event's fields are not those of the redacted line (%v):\n%+v\n%+v", err, ev, want)
			}
		})
	}
}

// Whatever the bodies, Event does not panic, and leaves the line alone or
// returns a line whose fields are the event's, valid JSON if the line was.
func FuzzEvent(f *testing.F) {
	f.Add("secrets", "", `{"data":{"k":"eA=="},"metadata":{"annotations":{`+annotation+`}}}`)
	f.Add("secrets", "", `[{"op":"add","path":"/d\u0061ta","value":{"k":"eA=="}}]`)
	f.Add("tokenreviews", "", `{"spec":{"token":"t"}}`)
	f.Add("serviceaccounts", "token", `{"status":{"token":"t"}}`)
	f.Add("widgets", "", `{"kind":"Secret","data":{"k":"eA=="}}`)
	f.Fuzz(func(t *testing.T, resource, sub, body string) {
		line := []byte(event(resource, sub, body, body))
		var ev auditjson.Event
		if auditjson.Parse(line, &ev) != nil {
			return
		}
		out, res := Event(nil, line, &ev)
		if !res.Changed() {
			return
		}
		if json.Valid(line) && !json.Valid(out) {
			t.Fatalf("not valid JSON: %s", out)
		}
		var want auditjson.Event
		if err := auditjson.Parse(out, &want); err != nil || !reflect.DeepEqual(ev, want) {
			t.Fatalf("the event's fields are not those of the redacted line (%v): %s", err, out)
		}
	})
}
