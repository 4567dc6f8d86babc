package ocsf

import (
	"encoding/json"
	"strings"
	"testing"
)

var validCases = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+10`, `-12.0E-3`, `true`, `false`, `null`, ` {"a" : [1, {"b":null}] } `,
	`"\"\\\/\b\f\n\r\t\u00e9\uD83D"`, `"ñ long string with no escapes at all, past eight bytes"`, `[[[[]]]]`,
	`{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":1 "b":2}`, `{a:1}`, `01`, `1.`, `.5`, `-`, `1e`, `+1`, `tru`, `nul`,
	`"\q"`, `"\u12"`, `"\u12g4"`, "\"tab\there\"", "\"nl\nhere\"", `"open`, `{"a":1}}`, `{} {}`, `[1 2]`, ``, ` `,
	`{"a":[}`, `[1}`, `{"a":1]`, strings.Repeat("[", 100) + strings.Repeat("]", 100), `"` + strings.Repeat(`\\`, 9) + `"`,
	`"12345678\u0041bcdefgh\"ij"`, "\"1234567\x01\"", `{"":""}`, `[-]`, `[0x1]`, `1 `, "\xff", `"\xff"`,
}

// valid agrees with json.Valid.
func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range validCases {
		if got, want := valid([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("valid(%q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := valid(b), json.Valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
