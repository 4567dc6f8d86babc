package apiserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/rules"
)

// expectedAlerts returns the auditID/rule pairs the built-in rules raise
// on the lines kube-apiserver wrote, and the tamper signal of the agent's
// first start (no checkpoint yet).
func expectedAlerts(t *testing.T, evs []diskEvent) map[string]bool {
	t.Helper()
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"/audit-trail-tamper": true}
	for _, de := range evs {
		var ev auditjson.Event
		if err := auditjson.Parse(de.line, &ev); err != nil {
			t.Errorf("parse %.200s: %v", de.line, err)
			continue
		}
		for _, rule := range set.Match(de.line, &ev, false, nil) {
			want[string(ev.AuditID)+"/"+rule.ID] = true
		}
	}
	return want
}

func (r *run) waitAlerts(timeout time.Duration, want map[string]bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got, _ := r.hook.received()
		n := 0
		for k := range want {
			if got[k] > 0 {
				n++
			}
		}
		if n == len(want) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// attackResult is one attack's line of the alerts table.
type attackResult struct {
	attack
	Expected, Raised bool
}

// alertTotals sums up the alerts.
type alertTotals struct {
	Expected, Raised, Missing, Unexpected, Duplicates int
}

func (r *run) checkAlerts(attacks []attack, want map[string]bool) ([]attackResult, alertTotals) {
	got, _ := r.hook.received()
	var out []attackResult
	for _, a := range attacks {
		res := attackResult{attack: a}
		if a.Rule != "" {
			k := a.AuditID + "/" + a.Rule
			res.Expected, res.Raised = want[k], got[k] > 0
			if !res.Expected || !res.Raised {
				r.t.Errorf("attack %q (%s): rule %s matches the line kube-apiserver wrote: %v; alert received: %v",
					a.Name, a.AuditID, a.Rule, res.Expected, res.Raised)
			}
		}
		out = append(out, res)
	}
	tot := alertTotals{Expected: len(want)}
	for k := range want {
		if got[k] > 0 {
			tot.Raised++
		} else {
			tot.Missing++
			r.t.Errorf("alert %s never arrived", k)
		}
	}
	for k, n := range got {
		if !want[k] {
			tot.Unexpected += n
			r.t.Errorf("alert %s (%d) that the rules do not raise on what kube-apiserver wrote", k, n)
		}
		if n > 1 {
			tot.Duplicates += n - 1
		}
	}
	return out, tot
}

// secretsResult is the search for the requests' secrets.
type secretsResult struct {
	Values int
	// Found counts, per place, the records or files holding one.
	Found map[string]int
	// InAuditLog is how many of kube-apiserver's own lines hold one: the
	// audit policy keeps them out.
	InAuditLog int
}

func (r *run) checkSecrets(sec *secrets, auditDir string) secretsResult {
	_, bodies := r.hook.received()
	stores := []store{s3Objects(r.t, r.srv), esDocs(r.srv), kafkaRecords(r.t, r.srv), files(r.t, "file", r.fileDir),
		{name: "alerts", blobs: bodies}, files(r.t, "state", r.stateDir)}
	agentLog, err := os.ReadFile(r.agentLog)
	if err != nil {
		r.t.Fatal(err)
	}
	stores = append(stores, store{name: "agent log", blobs: [][]byte{agentLog}})
	needles := sec.needles()
	res := secretsResult{Values: len(needles) / 2, Found: found(stores, needles)}
	// The secret's first value, mallory's token, the token mallory asks
	// for, and the values of the apply and the three patches.
	if res.Values != 7 {
		r.t.Errorf("%d secret values and tokens sent, want 7", res.Values)
	}
	for name, n := range res.Found {
		if n > 0 {
			r.t.Errorf("%s: %d records hold a secret value or token of the requests", name, n)
		}
	}
	// The search reads what it searches: the secret's name is in every
	// sink, its values in none.
	for name, n := range found(stores[:4], []string{"cloud-admin-credentials"}) {
		if n == 0 {
			r.t.Errorf("%s: the secret's name is nowhere: the search for its values reads nothing", name)
		}
	}
	var lines []store
	for _, p := range mustGlob(r.t, filepath.Join(auditDir, "audit*")) {
		st := store{name: "kube-apiserver"}
		eachLine(r.t, p, func(b []byte) { st.blobs = append(st.blobs, append([]byte(nil), b...)) })
		lines = append(lines, st)
	}
	res.InAuditLog = found(lines, needles)["kube-apiserver"]
	return res
}

func mustGlob(t *testing.T, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// verifyResult is what `auditrail verify` said.
type verifyResult struct {
	Code     int
	Objects  int
	Findings []string
}

func (r *run) checkVerify() verifyResult {
	rep, code, stderr := verifyArchive(r.t, r.config)
	res := verifyResult{Code: code, Objects: rep.Objects}
	for _, f := range rep.Findings {
		res.Findings = append(res.Findings, fmt.Sprintf("%s: %s (%s)", f.Kind, f.Detail, f.Key))
	}
	if code != 0 || !rep.OK || rep.Objects == 0 {
		r.t.Errorf("auditrail verify exited %d over %d objects: %s\n%s", code, rep.Objects, strings.Join(res.Findings, "\n"), stderr)
	}
	return res
}
