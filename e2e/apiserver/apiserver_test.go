package apiserver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/auditrail/auditrail/e2e"
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
	r := newRun(t, root)
	writeConfig(t, r.srv, r.config, c.AuditLog, r.stateDir, r.fileDir, r.hook.srv.URL+"/alerts", r.hook.secret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s3t, est, kt := r.srv.Watch(ctx, t)
	r.sinks = map[string]*e2e.Tracker{"s3": s3t, "es": est, "kafka": kt}

	sec := &secrets{}
	mallory := newAttacker(t, c, "ops", sec)
	spoofed := e2e.Key(mallory.spoofed, "ResponseComplete")
	for _, tr := range r.sinks {
		tr.TrackURIs(spoofed)
	}
	r.startAgent()
	l := r.drive(ctx, c, mallory)
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

// newRun starts the sinks' servers and the webhook receiver; the agent is
// killed when the test ends if it still runs.
func newRun(t *testing.T, root string) *run {
	r := &run{t: t, srv: e2e.StartServers(t), config: filepath.Join(root, "auditrail.yaml"),
		agentLog: filepath.Join(root, "agent.log"), stateDir: filepath.Join(root, "state"),
		fileDir: filepath.Join(root, "file-sink"), hook: newWebhook(t, "apiserver-e2e-hmac-secret-of-32-bytes")}
	r.agent = &e2e.Agent{Bin: bin, Config: r.config, Env: e2e.AgentEnv()}
	t.Cleanup(func() {
		if r.running {
			r.agent.Kill()
		}
	})
	return r
}

// drive sends the load for 32 s and mallory's attacks after the first
// of the agent's kills, 8 s apart, and returns the load once it stopped.
func (r *run) drive(ctx context.Context, c *cluster, mallory *attacker) *load {
	must(r.t, create(ctx, c.Admin.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "load"}}))
	l := &load{cs: c.Admin, ns: "load"}
	lctx, stop := context.WithCancel(ctx)
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
	stop()
	l.wait()
	return l
}

func (r *run) startAgent() {
	r.t.Helper()
	if err := r.agent.Start(r.agentLog); err != nil {
		r.t.Fatal(err)
	}
	r.running = true
}
