package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/rules"
	authnv1 "k8s.io/api/authentication/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	auditlog "k8s.io/apiserver/plugin/pkg/audit/log"
)

// encodeEvent returns ev as kube-apiserver's log backend writes it.
func encodeEvent(t testing.TB, ev *auditinternal.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	if !auditlog.NewBackend(&buf, auditlog.FormatJson, auditv1.SchemeGroupVersion).ProcessEvents(ev) {
		t.Fatal("audit backend refused the event")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func object(t testing.TB, o any) *runtime.Unknown {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return &runtime.Unknown{Raw: b, ContentType: runtime.ContentTypeJSON}
}

var eventSeq int

// request returns a completed, allowed request by alice on the given
// resource, logged at Metadata level.
func request(verb, group, resource, sub, ns, name string) *auditinternal.Event {
	eventSeq++
	now := time.Now()
	uri := "/api/v1/"
	if group != "" {
		uri = "/apis/" + group + "/v1/"
	}
	if ns != "" {
		uri += "namespaces/" + ns + "/"
	}
	uri += resource
	if name != "" {
		uri += "/" + name
	}
	if sub != "" {
		uri += "/" + sub
	}
	return &auditinternal.Event{
		Level:      auditinternal.LevelMetadata,
		AuditID:    types.UID(fmt.Sprintf("5a1e0000-0000-4000-8000-%012d", eventSeq)),
		Stage:      auditinternal.StageResponseComplete,
		RequestURI: uri, Verb: verb,
		User:      authnv1.UserInfo{Username: "alice@example.com", Groups: []string{"developers", "system:authenticated"}},
		SourceIPs: []string{"203.0.113.7"}, UserAgent: "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
		ObjectRef: &auditinternal.ObjectReference{Resource: resource, Subresource: sub, Namespace: ns, Name: name,
			APIGroup: group, APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: metav1.NewMicroTime(now),
		StageTimestamp:           metav1.NewMicroTime(now.Add(3 * time.Millisecond)),
		Annotations: map[string]string{"authorization.k8s.io/decision": "allow",
			"authorization.k8s.io/reason": `RBAC: allowed by ClusterRoleBinding "x"`},
	}
}

func withUser(ev *auditinternal.Event, user string, groups ...string) *auditinternal.Event {
	ev.User = authnv1.UserInfo{Username: user, Groups: groups}
	return ev
}

func forbidden(ev *auditinternal.Event) *auditinternal.Event {
	ev.ResponseStatus = &metav1.Status{Code: 403, Status: "Failure", Reason: metav1.StatusReasonForbidden}
	ev.Annotations = map[string]string{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
	return ev
}

func withRequest(t testing.TB, ev *auditinternal.Event, obj any) *auditinternal.Event {
	ev.Level = auditinternal.LevelRequest
	ev.RequestObject = object(t, obj)
	return ev
}

func binding(role string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{Kind: "ClusterRoleBinding", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "backdoor"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "mallory", APIGroup: "rbac.authorization.k8s.io"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
	}
}

func role(r rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{Kind: "ClusterRole", APIVersion: "rbac.authorization.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "r"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Verbs: []string{"get"}, Resources: []string{"configmaps"}}, r},
	}
}

func pod(mod func(*corev1.PodSpec)) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "app", Image: "nginx"}, {Name: "side", Image: "envoy"}},
			Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}}},
		},
	}
	mod(&p.Spec)
	return p
}

func deployment(mod func(*corev1.PodSpec)) map[string]any {
	p := pod(mod)
	return map[string]any{"kind": "Deployment", "apiVersion": "apps/v1", "metadata": map[string]any{"name": "d"},
		"spec": map[string]any{"replicas": 1, "template": map[string]any{"spec": p.Spec}}}
}

// TestBuiltinRules checks every built-in rule against an event in
// kube-apiserver's own format that must fire it and a near miss that must
// not.
func TestBuiltinRules(t *testing.T) {
	privileged := true
	cases := []struct {
		rule       string
		fire, miss *auditinternal.Event
	}{
		{"secret-read",
			request("get", "", "secrets", "", "prod", "db-password"),
			withUser(request("get", "", "secrets", "", "kube-system", "bootstrap"), "system:kube-controller-manager", "system:authenticated")},
		{"secret-read",
			withUser(request("list", "", "secrets", "", "prod", ""), "system:serviceaccount:ci:deployer", "system:serviceaccounts"),
			forbidden(request("list", "", "secrets", "", "prod", ""))},
		{"rbac-admin-binding",
			withRequest(t, request("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "backdoor"), binding("cluster-admin")),
			withRequest(t, request("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "backdoor"), binding("view"))},
		{"rbac-binding-subjects",
			bindingPatch("ops", `{"subjects":[`+mallory+`]}`),
			withRequest(t, request("update", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "ops"), namedBinding("ops", "view"))},
		{"rbac-wildcard-role",
			withRequest(t, request("create", "rbac.authorization.k8s.io", "clusterroles", "", "", "r"),
				role(rbacv1.PolicyRule{APIGroups: []string{"*"}, Verbs: []string{"*"}, Resources: []string{"*"}})),
			withRequest(t, request("create", "rbac.authorization.k8s.io", "clusterroles", "", "", "r"),
				role(rbacv1.PolicyRule{APIGroups: []string{""}, Verbs: []string{"get", "list"}, Resources: []string{"pods", "pods/log"}}))},
		{"rbac-wildcard-role",
			withRequest(t, request("update", "rbac.authorization.k8s.io", "clusterroles", "", "", "r"),
				role(rbacv1.PolicyRule{APIGroups: []string{""}, Verbs: []string{"create"}, Resources: []string{"pods/exec"}})),
			withUser(withRequest(t, request("update", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),
				role(rbacv1.PolicyRule{APIGroups: []string{""}, Verbs: []string{"create"}, Resources: []string{"pods/exec"}})),
				"system:serviceaccount:kube-system:clusterrole-aggregation-controller")},
		{"pod-exec",
			request("create", "", "pods", "exec", "prod", "api-0"),
			request("get", "", "pods", "log", "prod", "api-0")},
		{"pod-exec",
			request("get", "", "pods", "portforward", "prod", "db-0"),
			forbidden(request("create", "", "pods", "exec", "prod", "api-0"))},
		{"pod-host-access",
			withRequest(t, request("create", "", "pods", "", "default", "p"), pod(func(s *corev1.PodSpec) {
				s.Containers[1].SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
			})),
			withRequest(t, request("create", "", "pods", "", "default", "p"), pod(func(s *corev1.PodSpec) {
				no := false
				s.Containers[1].SecurityContext = &corev1.SecurityContext{Privileged: &no}
			}))},
		{"pod-host-access",
			withRequest(t, request("create", "", "pods", "", "default", "p"), pod(func(s *corev1.PodSpec) {
				s.Volumes = append(s.Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			})),
			withUser(withRequest(t, request("create", "", "pods", "", "kube-system", "kube-apiserver-master-1"), pod(func(s *corev1.PodSpec) {
				s.Volumes = append(s.Volumes, corev1.Volume{Name: "pki", VolumeSource: corev1.VolumeSource{
					HostPath: &corev1.HostPathVolumeSource{Path: "/etc/kubernetes/pki"}}})
			})), "system:node:master-1", "system:nodes")},
		{"pod-host-access",
			withRequest(t, request("patch", "apps", "deployments", "", "default", "d"), deployment(func(s *corev1.PodSpec) {
				s.HostPID = true
			})),
			withRequest(t, request("patch", "apps", "deployments", "", "default", "d"), deployment(func(s *corev1.PodSpec) {}))},
		{"anonymous-allowed",
			withUser(request("list", "", "configmaps", "", "kube-system", ""), "system:anonymous", "system:unauthenticated"),
			withUser(func() *auditinternal.Event {
				ev := request("get", "", "", "", "", "")
				ev.ObjectRef, ev.RequestURI = nil, "/healthz"
				return ev
			}(), "system:anonymous", "system:unauthenticated")},
		{"anonymous-allowed",
			withUser(request("get", "", "nodes", "", "", "master-1"), "system:anonymous", "system:unauthenticated"),
			forbidden(withUser(request("get", "", "secrets", "", "kube-system", ""), "system:anonymous", "system:unauthenticated"))},
		{"serviceaccount-token",
			withRequest(t, request("create", "", "serviceaccounts", "token", "kube-system", "clusterrole-aggregation-controller"),
				&authnv1.TokenRequest{TypeMeta: metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}}),
			withUser(request("create", "", "serviceaccounts", "token", "prod", "api"), "system:node:worker-3", "system:nodes")},
		{"impersonation",
			func() *auditinternal.Event {
				ev := request("get", "", "secrets", "", "prod", "x")
				ev.ImpersonatedUser = &authnv1.UserInfo{Username: "system:admin", Groups: []string{"system:masters"}}
				return ev
			}(),
			request("get", "", "configmaps", "", "prod", "x")},
		{"admission-webhook-change",
			request("delete", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "gatekeeper"),
			request("get", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "gatekeeper")},
		{"csr-approval",
			withRequest(t, request("update", "certificates.k8s.io", "certificatesigningrequests", "approval", "", "csr-x"),
				&certv1.CertificateSigningRequest{TypeMeta: metav1.TypeMeta{Kind: "CertificateSigningRequest", APIVersion: "certificates.k8s.io/v1"}}),
			withUser(request("update", "certificates.k8s.io", "certificatesigningrequests", "approval", "", "csr-node"),
				"system:serviceaccount:kube-system:certificate-controller", "system:serviceaccounts")},
	}
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for i, c := range cases {
		covered[c.rule] = true
		t.Run(fmt.Sprintf("%d-%s", i, c.rule), func(t *testing.T) {
			if got := matchIDs(t, set, encodeEvent(t, c.fire)); !slices.Contains(got, c.rule) {
				t.Errorf("event that must fire %s matched %v", c.rule, got)
			}
			if got := matchIDs(t, set, encodeEvent(t, c.miss)); slices.Contains(got, c.rule) {
				t.Errorf("near miss fired %s (matched %v)", c.rule, got)
			}
		})
	}
	for _, r := range set.Rules() {
		if r.Rate == nil && !covered[r.ID] {
			t.Errorf("built-in rule %s has no test case", r.ID)
		}
	}
}

func matchIDs(t testing.TB, set *rules.Set, line []byte) []string {
	t.Helper()
	var ev auditjson.Event
	if err := auditjson.Parse(line, &ev); err != nil {
		t.Fatalf("parse %s: %v", line, err)
	}
	var ids []string
	for _, r := range set.Match(line, &ev, false, nil) {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestForbiddenBurst checks the rate rule: ten 403s from one user within a
// minute fire once; nine, or ten spread over more than a minute, do not;
// another user's 403s count apart.
func TestForbiddenBurst(t *testing.T) {
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var burst *rules.Rule
	for _, r := range set.Rules() {
		if r.ID == "forbidden-burst" {
			burst = r
		}
	}
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	run := func(user string, n int, every time.Duration, tr *rules.RateTracker) (fired int) {
		for i := 0; i < n; i++ {
			ev := withUser(forbidden(request("list", "", "secrets", "", fmt.Sprint("ns", i), "")), user, "system:authenticated")
			ev.StageTimestamp = metav1.NewMicroTime(base.Add(time.Duration(i) * every))
			line := encodeEvent(t, ev)
			var pe auditjson.Event
			if err := auditjson.Parse(line, &pe); err != nil {
				t.Fatal(err)
			}
			if !burst.Matches(line, &pe) {
				t.Fatalf("a 403 does not count toward %s", burst.ID)
			}
			if fire, _ := tr.Observe(burst, &pe, time.Now()); fire {
				fired++
			}
		}
		return fired
	}
	if got := run("mallory", 25, time.Second, rules.NewRateTracker()); got != 1 {
		t.Errorf("25 403s in 25 s fired %d times, want 1", got)
	}
	if got := run("mallory", 9, time.Second, rules.NewRateTracker()); got != 0 {
		t.Errorf("9 403s fired %d times, want 0", got)
	}
	if got := run("mallory", 10, 7*time.Second, rules.NewRateTracker()); got != 0 {
		t.Errorf("10 403s over 63 s fired %d times, want 0", got)
	}
	tr := rules.NewRateTracker()
	if run("mallory", 5, time.Second, tr)+run("eve", 5, time.Second, tr) != 0 {
		t.Error("5 403s each from two users fired")
	}
	ok := request("list", "", "secrets", "", "prod", "")
	line := encodeEvent(t, ok)
	var pe auditjson.Event
	auditjson.Parse(line, &pe)
	if burst.Matches(line, &pe) {
		t.Error("an allowed request counts toward forbidden-burst")
	}
}
