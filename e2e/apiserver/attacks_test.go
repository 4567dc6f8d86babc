package apiserver

import (
	"context"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
)

// attack is one request of the security issues, sent with an Audit-ID of
// its own.
type attack struct {
	Name    string
	AuditID string
	// Rule is the id of the built-in rule it must raise; "" when no rule
	// is about it (it is there for the secrets it carries).
	Rule string
}

// secrets are the values the requests carry that no sink, alert or log
// may hold: secret data and tokens.
type secrets struct {
	mu     sync.Mutex
	values []string
}

func (s *secrets) add(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = append(s.values, v)
	return v
}

// needles returns every value, plain and base64-encoded as a Secret's
// data holds it.
func (s *secrets) needles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, v := range s.values {
		out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return out
}

// attacker is mallory: a service account bound to cluster-admin, using
// its own token, the way a stolen credential is used.
type attacker struct {
	t       *testing.T
	admin   *kubernetes.Clientset
	cs      *kubernetes.Clientset
	ns      string
	secrets *secrets

	mu       sync.Mutex
	attacks  []attack
	spoofed  string // the Audit-ID the two requests of sameAuditID share
	requests int
}

// newAttacker sets up namespace ns as an administrator would (service
// accounts, a secret, deployments) and returns mallory.
func newAttacker(t *testing.T, c *cluster, ns string, sec *secrets) *attacker {
	t.Helper()
	ctx := context.Background()
	a := &attacker{t: t, admin: c.Admin, ns: ns, secrets: sec, spoofed: newAuditID()}
	must(t, create(ctx, c.Admin.CoreV1().Namespaces(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, sa := range []string{"default", "mallory", "builder"} {
		must(t, create(ctx, c.Admin.CoreV1().ServiceAccounts(ns), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}))
	}
	must(t, create(ctx, c.Admin.RbacV1().ClusterRoleBindings(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mallory-bootstrap"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "mallory", Namespace: ns}},
	}))
	must(t, create(ctx, c.Admin.CoreV1().Secrets(ns), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "cloud-admin-credentials"},
		StringData: map[string]string{"password": sec.add(randomValue("initial-password"))}}))
	must(t, create(ctx, c.Admin.CoreV1().ConfigMaps(ns), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "harmless"}}))
	for _, d := range []string{"web-json", "web-merge", "web-strategic"} {
		must(t, create(ctx, c.Admin.AppsV1().Deployments(ns), webDeployment(d)))
	}
	tr, err := c.Admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "mallory", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.cs = c.userClient(t, sec.add(tr.Status.Token))
	return a
}

type creator[T any] interface {
	Create(context.Context, T, metav1.CreateOptions) (T, error)
}

func create[T any](ctx context.Context, c creator[T], obj T) error {
	_, err := c.Create(ctx, obj, metav1.CreateOptions{})
	return err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// do runs one attack under a new Audit-ID; wantErr says the request is
// expected to fail after authorization (an exec with no kubelet to reach).
func (a *attacker) do(name, rule string, wantErr bool, f func(ctx context.Context) error) {
	id := newAuditID()
	err := f(withAuditID(context.Background(), id))
	a.mu.Lock()
	a.attacks = append(a.attacks, attack{Name: name, AuditID: id, Rule: rule})
	a.requests++
	a.mu.Unlock()
	if (err != nil) != wantErr {
		a.t.Errorf("attack %q: error %v, want error %v", name, err, wantErr)
	}
}

// run sends every attack once.
func (a *attacker) run() {
	cs, ns := a.cs, a.ns
	sec := cs.CoreV1().Secrets(ns)
	a.do("secret read (get)", "secret-read", false, func(ctx context.Context) error {
		_, err := sec.Get(ctx, "cloud-admin-credentials", metav1.GetOptions{})
		return err
	})
	a.do("secret read (list)", "secret-read", false, func(ctx context.Context) error {
		_, err := sec.List(ctx, metav1.ListOptions{})
		return err
	})
	a.do("secret read impersonating eve", "impersonation", false, func(ctx context.Context) error {
		return cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("secrets").Name("cloud-admin-credentials").
			SetHeader("Impersonate-User", "eve").SetHeader("Impersonate-Group", "system:masters").Do(ctx).Error()
	})
	a.do("ClusterRoleBinding to cluster-admin", "rbac-admin-binding", false, func(ctx context.Context) error {
		return create(ctx, cs.RbacV1().ClusterRoleBindings(), &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "backdoor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "eve"}},
		})
	})
	a.do("privileged pod", "pod-host-access", false, func(ctx context.Context) error {
		return create(ctx, cs.CoreV1().Pods(ns), privilegedPod("root-shell"))
	})
	a.privilegedByPatch()
	a.do("exec in the privileged pod", "pod-exec", true, func(ctx context.Context) error {
		return cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("root-shell").SubResource("exec").
			Param("command", "sh").Param("command", "-c").Param("command", "id").Param("stdout", "true").Do(ctx).Error()
	})
	a.tokens()
	a.secretWrites()
	a.sameAuditID()
}

// privilegedByPatch makes a deployment's pods privileged with each patch
// type: the request shows only the change, the response the result.
func (a *attacker) privilegedByPatch() {
	deps := a.cs.AppsV1().Deployments(a.ns)
	patches := []struct {
		name, deployment string
		typ              types.PatchType
		body             string
	}{
		{"privileged by JSON patch", "web-json", types.JSONPatchType,
			`[{"op":"add","path":"/spec/template/spec/containers/0/securityContext","value":{"privileged":true}}]`},
		{"privileged by merge patch", "web-merge", types.MergePatchType,
			`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"registry.k8s.io/pause:3.10","securityContext":{"privileged":true}}]}}}}`},
		{"privileged by strategic merge patch", "web-strategic", types.StrategicMergePatchType,
			`{"spec":{"template":{"spec":{"containers":[{"name":"web","securityContext":{"privileged":true}}]}}}}`},
	}
	for _, p := range patches {
		a.do(p.name, "pod-host-access", false, func(ctx context.Context) error {
			_, err := deps.Patch(ctx, p.deployment, p.typ, []byte(p.body), metav1.PatchOptions{})
			return err
		})
	}
}

// tokens mints a token for another service account (TokenRequest) and
// asks who it belongs to (TokenReview).
func (a *attacker) tokens() {
	var token string
	a.do("TokenRequest for another service account", "serviceaccount-token", false, func(ctx context.Context) error {
		tr, err := a.cs.CoreV1().ServiceAccounts(a.ns).CreateToken(ctx, "builder", &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err == nil {
			token = a.secrets.add(tr.Status.Token)
		}
		return err
	})
	a.do("TokenReview of that token", "", false, func(ctx context.Context) error {
		rv, err := a.cs.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err == nil && !rv.Status.Authenticated {
			err = fmt.Errorf("token not authenticated: %s", rv.Status.Error)
		}
		return err
	})
}

// secretWrites changes the secret by server-side apply and by each patch
// type, every time to a new value.
func (a *attacker) secretWrites() {
	sec := a.cs.CoreV1().Secrets(a.ns)
	const name = "cloud-admin-credentials"
	a.do("secret changed by apply", "", false, func(ctx context.Context) error {
		_, err := sec.Apply(ctx, coreac.Secret(name, a.ns).WithStringData(map[string]string{"password": a.secrets.add(randomValue("applied-password"))}),
			metav1.ApplyOptions{FieldManager: "mallory", Force: true})
		return err
	})
	patches := []struct {
		typ  types.PatchType
		body func(v string) string
	}{
		{types.JSONPatchType, func(v string) string { return `[{"op":"add","path":"/stringData","value":{"password":"` + v + `"}}]` }},
		{types.MergePatchType, func(v string) string { return `{"stringData":{"password":"` + v + `"}}` }},
		{types.StrategicMergePatchType, func(v string) string {
			return `{"data":{"password":"` + base64.StdEncoding.EncodeToString([]byte(v)) + `"}}`
		}},
	}
	for _, p := range patches {
		v := a.secrets.add(randomValue("patched-password"))
		a.do("secret changed by "+string(p.typ), "", false, func(ctx context.Context) error {
			_, err := sec.Patch(ctx, name, p.typ, []byte(p.body(v)), metav1.PatchOptions{})
			return err
		})
	}
}

// sameAuditID sends a harmless read and a secret read with one Audit-ID:
// both events must arrive, and the secret read must raise its alert.
func (a *attacker) sameAuditID() {
	ctx := withAuditID(context.Background(), a.spoofed)
	_, err1 := a.cs.CoreV1().ConfigMaps(a.ns).Get(ctx, "harmless", metav1.GetOptions{})
	_, err2 := a.cs.CoreV1().Secrets(a.ns).Get(ctx, "cloud-admin-credentials", metav1.GetOptions{})
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests += 2
	a.attacks = append(a.attacks, attack{Name: "two requests, one Audit-ID", AuditID: a.spoofed, Rule: "secret-read"})
	for _, err := range []error{err1, err2} {
		if err != nil {
			a.t.Errorf("request with a shared Audit-ID: %v", err)
		}
	}
}

func privilegedPod(name string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "shell", Image: "registry.k8s.io/pause:3.10",
			SecurityContext: &corev1.SecurityContext{Privileged: &yes},
		}}},
	}
}
