package apiserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/auditrail/auditrail/e2e"
	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/rules"
)

// kills is how many times the agent is killed with SIGKILL under load.
const kills = 3

// TestKubeAPIServer runs the real kube-apiserver in process. Its admission
// judges the Helm chart and the kubeadm static pod; then the auditrail
// binary ships the audit log it writes, rotating 1 MB files, while client
// traffic and attacks go on and the agent is killed and restarted.
func TestKubeAPIServer(t *testing.T) {
	root := t.TempDir()
	auditDir := filepath.Join(root, "audit")
	if err := os.MkdirAll(auditDir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, auditDir)
	t.Run("PodSecurity", func(t *testing.T) { checkPodSecurity(t, c) })
	t.Run("AuditTrail", func(t *testing.T) { auditTrail(t, c, root, auditDir) })
}

// run is one run of the audit trail scenario.
type run struct {
	t        *testing.T
	srv      *e2e.Servers
	agent    *e2e.Agent
	running  bool
	config   string
	agentLog string
	stateDir string
	fileDir  string
	hook     *webhook
	sinks    map[string]*e2e.Tracker
}

func auditTrail(t *testing.T, c *cluster, root, auditDir string) {
	const hookSecret = "apiserver-e2e-hmac-secret-of-32-bytes"
	r := &run{t: t, srv: e2e.StartServers(t), config: filepath.Join(root, "auditrail.yaml"),
		agentLog: filepath.Join(root, "agent.log"), stateDir: filepath.Join(root, "state"),
		fileDir: filepath.Join(root, "file-sink"), hook: newWebhook(t, hookSecret)}
	writeConfig(t, r.srv, r.config, c.AuditLog, r.stateDir, r.fileDir, r.hook.srv.URL+"/alerts", hookSecret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3t, est, kt := r.srv.Watch(ctx, t)
	r.sinks = map[string]*e2e.Tracker{"s3": s3t, "es": est, "kafka": kt}
	r.agent = &e2e.Agent{Bin: bin, Config: r.config, Env: e2e.AgentEnv()}
	t.Cleanup(func() {
		if r.running {
			r.agent.Kill()
		}
	})

	sec := &secrets{}
	mallory := newAttacker(t, c, "ops", sec)
	spoofed := e2e.Key(mallory.spoofed, "ResponseComplete")
	for _, tr := range r.sinks {
		tr.TrackURIs(spoofed)
	}
	r.startAgent()

	must(t, create(ctx, c.Admin.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "load"}}))
	l := &load{cs: c.Admin, ns: "load"}
	lctx, stopLoad := context.WithCancel(ctx)
	l.start(lctx, 4)
	for i := range kills {
		time.Sleep(8 * time.Second)
		r.agent.Kill()
		r.running = false
		r.startAgent()
		if i == 0 {
			mallory.run()
		}
	}
	time.Sleep(8 * time.Second)
	stopLoad()
	l.wait()
	// Stopped, kube-apiserver writes no more: its audit files are whole.
	c.Stop()
	evs, rotated := readAuditDir(t, auditDir)
	t.Logf("kube-apiserver: %d load requests (%d answered with an error), %d attack requests; %d events written, %d rotated files",
		l.sent.Load(), l.errs.Load(), mallory.requests, len(evs), rotated)
	if rotated < 3 {
		t.Errorf("kube-apiserver rotated its audit log %d times, the scenario needs at least 3", rotated)
	}

	want := newExpected(evs, spoofed)
	r.waitDelivered(3*time.Minute, want)
	alerts := expectedAlerts(t, evs)
	r.waitAlerts(time.Minute, alerts)
	if err := r.agent.Stop(); err != nil {
		t.Errorf("agent did not exit cleanly on SIGTERM: %v", err)
	}
	r.running = false

	rep := &report{Requests: l.sent.Load() + int64(mallory.requests), Events: len(evs), Rotated: rotated, Kills: kills}
	rep.Sinks = r.results(want)
	rep.Attacks, rep.Alerts = r.checkAlerts(mallory.attacks, alerts)
	rep.Secrets = r.checkSecrets(sec, auditDir)
	rep.Verify = r.checkVerify()
	rep.log(t)
	if p := os.Getenv("AUDITRAIL_APISERVER_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(rep.markdown()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func (r *run) startAgent() {
	r.t.Helper()
	if err := r.agent.Start(r.agentLog); err != nil {
		r.t.Fatal(err)
	}
	r.running = true
}

// expected is what kube-apiserver wrote: how many lines of each
// auditID/stage, and for the key that two requests share, of each
// requestURI.
type expected struct {
	written map[string]time.Time
	count   map[string]int
	shared  string
	uris    map[string]int
	lines   int
}

func newExpected(evs []diskEvent, shared string) *expected {
	x := &expected{written: map[string]time.Time{}, count: map[string]int{}, shared: shared, uris: map[string]int{}, lines: len(evs)}
	for _, ev := range evs {
		k := ev.Key()
		x.written[k] = ev.Time
		x.count[k]++
		if k == shared {
			x.uris[ev.RequestURI]++
		}
	}
	return x
}

// sinkResult is one sink's line of the delivery table.
type sinkResult struct {
	Sink                     string
	Written, Delivered, Lost int
	Duplicates               int
	// Unexpected counts events a sink holds that kube-apiserver did not
	// write.
	Unexpected int
	LostKeys   []string
}

// measure compares what a sink holds with what kube-apiserver wrote; uris
// are the sink's counts by requestURI of the shared key.
func (x *expected) measure(sink string, rcv *e2e.Received, uris map[string]int) sinkResult {
	res := sinkResult{Sink: sink, Written: x.lines}
	for k, n := range x.count {
		got := rcv.Count[k]
		if k == x.shared {
			continue
		}
		res.Delivered += min(n, got)
		res.Duplicates += max(0, got-n)
		if got < n {
			res.LostKeys = append(res.LostKeys, k)
		}
	}
	for u, n := range x.uris {
		res.Delivered += min(n, uris[u])
		res.Duplicates += max(0, uris[u]-n)
		if uris[u] < n {
			res.LostKeys = append(res.LostKeys, x.shared+" "+u)
		}
	}
	for k, got := range rcv.Count {
		if x.count[k] == 0 {
			res.Unexpected += got
		}
	}
	res.Lost = res.Written - res.Delivered
	sort.Strings(res.LostKeys)
	return res
}

// received returns what each sink holds now: the three network sinks'
// trackers and the file sink's files.
func (r *run) received(x *expected) map[string]func() (*e2e.Received, map[string]int) {
	out := map[string]func() (*e2e.Received, map[string]int){}
	for name, tr := range r.sinks {
		out[name] = func() (*e2e.Received, map[string]int) { return tr.Received(), tr.URIs(x.shared) }
	}
	out["file"] = func() (*e2e.Received, map[string]int) {
		uris := map[string]map[string]int{x.shared: {}}
		return fileSink(r.t, r.fileDir, uris), uris[x.shared]
	}
	return out
}

// waitDelivered waits until every sink holds every line written, or
// timeout.
func (r *run) waitDelivered(timeout time.Duration, x *expected) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for name, get := range r.received(x) {
			rcv, uris := get()
			if res := x.measure(name, rcv, uris); res.Delivered < res.Written {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (r *run) results(x *expected) []sinkResult {
	var out []sinkResult
	for _, name := range []string{"s3", "es", "kafka", "file"} {
		rcv, uris := r.received(x)[name]()
		res := x.measure(name, rcv, uris)
		if res.Lost > 0 {
			r.t.Errorf("%s: %d of %d lines lost, first: %v", name, res.Lost, res.Written, res.LostKeys[:min(5, len(res.LostKeys))])
		}
		if res.Unexpected > 0 {
			r.t.Errorf("%s: %d events kube-apiserver did not write", name, res.Unexpected)
		}
		for kind, n := range rcv.Other {
			switch kind {
			case "AuditrailGap", "Event without auditID", "":
				r.t.Errorf("%s: %d records of kind %q", name, n, kind)
			}
		}
		out = append(out, res)
	}
	return out
}

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
