package apiserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// report is the run's outcome, as docs/reliability.md shows it.
type report struct {
	Requests       int64
	Events         int
	Rotated, Kills int
	Sinks          []sinkResult
	Attacks        []attackResult
	Alerts         alertTotals
	Secrets        secretsResult
	Verify         verifyResult
}

func (r *report) log(t *testing.T) {
	for _, line := range strings.Split(r.markdown(), "\n") {
		t.Log(line)
	}
}

// markdown renders the report as the tables of docs/reliability.md.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Requests sent: %d. Events kube-apiserver wrote: %d, in the live file and %d rotated ones. Agent killed with SIGKILL %d times.\n\n",
		r.Requests, r.Events, r.Rotated, r.Kills)
	b.WriteString("| sink | written | delivered | lost | duplicates | unexpected |\n|---|---|---|---|---|---|\n")
	for _, s := range r.Sinks {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d |\n", s.Sink, s.Written, s.Delivered, s.Lost, s.Duplicates, s.Unexpected)
	}
	b.WriteString("\n| attack | rule | raised on the line written | alert received |\n|---|---|---|---|\n")
	for _, a := range r.Attacks {
		rule, exp, got := a.Rule, yes(a.Expected), yes(a.Raised)
		if rule == "" {
			rule, exp, got = "(none)", "-", "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", a.Name, rule, exp, got)
	}
	fmt.Fprintf(&b, "\nAlerts: %d expected (every auditID/rule the built-in rules raise on the lines written, and the first start's tamper signal), %d raised, %d missing, %d unexpected, %d delivered more than once.\n\n",
		r.Alerts.Expected, r.Alerts.Raised, r.Alerts.Missing, r.Alerts.Unexpected, r.Alerts.Duplicates)
	var places []string
	for name, n := range r.Secrets.Found {
		places = append(places, fmt.Sprintf("%s %d", name, n))
	}
	slices.Sort(places)
	fmt.Fprintf(&b, "Secrets: %d secret values and tokens sent; found in %s; in kube-apiserver's own audit log: %d.\n\n",
		r.Secrets.Values, strings.Join(places, ", "), r.Secrets.InAuditLog)
	fmt.Fprintf(&b, "`auditrail verify`: exit %d over %d objects, %d findings.\n", r.Verify.Code, r.Verify.Objects, len(r.Verify.Findings))
	for _, f := range r.Verify.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	return b.String()
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
