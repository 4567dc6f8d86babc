package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policy lint exits as verify does: 0 clean, 1 findings, 2 when it cannot
// run; findings name the file and line.
func TestPolicyLintExitCodes(t *testing.T) {
	dir := t.TempDir()
	notPolicy := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(notPolicy, []byte("apiVersion: v1\nkind: Pod\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"policy", "lint", "../../deploy/audit-policy.yaml"}, 0, "OK"},
		{[]string{"policy", "lint", "../../policy/testdata/credential-secrets.yaml"}, 1,
			"../../policy/testdata/credential-secrets.yaml:23: error credential-body:"},
		{[]string{"policy", "lint", filepath.Join(dir, "missing.yaml")}, 2, ""},
		{[]string{"policy", "lint", notPolicy}, 2, ""},
		{[]string{"policy", "lint"}, 2, ""},
		{[]string{"policy", "check", "x"}, 2, ""},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d and %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out)
		}
	}
}

func TestPolicyLintJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"policy", "lint", "--json", "../../policy/testdata/noise-health.yaml"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	var rep struct {
		Findings []struct {
			Rule, Severity string
			Line           int
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Rule != "noise-at-request" || rep.Findings[0].Line != 8 || rep.Findings[0].Severity != "warning" {
		t.Errorf("findings %+v, want noise-at-request, warning, line 8", rep.Findings)
	}
}
