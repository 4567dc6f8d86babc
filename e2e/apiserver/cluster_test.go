package apiserver

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubeapiserver "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
)

// Audit log flags of the test's kube-apiserver: 1 MB files, so that it
// rotates several times during the run, gzip'd, and more backups than the
// run writes, so that nothing is pruned before the test reads it.
const (
	auditMaxSizeMB  = "1"
	auditMaxBackups = "1000"
)

// cluster is a kube-apiserver in process, on an embedded etcd.
type cluster struct {
	// Config is the loopback client's config (system:apiserver, in
	// system:masters), which sends the Audit-ID a context carries.
	Config *rest.Config
	Admin  *kubernetes.Clientset
	// AuditLog is --audit-log-path.
	AuditLog string
	// Stop stops kube-apiserver; it is safe to call more than once.
	Stop func()
}

// startCluster starts etcd and kube-apiserver with the flags of a kubeadm
// control plane that matter here: RBAC and Node authorization,
// NodeRestriction, privileged pods allowed, and the audit log written with
// the repository's policy under dir.
func startCluster(t *testing.T, dir string) *cluster {
	t.Helper()
	etcd := startEtcd(t)
	storage := storagebackend.NewDefaultConfig("/registry", nil)
	storage.Transport.ServerList = []string{etcd}
	auditLog := filepath.Join(dir, "audit.log")
	flags := []string{
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--audit-policy-file=" + filepath.Join(repoRoot, "deploy", "audit-policy.yaml"),
		"--audit-log-path=" + auditLog,
		"--audit-log-maxsize=" + auditMaxSizeMB,
		"--audit-log-maxbackup=" + auditMaxBackups,
		"--audit-log-compress",
	}
	opts := kubeapiserver.NewDefaultTestServerOptions()
	opts.DisableInvariantChecks = true
	srv, err := kubeapiserver.StartTestServer(t, opts, flags, storage)
	if err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.TearDownFn()
		}
	}
	t.Cleanup(stop)
	cfg := rest.CopyConfig(srv.ClientConfig)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return auditIDTransport{rt} })
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{Config: cfg, Admin: admin, AuditLog: auditLog, Stop: stop}
}

// startEtcd starts an embedded etcd (go.etcd.io/etcd/server/v3/embed),
// as kube-apiserver's own storage tests do, on 127.0.0.1, and returns its
// client URL; it stops when the test ends.
func startEtcd(t *testing.T) string {
	t.Helper()
	cfg := testserver.NewTestConfig(t)
	for _, us := range [][]url.URL{cfg.ListenClientUrls, cfg.AdvertiseClientUrls, cfg.ListenPeerUrls, cfg.AdvertisePeerUrls} {
		for i := range us {
			us[i].Host = "127.0.0.1:" + us[i].Port()
		}
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	testserver.RunEtcd(t, cfg)
	return cfg.ListenClientUrls[0].String()
}

// userClient returns a client that authenticates with a bearer token and
// sends the Audit-ID a context carries.
func (c *cluster) userClient(t *testing.T, token string) *kubernetes.Clientset {
	t.Helper()
	cfg := rest.AnonymousClientConfig(c.Config)
	cfg.BearerToken = token
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return auditIDTransport{rt} })
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

type auditIDKey struct{}

// withAuditID returns a context whose requests carry the header
// Audit-ID: id, which kube-apiserver logs as their auditID.
func withAuditID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, auditIDKey{}, id)
}

// auditIDTransport sets the Audit-ID header from the request's context.
type auditIDTransport struct{ rt http.RoundTripper }

func (a auditIDTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if id, ok := r.Context().Value(auditIDKey{}).(string); ok {
		r = r.Clone(r.Context())
		r.Header.Set("Audit-ID", id)
	}
	return a.rt.RoundTrip(r)
}
