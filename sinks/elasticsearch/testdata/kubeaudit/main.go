// Command kubeaudit writes, to standard output, the audit events of
// attacks Elastic Security's Kubernetes rules look for and of benign
// requests beside them, serialized by kube-apiserver's own audit log
// backend (k8s.io/apiserver/plugin/pkg/audit/log) as with --audit-log-path.
// Each event's auditID names its scenario: attack-<rule>-… or benign-….
//
// It has its own module so that the agent's does not depend on
// k8s.io/apiserver. Regenerate the corpus with
//
//	cd sinks/elasticsearch/testdata/kubeaudit && go run . > ../kube-scenarios.log
package main

import (
	"encoding/json"
	"os"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	auditlog "k8s.io/apiserver/plugin/pkg/audit/log"
)

var t0 = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

const kubectl = "kubectl/v1.37.2 (linux/amd64) kubernetes/2f1a3c4"

// ev returns a ResponseComplete event at the Metadata level, allowed.
func ev(id, verb, resource, ns, name, user string, mods ...func(*auditinternal.Event)) *auditinternal.Event {
	uri := "/api/v1/"
	if ns != "" {
		uri += "namespaces/" + ns + "/"
	}
	uri += resource
	if name != "" {
		uri += "/" + name
	}
	e := &auditinternal.Event{
		Level:      auditinternal.LevelMetadata,
		AuditID:    types.UID(id),
		Stage:      auditinternal.StageResponseComplete,
		RequestURI: uri,
		Verb:       verb,
		User: authnv1.UserInfo{Username: user, UID: "uid-" + user, Groups: []string{"system:authenticated"},
			Extra: map[string]authnv1.ExtraValue{"scopes.example.com": {"audit"}}},
		SourceIPs:                []string{"203.0.113.7", "10.0.0.1"},
		UserAgent:                kubectl,
		ObjectRef:                &auditinternal.ObjectReference{Resource: resource, Namespace: ns, Name: name, APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: metav1.NewMicroTime(t0),
		StageTimestamp:           metav1.NewMicroTime(t0.Add(3 * time.Millisecond)),
		Annotations:              map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": `RBAC: allowed by ClusterRoleBinding "x"`},
	}
	for _, m := range mods {
		m(e)
	}
	return e
}

func body(v any) *runtime.Unknown {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &runtime.Unknown{Raw: b, ContentType: runtime.ContentTypeJSON}
}

func level(l auditinternal.Level) func(*auditinternal.Event) {
	return func(e *auditinternal.Event) { e.Level = l }
}

func forbid(e *auditinternal.Event) {
	e.Annotations = map[string]string{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
	e.ResponseStatus = &metav1.Status{Code: 403, Status: "Failure", Reason: metav1.StatusReasonForbidden,
		Message: `pods is forbidden: User "mallory" cannot create resource "pods"`}
}

func agent(ua string) func(*auditinternal.Event) {
	return func(e *auditinternal.Event) { e.UserAgent = ua }
}

func sub(s string) func(*auditinternal.Event) {
	return func(e *auditinternal.Event) { e.ObjectRef.Subresource = s; e.RequestURI += "/" + s }
}

func group(g string) func(*auditinternal.Event) {
	return func(e *auditinternal.Event) { e.ObjectRef.APIGroup = g; e.ObjectRef.APIVersion = "v1" }
}

// pod is a Pod create at the RequestResponse level with a body.
func pod(id, ns, name string, spec corev1.PodSpec) *auditinternal.Event {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
		Spec: spec}
	return ev(id, "create", "pods", ns, "", "alice@example.com", level(auditinternal.LevelRequestResponse), func(e *auditinternal.Event) {
		e.ObjectRef.Name = name
		e.RequestObject = body(p)
		e.ResponseObject = body(p)
		e.ResponseStatus = &metav1.Status{Code: 201}
	})
}

func containers(image string, sc *corev1.SecurityContext) []corev1.Container {
	return []corev1.Container{{Name: "main", Image: image, SecurityContext: sc}, {Name: "sidecar", Image: "registry.k8s.io/pause:3.10"}}
}

func events() []*auditinternal.Event {
	yes := true
	hostPath := func(p string) []corev1.Volume {
		return []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p}}}}
	}
	binding := func(id, kind, role string, subj rbacv1.Subject) *auditinternal.Event {
		b := &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{Kind: "ClusterRoleBinding", APIVersion: "rbac.authorization.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "pwn"}, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{subj}}
		return ev(id, "create", kind, "", "pwn", "alice@example.com", level(auditinternal.LevelRequestResponse), group("rbac.authorization.k8s.io"),
			func(e *auditinternal.Event) { e.RequestObject, e.ResponseObject = body(b), body(b) })
	}
	role := func(id, verb string, rules []rbacv1.PolicyRule) *auditinternal.Event {
		r := &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{Kind: "ClusterRole", APIVersion: "rbac.authorization.k8s.io/v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "ops", ResourceVersion: "42"}, Rules: rules}
		return ev(id, verb, "clusterroles", "", "ops", "alice@example.com", level(auditinternal.LevelRequestResponse),
			group("rbac.authorization.k8s.io"), func(e *auditinternal.Event) {
				if verb == "create" {
					e.RequestObject = body(r)
				}
				e.ResponseObject = body(r)
			})
	}
	service := func(id string, typ corev1.ServiceType) *auditinternal.Event {
		s := &corev1.Service{TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: typ, Ports: []corev1.ServicePort{{Port: 80}}}}
		return ev(id, "create", "services", "default", "web", "alice@example.com", level(auditinternal.LevelRequest),
			func(e *auditinternal.Event) { e.RequestObject = body(s) })
	}
	podSA := func(e *auditinternal.Event) {
		e.User.Extra = map[string]authnv1.ExtraValue{
			"authentication.kubernetes.io/pod-name":      {"web-7d9f8-abcde"},
			"authentication.kubernetes.io/pod-uid":       {"8b1c"},
			"authentication.kubernetes.io/node-name":     {"node-1"},
			"authentication.kubernetes.io/credential-id": {"JTI=1f2e"},
		}
		e.User.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"}
	}
	trivy := func(e *auditinternal.Event) {
		e.User.Extra = map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {"trivy-operator-5c7d9-xyz"}}
		e.User.Groups = []string{"system:serviceaccounts", "system:serviceaccounts:security", "system:authenticated"}
	}
	impersonate := func(user string, groups ...string) func(*auditinternal.Event) {
		return func(e *auditinternal.Event) {
			e.ImpersonatedUser = &authnv1.UserInfo{Username: user, Groups: groups}
		}
	}
	return []*auditinternal.Event{
		ev("attack-events-deleted", "delete", "events", "default", "web.1797", "mallory"),
		ev("benign-events-deleted", "delete", "pods", "default", "web-1", "alice@example.com"),
		ev("attack-forbidden-create", "create", "pods", "default", "", "mallory", forbid),
		ev("benign-forbidden-create", "create", "pods", "default", "", "alice@example.com"),
		ev("attack-user-exec", "create", "pods", "default", "web-1", "mallory", sub("exec"), level(auditinternal.LevelRequest),
			func(e *auditinternal.Event) {
				e.RequestURI += "?command=sh&command=-c&command=id&container=web&stdin=true&stdout=true"
			}),
		ev("benign-user-exec", "get", "pods", "default", "web-1", "alice@example.com", sub("log"), level(auditinternal.LevelRequest)),
		pod("attack-privileged-pod", "default", "root", corev1.PodSpec{Containers: containers("alpine:3.20", &corev1.SecurityContext{Privileged: &yes})}),
		pod("benign-privileged-pod", "default", "web", corev1.PodSpec{Containers: containers("nginx:1.27", nil)}),
		pod("attack-hostnetwork-pod", "default", "net", corev1.PodSpec{HostNetwork: true, Containers: containers("alpine:3.20", nil)}),
		pod("benign-hostnetwork-pod", "kube-system", "calico-node", corev1.PodSpec{HostNetwork: true, Containers: containers("quay.io/calico/node:v3.28.0", nil)}),
		pod("attack-hostpid-pod", "default", "pid", corev1.PodSpec{HostPID: true, Containers: containers("alpine:3.20", nil)}),
		pod("benign-hostpid-pod", "monitoring", "node-exporter", corev1.PodSpec{HostPID: true, Containers: containers("quay.io/prometheus/node-exporter:v1.8.0", nil)}),
		pod("attack-hostipc-pod", "default", "ipc", corev1.PodSpec{HostIPC: true, Containers: containers("alpine:3.20", nil)}),
		pod("attack-hostpath-pod", "default", "root-fs", corev1.PodSpec{Volumes: hostPath("/"), Containers: containers("alpine:3.20", nil)}),
		pod("benign-hostpath-pod", "default", "data", corev1.PodSpec{Volumes: hostPath("/srv/data"), Containers: containers("alpine:3.20", nil)}),
		pod("attack-capabilities-pod", "default", "caps", corev1.PodSpec{Containers: containers("alpine:3.20",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "NET_ADMIN"}}})}),
		pod("benign-capabilities-pod", "default", "bind", corev1.PodSpec{Containers: containers("nginx:1.27",
			&corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}}})}),
		pod("attack-controller-sa-pod", "kube-system", "cm", corev1.PodSpec{ServiceAccountName: "replicaset-controller", Containers: containers("alpine:3.20", nil)}),
		binding("attack-cluster-admin-binding", "clusterrolebindings", "cluster-admin", rbacv1.Subject{Kind: "User", Name: "mallory"}),
		binding("benign-cluster-admin-binding", "clusterrolebindings", "view", rbacv1.Subject{Kind: "User", Name: "bob"}),
		role("attack-role-wildcard", "patch", []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}),
		role("benign-role-wildcard", "patch", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}),
		role("attack-sensitive-role", "create", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}),
		role("benign-sensitive-role", "create", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list"}}}),
		ev("attack-secret-curl", "get", "secrets", "default", "db-password", "alice@example.com", agent("curl/8.5.0")),
		ev("benign-secret-curl", "get", "secrets", "default", "db-password", "alice@example.com"),
		ev("attack-secret-pod-sa", "get", "secrets", "default", "db-password", "system:serviceaccount:default:web", podSA,
			agent("Go-http-client/2.0")),
		ev("benign-secret-pod-sa", "list", "secrets", "security", "", "system:serviceaccount:security:trivy-operator", trivy,
			agent("trivy-operator/v0.24.0")),
		ev("attack-secrets-list-all", "list", "secrets", "", "", "alice@example.com", func(e *auditinternal.Event) { e.RequestURI = "/api/v1/secrets?limit=500" }),
		service("attack-nodeport", corev1.ServiceTypeNodePort),
		service("benign-nodeport", corev1.ServiceTypeClusterIP),
		ev("attack-impersonate-admin", "get", "secrets", "kube-system", "bootstrap-token", "alice@example.com", impersonate("system:admin", "system:masters")),
		ev("benign-impersonate-admin", "get", "configmaps", "team-a", "settings", "alice@example.com", impersonate("bob@example.com", "team-a")),
		ev("attack-token-request", "create", "serviceaccounts", "kube-system", "default", "alice@example.com", sub("token")),
		ev("benign-token-request", "create", "serviceaccounts", "default", "web", "system:node:node-1", sub("token")),
		ev("attack-coredns-modified", "update", "configmaps", "kube-system", "coredns", "alice@example.com"),
		ev("benign-coredns-modified", "update", "configmaps", "kube-system", "kube-proxy", "alice@example.com"),
		ev("attack-anonymous-pod", "create", "pods", "default", "", "system:anonymous", level(auditinternal.LevelRequest),
			func(e *auditinternal.Event) {
				e.User.Groups = []string{"system:unauthenticated"}
				e.UserAgent = "python-requests/2.32.3"
			}),
		ev("attack-ephemeral-container", "patch", "pods", "default", "web-1", "mallory", sub("ephemeralcontainers")),
		ev("benign-ephemeral-container", "patch", "pods", "default", "web-1", "mallory", sub("status")),
		ev("attack-sa-rbac-write", "create", "rolebindings", "default", "edit-all", "system:serviceaccount:default:web", group("rbac.authorization.k8s.io"), podSA),
		ev("benign-sa-rbac-write", "create", "configmaps", "default", "edit-all", "system:serviceaccount:default:web", podSA),
		ev("attack-denied-sa", "list", "secrets", "kube-system", "", "system:serviceaccount:default:web", forbid, podSA, agent("curl/8.5.0")),
		ev("attack-node-proxy", "get", "nodes", "", "node-1", "alice@example.com", sub("proxy"),
			func(e *auditinternal.Event) {
				e.RequestURI = "/api/v1/nodes/node-1/proxy/run/kube-system/kube-proxy-abc/kube-proxy?cmd=id"
			}),
		ev("benign-node-proxy", "get", "nodes", "", "node-1", "alice@example.com", sub("proxy"),
			func(e *auditinternal.Event) { e.RequestURI = "/api/v1/nodes/node-1/proxy/metrics" }),
		ev("attack-webhook", "create", "mutatingwebhookconfigurations", "", "inject", "alice@example.com", group("admissionregistration.k8s.io")),
		ev("benign-webhook", "create", "mutatingwebhookconfigurations", "", "cert-manager-webhook", "system:serviceaccount:cert-manager:cert-manager", group("admissionregistration.k8s.io")),
	}
}

func main() {
	b := auditlog.NewBackend(os.Stdout, auditlog.FormatJson, auditv1.SchemeGroupVersion)
	if !b.ProcessEvents(events()...) {
		os.Exit(1)
	}
}
