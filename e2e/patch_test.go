package e2e

import (
	"slices"
	"testing"

	"github.com/auditrail/auditrail/rules"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
)

// patched returns an allowed PATCH of resource logged at Request level the
// way kube-apiserver's patch handler logs it (audit.LogRequestPatch): the
// body as the client sent it, a JSON patch array or a merge or strategic
// merge patch object, in a runtime.Unknown marked JSON. The event does not
// say which patch type it was.
func patched(group, resource, ns, name, body string) *auditinternal.Event {
	ev := request("patch", group, resource, "", ns, name)
	ev.Level = auditinternal.LevelRequest
	ev.RequestObject = &runtime.Unknown{Raw: []byte(body), ContentType: runtime.ContentTypeJSON}
	return ev
}

// withResponse logs ev at RequestResponse level with obj, the object as it
// is after the change, as responseObject.
func withResponse(t testing.TB, ev *auditinternal.Event, obj any) *auditinternal.Event {
	ev.Level = auditinternal.LevelRequestResponse
	ev.ResponseObject = object(t, obj)
	return ev
}

func deploymentPatch(body string) *auditinternal.Event {
	return patched("apps", "deployments", "default", "d", body)
}

func clusterRolePatch(body string) *auditinternal.Event {
	return patched("rbac.authorization.k8s.io", "clusterroles", "", "r", body)
}

func bindingPatch(name, body string) *auditinternal.Event {
	return patched("rbac.authorization.k8s.io", "clusterrolebindings", "", name, body)
}

func namedBinding(name, role string) *rbacv1.ClusterRoleBinding {
	b := binding(role)
	b.Name = name
	return b
}

const mallory = `{"kind":"User","name":"mallory","apiGroup":"rbac.authorization.k8s.io"}`

// patchCase is a PATCH that must fire rule and, if miss is set, a near
// miss that must not.
type patchCase struct {
	name, rule string
	fire, miss *auditinternal.Event
}

// patchEvasions are the PATCH requests of issue 17 that fired nothing:
// JSON patches, whose keys are JSON pointers rather than object keys;
// merge and strategic merge patches spelling a key with a \u escape;
// subjects added to an admin binding, whose patch never shows roleRef.
func patchEvasions(t testing.TB) []patchCase {
	hostPID := func(s *corev1.PodSpec) { s.HostPID = true }
	return []patchCase{
		{"json patch adds hostPID", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/hostPID","value":true}]`),
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/hostPID","value":false}]`)},
		{"json patch adds hostNetwork to a cronjob", "pod-host-access",
			patched("batch", "cronjobs", "default", "c", `[{"op":"replace","path":"/spec/jobTemplate/spec/template/spec/hostNetwork","value":true}]`),
			patched("batch", "cronjobs", "default", "c", `[{"op":"replace","path":"/spec/jobTemplate/spec/template/spec/dnsPolicy","value":"Default"}]`)},
		{"json patch appends a hostPath volume", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/volumes/-","value":{"name":"root","hostPath":{"path":"/"}}}]`),
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/volumes/-","value":{"name":"tmp","emptyDir":{}}}]`)},
		{"json patch turns a volume into hostPath", "pod-host-access",
			deploymentPatch(`[{"op":"remove","path":"/spec/template/spec/volumes/0/configMap"},{"op":"add","path":"/spec/template/spec/volumes/0/hostPath","value":{"path":"/"}}]`),
			deploymentPatch(`[{"op":"remove","path":"/spec/template/spec/volumes/0/hostPath"}]`)},
		{"json patch sets privileged", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/containers/0/securityContext/privileged","value":true}]`),
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/containers/0/securityContext/privileged","value":false}]`)},
		{"json patch sets a privileged securityContext", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/initContainers/0/securityContext","value":{"privileged":true}}]`),
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/initContainers/0/securityContext","value":{"runAsNonRoot":true}}]`)},
		{"json patch replaces the pod spec", "pod-host-access",
			deploymentPatch(`[{"op":"replace","path":"/spec/template/spec","value":{"hostIPC":true,"containers":[{"name":"a","image":"busybox"}]}}]`),
			deploymentPatch(`[{"op":"replace","path":"/spec/template/spec","value":{"containers":[{"name":"a","image":"busybox"}]}}]`)},
		{"json patch spells its path with an escape", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/host\u0050ID","value":true}]`),
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/host~1PID","value":true}]`)},
		{"json patch moves a value into hostPID", "pod-host-access",
			deploymentPatch(`[{"op":"add","path":"/spec/template/spec/x","value":true},{"op":"move","from":"/spec/template/spec/x","path":"/spec/template/spec/hostPID"}]`),
			deploymentPatch(`[{"op":"move","from":"/spec/template/metadata/labels/a","path":"/spec/template/metadata/labels/b"}]`)},
		{"strategic merge patch spells hostPID with an escape", "pod-host-access",
			deploymentPatch(`{"spec":{"template":{"spec":{"host\u0050ID":true}}}}`),
			deploymentPatch(`{"spec":{"template":{"spec":{"host\u0050ID":false}}}}`)},
		{"strategic merge patch spells privileged with an escape", "pod-host-access",
			deploymentPatch(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"privil\u0065ged":true}}]}}}}`),
			deploymentPatch(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"privil\u0065ged":false}}]}}}}`)},
		{"merge patch spells hostPath with an escape", "pod-host-access",
			deploymentPatch(`{"spec":{"template":{"spec":{"volumes":[{"name":"root","\u0068ostPath":{"path":"/"}}]}}}}`),
			deploymentPatch(`{"spec":{"template":{"spec":{"volumes":[{"name":"root","\u0065mptyDir":{}}]}}}}`)},
		{"response shows the workload after the patch", "pod-host-access",
			withResponse(t, deploymentPatch(`{"metadata":{"labels":{"a":"b"}}}`), deployment(hostPID)),
			withResponse(t, deploymentPatch(`{"metadata":{"labels":{"a":"b"}}}`), deployment(func(*corev1.PodSpec) {}))},

		{"merge patch spells verbs with an escape", "rbac-wildcard-role",
			clusterRolePatch(`{"rules":[{"apiGroups":[""],"resources":["pods"],"ver\u0062s":["*"]}]}`),
			clusterRolePatch(`{"rules":[{"apiGroups":[""],"resources":["pods"],"ver\u0062s":["get"]}]}`)},
		{"json patch adds a wildcard verb", "rbac-wildcard-role",
			clusterRolePatch(`[{"op":"add","path":"/rules/0/verbs/-","value":"*"}]`),
			clusterRolePatch(`[{"op":"add","path":"/rules/0/verbs/-","value":"list"}]`)},
		{"json patch adds a rule granting pods/exec", "rbac-wildcard-role",
			clusterRolePatch(`[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["pods/exec"],"verbs":["create"]}}]`),
			clusterRolePatch(`[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["pods/log"],"verbs":["get"]}}]`)},
		{"response shows the role after the patch", "rbac-wildcard-role",
			withResponse(t, clusterRolePatch(`{"metadata":{"labels":{"a":"b"}}}`),
				role(rbacv1.PolicyRule{APIGroups: []string{"*"}, Verbs: []string{"*"}, Resources: []string{"*"}})),
			withResponse(t, clusterRolePatch(`{"metadata":{"labels":{"a":"b"}}}`),
				role(rbacv1.PolicyRule{APIGroups: []string{""}, Verbs: []string{"get"}, Resources: []string{"pods"}}))},

		{"json patch adds a subject to cluster-admin", "rbac-admin-binding",
			bindingPatch("cluster-admin", `[{"op":"add","path":"/subjects/-","value":`+mallory+`}]`),
			bindingPatch("view-all", `[{"op":"add","path":"/subjects/-","value":`+mallory+`}]`)},
		{"strategic merge patch adds a subject to cluster-admin", "rbac-admin-binding",
			bindingPatch("cluster-admin", `{"subjects":[`+mallory+`]}`),
			bindingPatch("view-all", `{"subjects":[`+mallory+`]}`)},
		{"strategic merge patch adds a subject to a namespace's admin binding", "rbac-admin-binding",
			patched("rbac.authorization.k8s.io", "rolebindings", "prod", "admin", `{"subjects":[`+mallory+`]}`),
			patched("rbac.authorization.k8s.io", "rolebindings", "prod", "deployers", `{"subjects":[`+mallory+`]}`)},
		{"response shows the binding's role", "rbac-admin-binding",
			withResponse(t, bindingPatch("ops", `{"subjects":[`+mallory+`]}`), namedBinding("ops", "cluster-admin")),
			withResponse(t, bindingPatch("ops", `{"subjects":[`+mallory+`]}`), namedBinding("ops", "view"))},

		{"json patch adds a subject to a binding of an unknown role", "rbac-binding-subjects",
			bindingPatch("ops", `[{"op":"add","path":"/subjects/-","value":`+mallory+`}]`),
			withResponse(t, bindingPatch("ops", `[{"op":"add","path":"/subjects/-","value":`+mallory+`}]`), namedBinding("ops", "view"))},
		{"strategic merge patch adds a subject to a binding of an unknown role", "rbac-binding-subjects",
			bindingPatch("ops", `{"subjects":[`+mallory+`]}`),
			bindingPatch("ops", `[{"op":"remove","path":"/subjects/1"}]`)},
	}
}

// TestPatchEvasions checks that the PATCH requests of issue 17, logged by
// kube-apiserver's own audit backend, fire the rule they evaded, and that
// a near miss of each does not.
func TestPatchEvasions(t *testing.T) {
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range patchEvasions(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := matchIDs(t, set, encodeEvent(t, c.fire)); !slices.Contains(got, c.rule) {
				t.Errorf("PATCH that must fire %s matched %v", c.rule, got)
			}
			if c.miss == nil {
				return
			}
			if got := matchIDs(t, set, encodeEvent(t, c.miss)); slices.Contains(got, c.rule) {
				t.Errorf("near miss fired %s (matched %v)", c.rule, got)
			}
		})
	}
}
