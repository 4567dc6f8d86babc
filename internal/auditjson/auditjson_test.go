package auditjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditrail/auditrail/internal/benchcorpus"
)

const sample = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"0f4c6b41-2f7b-4a4f-9a69-0d2b5c1c1a11","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/secrets/bootstrap-token-abc","verb":"get","user":{"username":"system:serviceaccount:kube-system:generic","uid":"7d","groups":["system:serviceaccounts","system:authenticated"]},"sourceIPs":["10.0.0.5"],"userAgent":"kube-controller-manager/v1.30.0","objectRef":{"resource":"secrets","namespace":"kube-system","name":"bootstrap-token-abc","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestObject":{"kind":"Secret","data":{"k":"dj1cIn0ifQ=="},"metadata":{"name":"x\"y"}},"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:00:00.002000Z","annotations":{"authorization.k8s.io/decision":"allow"}}`

func TestParseEvent(t *testing.T) {
	var ev Event
	if err := Parse([]byte(sample), &ev); err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"kind":         {string(ev.Kind), "Event"},
		"level":        {string(ev.Level), "Metadata"},
		"auditID":      {string(ev.AuditID), "0f4c6b41-2f7b-4a4f-9a69-0d2b5c1c1a11"},
		"stage":        {string(ev.Stage), "ResponseComplete"},
		"verb":         {string(ev.Verb), "get"},
		"username":     {string(ev.Username), "system:serviceaccount:kube-system:generic"},
		"resource":     {string(ev.Resource), "secrets"},
		"namespace":    {string(ev.Namespace), "kube-system"},
		"name":         {string(ev.Name), "bootstrap-token-abc"},
		"subresource":  {string(ev.Subresource), ""},
		"stageTs":      {string(ev.StageTimestamp), "2026-11-21T10:00:00.002000Z"},
		"receivedTs":   {string(ev.RequestReceivedTimestamp), "2026-11-21T10:00:00.000000Z"},
		"decision":     {string(ev.Decision), "allow"},
		"request":      {string(ev.RequestObject), `{"kind":"Secret","data":{"k":"dj1cIn0ifQ=="},"metadata":{"name":"x\"y"}}`},
		"response":     {string(ev.ResponseObject), ""},
		"impersonated": {string(ev.ImpersonatedUser), ""},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", name, c[0], c[1])
		}
	}
	if ev.Code != 200 {
		t.Errorf("code = %d, want 200", ev.Code)
	}
}

func TestParseNestedNamesDoNotLeak(t *testing.T) {
	// "name" and "verb" inside requestObject must not be mistaken for the
	// top-level or objectRef fields.
	line := `{"requestObject":{"verb":"delete","objectRef":{"name":"evil"},"annotations":{"authorization.k8s.io/decision":"forbid"}},"verb":"get","objectRef":{"name":"good"}}`
	var ev Event
	if err := Parse([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	if string(ev.Verb) != "get" || string(ev.Name) != "good" || ev.Decision != nil {
		t.Fatalf("verb=%q name=%q decision=%q", ev.Verb, ev.Name, ev.Decision)
	}
}

// TestParseArrayBodies checks that a body that is an array, as the JSON
// patch of a PATCH is, is kept like an object, with and without blocks;
// before, a JSON patch left RequestObject empty and the rules blind. A body
// of any other type is kept too, so that redaction can judge it; only null
// is left empty.
func TestParseArrayBodies(t *testing.T) {
	for name, c := range map[string]struct{ line, request, response string }{
		"json patch": {`{"verb":"patch","requestObject":[{"op":"add","path":"/spec/hostPID","value":true}],"responseObject":{"kind":"Pod"}}`,
			`[{"op":"add","path":"/spec/hostPID","value":true}]`, `{"kind":"Pod"}`},
		"nested": {`{"requestObject":[[1,{"a":"]"}],[]],"verb":"patch"}`, `[[1,{"a":"]"}],[]]`, ""},
		"empty":  {`{"requestObject":[],"verb":"patch"}`, `[]`, ""},
		"long": {`{"requestObject":[` + strings.Repeat(`{"op":"remove","path":"/x"},`, 9) + `{}],"verb":"patch"}`,
			`[` + strings.Repeat(`{"op":"remove","path":"/x"},`, 9) + `{}]`, ""},
		"scalar":     {`{"requestObject":"x","responseObject":null,"verb":"patch"}`, `"x"`, ""},
		"not a body": {`{"objectRef":{"requestObject":[1]},"verb":"patch"}`, "", ""},
	} {
		for _, blocks := range []bool{true, false} {
			var ev Event
			if err := parse([]byte(c.line), &ev, blocks); err != nil {
				t.Fatalf("%s (blocks %v): %v", name, blocks, err)
			}
			if string(ev.RequestObject) != c.request || string(ev.ResponseObject) != c.response || string(ev.Verb) != "patch" {
				t.Errorf("%s (blocks %v): request %q response %q verb %q, want %q %q patch", name, blocks,
					ev.RequestObject, ev.ResponseObject, ev.Verb, c.request, c.response)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]struct {
		line string
		want error
	}{
		"not json":        {"hello world", ErrSyntax},
		"truncated":       {sample[:len(sample)/2], ErrSyntax},
		"array":           {`[1,2]`, ErrSyntax},
		"trailing":        {`{"a":1} x`, ErrSyntax},
		"unclosed string": {`{"a":"b}`, ErrSyntax},
		"invalid utf8":    {"{\"a\":\"\xff\xfe\"}", ErrInvalidUTF8},
		"nul":             {"{\"a\":\"\x00\"}", ErrNUL},
		"crlf":            {`{"a":1}` + "\r", ErrCRLF},
		// Bytes past the last string, in blocks no string reached.
		"nul after the last string":  {`{"a":` + strings.Repeat("1", 70) + "\x00}", ErrNUL},
		"utf8 after the last string": {`{"a":` + strings.Repeat("1", 70) + "\xff}", ErrInvalidUTF8},
		"empty":                      {"", ErrSyntax},
		"missing value":              {`{"a":}`, ErrSyntax},
		"missing colon":              {`{"a" 1}`, ErrSyntax},
	}
	for name, c := range cases {
		var ev Event
		if err := Parse([]byte(c.line), &ev); !errors.Is(err, c.want) {
			t.Errorf("%s: Parse = %v, want %v", name, err, c.want)
		}
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	line := []byte(sample)
	var ev Event
	allocs := testing.AllocsPerRun(100, func() { Parse(line, &ev) })
	if allocs != 0 {
		t.Fatalf("Parse allocates %v times per line", allocs)
	}
}

func TestFindAuditID(t *testing.T) {
	if got := FindAuditID([]byte(sample[:120])); string(got) != "0f4c6b41-2f7b-4a4f-9a69-0d2b5c1c1a11" {
		t.Fatalf("FindAuditID = %q", got)
	}
	if got := FindAuditID([]byte(sample[:70])); got != nil {
		t.Fatalf("FindAuditID on a cut id = %q, want nil", got)
	}
}

// FuzzParse checks that Parse never panics, accepts every JSON object that
// encoding/json accepts, and extracts the same auditID; and that looking at
// 64-byte blocks and a byte at a time give the same result.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"auditID":"a\"b","user":{"username":1}}`))
	f.Add([]byte(`{"responseStatus":{"code":"x"}}`))
	f.Add([]byte(`{"verb":"` + strings.Repeat("a", 55) + `\\\"","auditID":"x"}`))
	f.Add([]byte(`{"verb":"` + strings.Repeat("a", 120) + "\x00" + `","auditID":"x"}`))
	f.Add([]byte(`{"verb":"` + strings.Repeat("a", 120) + "\xff" + `","auditID":"x"}    `))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev, scalar Event
		err := parse(b, &ev, true)
		if serr := parse(b, &scalar, false); err != serr || !reflect.DeepEqual(ev, scalar) {
			t.Fatalf("%q: blocks give %v %+v, a byte at a time %v %+v", b, err, ev, serr, scalar)
		}
		var m map[string]any
		if json.Valid(b) && utf8.Valid(b) && json.Unmarshal(b, &m) == nil && !strings.HasSuffix(string(b), "\r") {
			if err != nil {
				t.Fatalf("Parse rejected valid JSON object %q: %v", b, err)
			}
			if id, ok := m["auditID"].(string); ok && !strings.Contains(string(ev.AuditID), `\`) && id != string(ev.AuditID) {
				t.Fatalf("auditID = %q, encoding/json says %q", ev.AuditID, id)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	line := []byte(sample)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	var ev Event
	for b.Loop() {
		if err := Parse(line, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// skipScalar is the byte-by-byte reference for skipContainer: a backslash
// escapes the next byte, in a string or not.
func skipScalar(b []byte) (int, bool) {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return 0, false
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

func FuzzSkipContainer(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"a":"\\"}"}`))
	f.Add([]byte(`[{"x":"]}"},[]] trailing`))
	f.Add([]byte(strings.Repeat(`{"k":"\"`, 20) + strings.Repeat(`"}`, 20)))
	f.Add([]byte(`{"` + strings.Repeat("a", 62) + `\` + `"}"}`))
	f.Add([]byte(`{"` + strings.Repeat("a", 61) + `\` + `"}"}`))
	f.Add([]byte(`{"` + strings.Repeat("a", 60) + `\\\` + `"}"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
			return
		}
		want, wantOK := skipScalar(b)
		p := parser{b: b, blocks: true, base: -64}
		ok := p.skipBlocks()
		if ok != wantOK || (ok && p.i != want) {
			t.Fatalf("skipBlocks(%q) = %d, %v; want %d, %v", b, p.i, ok, want, wantOK)
		}
		p = parser{b: b}
		ok = p.skipStrings()
		if ok != wantOK || (ok && p.i != want) {
			t.Fatalf("skipStrings(%q) = %d, %v; want %d, %v", b, p.i, ok, want, wantOK)
		}
	})
}

// Strings, escapes and brackets at every offset around the 64-byte blocks.
func TestSkipContainerAtEveryOffset(t *testing.T) {
	for pre := 0; pre < 140; pre++ {
		for _, mid := range []string{`"}"`, `"\\"`, `"\""`, `"a\\\"]"`, `[]`, `{"x":[1,{}]}`, `"` + strings.Repeat(`\\`, 40) + `"`} {
			body := `{"p":"` + strings.Repeat("x", pre) + `","m":` + mid + `,"q":[` + strings.Repeat("1,", pre%70) + `2]}`
			in := []byte(body + `,"after":1}`)
			if want, ok := skipScalar(in); !ok || want != len(body) {
				t.Fatalf("reference: %q -> %d, %v", body, want, ok)
			}
			for _, blocks := range []bool{true, false} {
				p := parser{b: in, blocks: blocks, base: -64}
				if !p.skipContainer() || p.i != len(body) {
					t.Fatalf("skipContainer(%q), blocks %v = %d; want %d", in, blocks, p.i, len(body))
				}
				p = parser{b: in[:len(body)-1], blocks: blocks, base: -64}
				if p.skipContainer() {
					t.Fatalf("skipContainer(%q), blocks %v accepted an unterminated container", in[:len(body)-1], blocks)
				}
			}
		}
	}
}

// Escapes, non-ASCII bytes and NULs at every offset around the 64-byte
// blocks, in the top-level strings that Parse extracts.
func TestParseAtEveryOffset(t *testing.T) {
	type want struct {
		verb string
		err  error
	}
	mids := map[string]want{
		`a\"b`:            {`a\"b`, nil},
		`\\`:              {`\\`, nil},
		`x\\\"y`:          {`x\\\"y`, nil},
		"caf\\u00e9 café": {"caf\\u00e9 café", nil},
		"\x00":            {"", ErrNUL},
		"\xff\xfe":        {"", ErrInvalidUTF8},
	}
	for pre := 0; pre < 140; pre++ {
		for mid, w := range mids {
			line := []byte(`{"kind":"Event","requestURI":"` + strings.Repeat("u", pre) + `","verb":"` + mid + `","requestObject":{"s":"}\""},"auditID":"id-1"}` + strings.Repeat(" ", pre%3))
			for _, blocks := range []bool{true, false} {
				var ev Event
				err := parse(line, &ev, blocks)
				if err != w.err || string(ev.Verb) != w.verb || (err == nil && string(ev.AuditID) != "id-1") {
					t.Fatalf("parse(%q), blocks %v: %v, verb %q, auditID %q; want %v, verb %q", line, blocks, err, ev.Verb, ev.AuditID, w.err, w.verb)
				}
			}
		}
	}
}

func TestMasks64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`"\{}[]az :,` + "\x00\x7f\x80\xff\x5b\x7b\x3b")
	var b [64]byte
	for n := range 20000 {
		for k := range b {
			b[k] = alphabet[r.IntN(len(alphabet))]
			if n%2 == 1 && (b[k] >= 0x80 || b[k] == 0) {
				b[k] = 'z' // half of the blocks have no odd bytes
			}
		}
		var want [5]uint64
		wantNUL := false
		for k, c := range b {
			for m, set := range []string{`"`, `\`, `{[`, `}]`} {
				if strings.IndexByte(set, c) >= 0 {
					want[m] |= 1 << k
				}
			}
			if c >= 0x80 {
				want[4] |= 1 << k
			}
			wantNUL = wantNUL || c == 0
		}
		for name, masks := range map[string]func(*[64]byte) (uint64, uint64, uint64, uint64, uint64, uint64){"masks64": masks64, "masks64AVX2": masks64AVX2} {
			if name == "masks64AVX2" && !hasAVX2 {
				continue
			}
			q, e, o, c, h, nul := masks(&b)
			if got := [5]uint64{q, e, o, c, h}; got != want || (nul != 0) != wantNUL {
				t.Fatalf("%s(%q) = %x, NUL %x; want %x, NUL %v", name, b, got, nul, want, wantNUL)
			}
		}
	}
}

// BenchmarkParseCorpus parses the first 32 MiB of the audit log named by
// AUDITRAIL_BENCH_CORPUS, such as scripts/bench.sh's cached corpus:
//
//	AUDITRAIL_BENCH_CORPUS=$PWD/testdata-cache/corpus-1g-k8s/audit.log go test -bench ParseCorpus ./internal/auditjson
func BenchmarkParseCorpus(b *testing.B) {
	data := benchcorpus.Head(b, 32<<20)
	if len(data) == 0 {
		b.Skip(benchcorpus.Env + " is not set")
	}
	data = data[:len(data)-1] // the last newline
	lines := bytes.Split(data, []byte{'\n'})
	b.SetBytes(int64(len(data)))
	var ev Event
	for b.Loop() {
		for _, l := range lines {
			if err := Parse(l, &ev); err != nil {
				b.Fatalf("%v: %.100q", err, l)
			}
		}
	}
}

// Bodies of any type are captured, and Rebase moves fields to a copy.
func TestBodiesAndRebase(t *testing.T) {
	for _, c := range []struct{ line, req, resp string }{
		{`{"requestObject":[{"op":"add","path":"/data/x","value":"eA=="}],"stage":"x"}`, `[{"op":"add","path":"/data/x","value":"eA=="}]`, ""},
		{`{"requestObject":"a string","responseObject":7}`, `"a string"`, "7"},
		{`{"requestObject":null,"responseObject":{"a":1}}`, "", `{"a":1}`},
	} {
		line := []byte(c.line)
		var ev Event
		if err := Parse(line, &ev); err != nil || string(ev.RequestObject) != c.req || string(ev.ResponseObject) != c.resp {
			t.Errorf("%s: request %q, response %q, %v", c.line, ev.RequestObject, ev.ResponseObject, err)
		}
		cp := append([]byte("xx"), line...)[2:]
		ev.Rebase(line, cp, func(off int) int { return off })
		var want Event
		Parse(cp, &want)
		if Offset(cp, ev.RequestObject) != Offset(cp, want.RequestObject) || Offset(cp, ev.Stage) != Offset(cp, want.Stage) {
			t.Errorf("%s: fields not moved to the copy", c.line)
		}
	}
}
