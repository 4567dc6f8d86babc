package rules

import (
	"strings"
	"testing"
)

// patchEvent is event as a PATCH whose requestObject is body, as
// kube-apiserver logs it: the patch as sent.
func patchEvent(body string) string {
	line := strings.Replace(event, `"verb":"create"`, `"verb":"patch"`, 1)
	return strings.Replace(line, `"requestObject":{"kind":"ConfigMap","metadata":{"labels":{"tier":"db"}},"data":{"mode":"debug","n":3,"on":true}}`,
		`"requestObject":`+body, 1)
}

// TestPatchBodies checks conditions on requestObject against the three
// kinds of patch body: JSON patches (an array of operations on JSON
// pointers), merge and strategic merge patches (objects shaped like the
// object), keys spelled with escapes included.
func TestPatchBodies(t *testing.T) {
	yes, no := true, false
	mode := Spec{Fields: []FieldSpec{{Path: "requestObject.data.mode", Values: []string{"debug"}}}}
	label := func(key string) Spec {
		return Spec{Fields: []FieldSpec{{Path: "requestObject.metadata.labels." + key, Exists: &yes}}}
	}
	for name, c := range map[string]struct {
		spec Spec
		body string
		want bool
	}{
		"json patch add":              {mode, `[{"op":"add","path":"/data/mode","value":"debug"}]`, true},
		"json patch replace":          {mode, `[{"op":"replace","path":"/data/mode","value":"debug"}]`, true},
		"json patch other value":      {mode, `[{"op":"replace","path":"/data/mode","value":"prod"}]`, false},
		"json patch remove":           {mode, `[{"op":"remove","path":"/data/mode"}]`, false},
		"json patch test":             {mode, `[{"op":"test","path":"/data/mode","value":"debug"}]`, false},
		"json patch parent":           {mode, `[{"op":"add","path":"/data","value":{"mode":"debug"}}]`, true},
		"json patch root":             {mode, `[{"op":"replace","path":"","value":{"data":{"mode":"debug"}}}]`, true},
		"json patch other key":        {mode, `[{"op":"add","path":"/data/node","value":"debug"}]`, false},
		"json patch escaped path":     {mode, `[{"op":"add","path":"/data/m\u006fde","value":"debug"}]`, true},
		"json patch escaped value":    {mode, `[{"op":"add","path":"/data/mode","value":"d\u0065bug"}]`, true},
		"json patch copy":             {mode, `[{"op":"copy","from":"/data/other","path":"/data/mode"}]`, true},
		"json patch move away":        {mode, `[{"op":"move","from":"/data/mode","path":"/data/other"}]`, false},
		"json patch array element":    {Spec{Fields: []FieldSpec{{Path: "requestObject.spec.containers.image", Values: []string{"evil*"}}}}, `[{"op":"replace","path":"/spec/containers/1/image","value":"evil:1"}]`, true},
		"json patch appended element": {Spec{Fields: []FieldSpec{{Path: "requestObject.spec.containers.image", Values: []string{"evil*"}}}}, `[{"op":"add","path":"/spec/containers/-","value":{"image":"evil:1"}}]`, true},
		"json patch deeper change":    {Spec{Fields: []FieldSpec{{Path: "requestObject.spec.volumes.hostPath", Exists: &yes}}}, `[{"op":"replace","path":"/spec/volumes/0/hostPath/path","value":"/"}]`, true},
		"json patch key named 0":      {label("0"), `[{"op":"add","path":"/metadata/labels/0","value":"x"}]`, true},
		"json patch ~1 is a slash":    {label("a/b"), `[{"op":"add","path":"/metadata/labels/a~1b","value":"x"}]`, true},
		"json patch ~0 is a tilde":    {label("a~b"), `[{"op":"add","path":"/metadata/labels/a~0b","value":"x"}]`, true},
		"json patch ~01 is ~1":        {label("a/b"), `[{"op":"add","path":"/metadata/labels/a~01b","value":"x"}]`, false},
		"json patch absent key":       {Spec{Fields: []FieldSpec{{Path: "requestObject.data.mode", Exists: &no}}}, `[{"op":"add","path":"/data/mode","value":"x"}]`, false},
		"merge patch":                 {mode, `{"data":{"mode":"debug"}}`, true},
		"merge patch escaped key":     {mode, `{"data":{"m\u006fde":"debug"}}`, true},
		"merge patch escaped other":   {mode, `{"data":{"m\u006fde":"prod"}}`, false},
		"merge patch escaped quote":   {mode, `{"data":{"x":"\"mode\"","m\u006fdes":"debug"}}`, false},
		"merge patch html escapes":    {mode, `{"data":{"x":"a \u0026\u0026 b","mode":"prod"}}`, false},
	} {
		if got := match(t, c.spec, patchEvent(c.body)); got != c.want {
			t.Errorf("%s: matched %v, want %v", name, got, c.want)
		}
	}
}

// TestEscapesSpell checks which characters a body spells with escapes:
// those of a key decide whether not finding its needle proves anything.
func TestEscapesSpell(t *testing.T) {
	for _, c := range []struct {
		text, key string
		want      bool
	}{
		{`{"host\u0050ID":true}`, "hostPID", true},
		{`{"host\u0070id":true}`, "hostPID", false},
		{`{"\u0068ostPID":true}`, "hostPID", true},
		{`{"cmd":"a \u0026\u0026 b \u003c c"}`, "hostPID", false},
		{`{"a":"{\"hostPID\":true}\n"}`, "hostPID", false},
		{`{"x\\u0050":1}`, "hostPID", false},
		{`{"a\/b":1}`, "a/b", true},
		{`{"a\"b":1}`, `a"b`, true},
		{`{"a\\b":1}`, `a\b`, true},
		{`{"a\tb":1}`, "a\tb", true},
		{`{"caf\u00e9":1}`, "café", true},
		{`{"caf\u00e9":1}`, "cafe", false},
		{`{"x":"\u12"}`, "café", true},
		{`{"x":"\`, "hostPID", false},
		{`{"hostPID":true}`, "hostPID", false},
	} {
		var e escapes
		e.scan([]byte(c.text))
		if got := e.spells([]byte(c.key)); got != c.want {
			t.Errorf("%s spells a character of %q: %v, want %v", c.text, c.key, got, c.want)
		}
	}
}
