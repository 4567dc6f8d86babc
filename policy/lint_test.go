package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/apis/audit"
)

// The policy we ship for kube-apiserver is the reference: no finding.
func TestDeployPolicyIsClean(t *testing.T) {
	data, err := os.ReadFile("../deploy/audit-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	findings, err := Lint(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("deploy/audit-policy.yaml: %s", f)
	}
}

// Each policy in testdata has the findings its "# want:" line lists, as
// rule:line, and no other.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for line := range strings.Lines(string(data)) {
				if w, ok := strings.CutPrefix(line, "# want:"); ok {
					want = strings.Fields(w)
				}
			}
			findings, err := Lint(data)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, f := range findings {
				got = append(got, f.Rule+":"+strconv.Itoa(f.Line))
				if f.Message == "" || (f.Severity != SeverityError && f.Severity != SeverityWarning) {
					t.Errorf("finding %+v lacks a message or a severity", f)
				}
			}
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Errorf("findings %v, want %v:\n%v", got, want, findings)
			}
		})
	}
}

// A file that is not an audit.k8s.io/v1 Policy is an error, not a
// finding; one kube-apiserver would refuse is an "invalid" finding.
func TestNotAPolicy(t *testing.T) {
	for _, doc := range []string{
		"not: [yaml",
		"apiVersion: v1\nkind: Pod\n",
		"apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: Metadata}]\n",
		"kind: Policy\nrules: [{level: Metadata}]\n",
	} {
		if _, err := Lint([]byte(doc)); !errors.Is(err, ErrNotPolicy) {
			t.Errorf("%q: error %v, want ErrNotPolicy", doc, err)
		}
	}
	findings, err := Lint([]byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules: []\n"))
	if err != nil || len(findings) != 1 || findings[0].Rule != "invalid" || findings[0].Line != 4 {
		t.Errorf("policy without rules: %v, %v; want one invalid finding on line 4", findings, err)
	}
}

// The evaluator reports the first rule that matches, and the level
// kube-apiserver's own evaluator gives, also when an earlier rule at a
// different level matches a wider set.
func TestDecideFirstMatchWins(t *testing.T) {
	p := &audit.Policy{Rules: []audit.PolicyRule{
		{Level: audit.LevelNone, Users: []string{"bob"}},
		{Level: audit.LevelRequest, Resources: []audit.GroupResources{{Resources: []string{"pods/*"}}}},
		{Level: audit.LevelRequestResponse, Resources: []audit.GroupResources{{Resources: []string{"pods/exec"}}}},
	}}
	e := newEvaluator(p)
	alice, bob := identity{user: "alice"}, identity{user: "bob"}
	for _, tc := range []struct {
		pr    probe
		level audit.Level
		rule  int
	}{
		{probe{id: alice, verb: "create", namespace: "default", resource: "pods", subresource: "exec"}, audit.LevelRequest, 1},
		{probe{id: bob, verb: "create", namespace: "default", resource: "pods", subresource: "exec"}, audit.LevelNone, 0},
		{probe{id: alice, verb: "create", namespace: "default", resource: "pods"}, audit.LevelRequest, 1}, // "pods/*" matches pods too
		{probe{id: alice, verb: "create", namespace: "default", resource: "services"}, audit.LevelNone, -1},
		{probe{id: alice, verb: "get", path: "/healthz"}, audit.LevelNone, -1},
	} {
		level, rule := e.decide(tc.pr)
		if level != tc.level || rule != tc.rule {
			t.Errorf("%s: level %s by rule %d, want %s by %d", tc.pr, level, rule, tc.level, tc.rule)
		}
	}
	if p.Rules[0].Level != audit.LevelNone || len(p.Rules[1].OmitStages) != 0 {
		t.Errorf("newEvaluator changed the policy: %+v", p.Rules)
	}
}
