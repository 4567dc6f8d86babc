package e2e

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
)

// spoofedRequests are mallory's requests, every one sent with the header
// Audit-ID: x1, which kube-apiserver logs as their auditID: a harmless
// read, the read that matters, and two execs.
func spoofedRequests() []*auditinternal.Event {
	evs := []*auditinternal.Event{
		request("get", "", "secrets", "", "prod", "harmless"),
		request("get", "", "secrets", "", "prod", "cloud-admin-credentials"),
		request("create", "", "pods", "exec", "prod", "web-1"),
		request("create", "", "pods", "exec", "prod", "payments-0"),
	}
	for _, ev := range evs {
		ev.AuditID = types.UID("x1")
		ev.User.Username = "mallory"
	}
	return evs
}

// TestSpoofedAuditIDReachesEverySink writes, through kube-apiserver's
// audit backend, four different requests that share the auditID their
// client chose: each reaches S3, Elasticsearch, Kafka and a file sink
// once, and each raises its alert.
func TestSpoofedAuditIDReachesEverySink(t *testing.T) {
	const secret = "e2e-hmac-secret-of-32-bytes-or-more"
	wh := newWebhook(t, secret)
	s := NewScenario(t, WriterConfig{MaxSizeMB: 10, MaxBackups: 10, Seed: 37}) // with a file sink
	s.Configure(fmt.Sprintf("alerts:\n  destinations:\n    - {name: soc, type: webhook, url: %q, secret: %q, allowInsecure: true}", wh.srv.URL+"/alerts", secret))
	key := Key("x1", string(auditinternal.StageResponseComplete))
	for _, tr := range s.Sinks {
		tr.TrackURIs(key)
	}
	s.StartAgent()
	want := map[string]int{}
	for _, ev := range spoofedRequests() {
		s.W.WriteEvent(ev)
		want[ev.RequestURI] = 1
	}
	got := func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for name, tr := range s.Sinks {
			out[name] = tr.URIs(key)
		}
		wh.mu.Lock()
		out["alerts"] = map[string]int{"secret-read": wh.alerts["x1/secret-read"], "pod-exec": wh.alerts["x1/pod-exec"]}
		wh.mu.Unlock()
		return out
	}
	wantFor := func(name string) map[string]int {
		if name == "alerts" {
			return map[string]int{"secret-read": 2, "pod-exec": 2}
		}
		return want
	}
	done := func(g map[string]map[string]int) bool {
		for name, n := range g {
			if !maps.Equal(n, wantFor(name)) {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(90 * time.Second)
	g := got()
	for !done(g) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		g = got()
	}
	s.StopAgent()
	for name, n := range g {
		if !maps.Equal(n, wantFor(name)) {
			t.Errorf("%s received %v for auditID x1, want %v", name, n, wantFor(name))
		}
	}
}
