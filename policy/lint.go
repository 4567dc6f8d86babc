package policy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"

	"k8s.io/apiserver/pkg/apis/audit"
	auditinternal "k8s.io/apiserver/pkg/audit"
	auditpolicy "k8s.io/apiserver/pkg/audit/policy"
)

// Severities of findings. Every finding makes Lint's caller exit non-zero;
// the severity says how much it costs.
const (
	// SeverityError: credentials leak, detections go blind, or
	// kube-apiserver refuses the policy.
	SeverityError = "error"
	// SeverityWarning: volume, cost or a rule that does nothing.
	SeverityWarning = "warning"
)

// Finding is one problem of a policy.
type Finding struct {
	// Rule is the linter rule's ID, such as "credential-body".
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	// Line is the line in the policy file: of the policy rule that
	// decided, or of the key the finding is about.
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (f Finding) String() string {
	return fmt.Sprintf("line %d: %s %s: %s", f.Line, f.Severity, f.Rule, f.Message)
}

// Lint decodes data as kube-apiserver does and returns the findings,
// ordered by line. The error is not nil only when data is not an audit
// policy at all (ErrNotPolicy); a policy kube-apiserver would refuse is an
// "invalid" finding.
func Lint(data []byte) ([]Finding, error) {
	p, strictErr, err := decode(data)
	if err != nil {
		return nil, err
	}
	l := &linter{lines: parseLines(data), policy: p}
	if strictErr != nil {
		l.strictness(strictErr)
	}
	if errs := validate(p); len(errs) > 0 {
		for _, e := range errs {
			l.add("invalid", SeverityError, l.lines.of(e.path), "%s", e.msg)
		}
		return l.sorted(), nil
	}
	l.eval = newEvaluator(p)
	l.probes = newProbeSet(p)
	for _, check := range []func(){l.credentials, l.catchAll, l.unreachable, l.omitStages, l.noise, l.coverage} {
		check()
	}
	return l.sorted(), nil
}

type linter struct {
	lines    lines
	policy   *audit.Policy
	eval     *evaluator
	probes   *probeSet
	findings []Finding
	seen     map[[2]string]bool
}

// strictness reports what strict decoding found (unknown or duplicate
// keys), which kube-apiserver only warns about and ignores: a misspelt
// selector silently widens its rule.
func (l *linter) strictness(err error) {
	errs := []error{err}
	if se, ok := err.(interface{ Errors() []error }); ok {
		errs = se.Errors()
	}
	for _, e := range errs {
		line := 1
		if m := quoted.FindStringSubmatch(e.Error()); m != nil {
			line = l.lines.of(m[1])
		}
		l.add("strict-decoding", SeverityWarning, line, "%v: kube-apiserver ignores it and loads the rest", e)
	}
}

// quoted finds the field path in the strict decoder's messages (unknown
// field "rules[1].namespace").
var quoted = regexp.MustCompile(`field "([^"]+)"`)

func (l *linter) add(rule, severity string, line int, format string, args ...any) {
	l.findings = append(l.findings, Finding{Rule: rule, Severity: severity, Line: line, Message: fmt.Sprintf(format, args...)})
}

// addOnce adds a finding unless rule already has one at key.
func (l *linter) addOnce(rule, key, severity string, line int, format string, args ...any) {
	if l.seen == nil {
		l.seen = map[[2]string]bool{}
	}
	if l.seen[[2]string{rule, key}] {
		return
	}
	l.seen[[2]string{rule, key}] = true
	l.add(rule, severity, line, format, args...)
}

func (l *linter) sorted() []Finding {
	slices.SortStableFunc(l.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule))
	})
	return l.findings
}

// ruleLine returns the line of rules[i], or of the rules key when no rule
// decided (i < 0).
func (l *linter) ruleLine(i int) int {
	if i < 0 {
		return l.lines.of("rules")
	}
	return l.lines.of(fmt.Sprintf("rules[%d]", i))
}

// where names the policy rule that decided, for messages.
func where(i int) string {
	if i < 0 {
		return "no rule matches"
	}
	return fmt.Sprintf("rules[%d] matches", i)
}

// evaluator asks kube-apiserver's own evaluator which level a request
// gets and which rule decided it.
type evaluator struct {
	full auditinternal.PolicyRuleEvaluator
	// single has one evaluator per rule, each with only that rule at a
	// level no real rule has: it says whether that rule matches.
	single []auditinternal.PolicyRuleEvaluator
}

// matched is the level the single-rule evaluators give a request their
// rule matches.
const matched audit.Level = "auditrail-lint-matched"

func newEvaluator(p *audit.Policy) *evaluator {
	e := &evaluator{full: auditpolicy.NewPolicyRuleEvaluator(p.DeepCopy())}
	for _, r := range p.Rules {
		r := *r.DeepCopy()
		r.Level = matched
		e.single = append(e.single, auditpolicy.NewPolicyRuleEvaluator(&audit.Policy{Rules: []audit.PolicyRule{r}}))
	}
	return e
}

// decide returns the level kube-apiserver logs pr at and the index of the
// rule that decided, -1 when none matched.
func (e *evaluator) decide(pr probe) (audit.Level, int) {
	attrs := pr.attributes()
	level := e.full.EvaluatePolicyRule(attrs).Level
	for i, s := range e.single {
		if s.EvaluatePolicyRule(attrs).Level == matched {
			return level, i
		}
	}
	return level, -1
}
