package rules

import (
	"fmt"
	"time"

	"github.com/auditrail/auditrail/internal/units"
)

// Identities of the control plane's own components, which read secrets,
// mint tokens and approve node certificates as part of their job.
var controlPlane = []string{
	"!system:apiserver", "!system:kube-controller-manager", "!system:kube-scheduler",
	"!system:node:*", "!system:serviceaccount:kube-system:*",
}

// adminRoles are the roles a binding must not hand out unnoticed: the
// default ClusterRoles with every permission, cluster-wide or in a
// namespace.
var adminRoles = []string{"cluster-admin", "admin"}

// podSpecs are where a pod spec sits in the objects that carry one.
var podSpecs = []string{"spec", "spec.template.spec", "spec.jobTemplate.spec.template.spec"}

func hostAccessPaths() (trueValued, present []string) {
	for _, obj := range []string{"requestObject", "responseObject"} {
		for _, ps := range podSpecs {
			p := obj + "." + ps
			for _, c := range []string{"containers", "initContainers", "ephemeralContainers"} {
				trueValued = append(trueValued, p+"."+c+".securityContext.privileged")
			}
			for _, h := range []string{"hostNetwork", "hostPID", "hostIPC"} {
				trueValued = append(trueValued, p+"."+h)
			}
			present = append(present, p+".volumes.hostPath")
		}
	}
	return trueValued, present
}

// BuiltinSpecs returns the specs of the built-in rules, on by default.
func BuiltinSpecs() []Spec {
	yes, no := true, false
	privileged, hostPath := hostAccessPaths()
	writes := []string{"create", "update", "patch"}
	return []Spec{{
		ID: "secret-read", Severity: "high",
		Description: "Secret read (get, list or watch) by an identity outside the control plane",
		Verbs:       []string{"get", "list", "watch"}, Resources: []string{"secrets"}, Subresources: []string{""},
		Users: controlPlane, Decision: "allow",
	}, {
		ID: "rbac-admin-binding", Severity: "critical",
		Description: "Role binding granting cluster-admin or admin created or changed (needs Request level)",
		Verbs:       writes, APIGroups: []string{"rbac.authorization.k8s.io"},
		Resources: []string{"clusterrolebindings", "rolebindings"}, Decision: "allow",
		Users: []string{"!system:apiserver"},
		// A patch adding a subject does not carry roleRef: the response
		// does, and failing it, the binding's name may tell.
		AnyFields: []FieldSpec{
			{Paths: []string{"requestObject.roleRef.name", "responseObject.roleRef.name"}, Values: adminRoles},
			{Path: "objectRef.name", Values: adminRoles},
		},
	}, {
		ID: "rbac-binding-subjects", Severity: "medium",
		Description: "Subjects of a role binding changed by a request that does not show which role it binds (needs Request level)",
		Verbs:       []string{"update", "patch"}, APIGroups: []string{"rbac.authorization.k8s.io"},
		Resources: []string{"clusterrolebindings", "rolebindings"}, Decision: "allow",
		Users: []string{"!system:apiserver"},
		// Bindings named after an admin role are rbac-admin-binding's.
		Names: []string{"!cluster-admin", "!admin"},
		Fields: []FieldSpec{
			{Path: "requestObject.subjects", Exists: &yes},
			{Path: "requestObject.roleRef", Exists: &no},
			{Path: "responseObject.roleRef", Exists: &no},
		},
	}, {
		ID: "rbac-wildcard-role", Severity: "high",
		Description: "Role with wildcard verbs or resources, or granting pods/exec, created or changed (needs Request level)",
		Verbs:       writes, APIGroups: []string{"rbac.authorization.k8s.io"},
		Resources: []string{"clusterroles", "roles"}, Decision: "allow",
		Users: []string{"!system:apiserver", "!system:serviceaccount:kube-system:clusterrole-aggregation-controller"},
		AnyFields: []FieldSpec{
			{Paths: []string{"requestObject.rules.verbs", "requestObject.rules.resources",
				"responseObject.rules.verbs", "responseObject.rules.resources"}, Values: []string{`\*`}},
			{Paths: []string{"requestObject.rules.resources", "responseObject.rules.resources"},
				Values: []string{"pods/exec", "pods/attach"}},
		},
	}, {
		ID: "pod-exec", Severity: "high",
		Description: "Interactive access to a pod: exec, attach, port-forward or an ephemeral container",
		Resources:   []string{"pods"}, Subresources: []string{"exec", "attach", "portforward", "ephemeralcontainers"},
		Decision: "allow",
	}, {
		ID: "pod-host-access", Severity: "high",
		Description: "Pod or workload that is privileged or uses hostPath, hostNetwork, hostPID or hostIPC (needs Request level)",
		Verbs:       writes, Subresources: []string{""}, Decision: "allow",
		Resources: []string{"pods", "deployments", "daemonsets", "statefulsets", "replicasets", "jobs", "cronjobs",
			"replicationcontrollers"},
		// Mirror pods of static pods and pods made by controllers come
		// from a spec that was already checked when it was written.
		Users: []string{"!system:node:*", "!system:serviceaccount:kube-system:*-controller"},
		AnyFields: []FieldSpec{
			{Paths: privileged, Values: []string{"true"}},
			{Paths: hostPath, Exists: &yes},
		},
	}, {
		ID: "anonymous-allowed", Severity: "high",
		Description: "Request by system:anonymous that was allowed, beyond the public health and discovery endpoints",
		Users:       []string{"system:anonymous"}, Decision: "allow",
		RequestURIs: []string{"!/healthz*", "!/livez*", "!/readyz*", "!/version*",
			"!/.well-known/openid-configuration*", "!/openid/v1/jwks*"},
	}, {
		ID: "serviceaccount-token", Severity: "medium",
		Description: "Service account token created through the TokenRequest API outside the control plane",
		Verbs:       []string{"create"}, Resources: []string{"serviceaccounts"}, Subresources: []string{"token"},
		Users: controlPlane, Decision: "allow",
	}, {
		ID: "impersonation", Severity: "high",
		Description: "Request made while impersonating another user",
		Fields:      []FieldSpec{{Path: "impersonatedUser", Exists: &yes}},
	}, {
		ID: "admission-webhook-change", Severity: "high",
		Description: "Admission webhook or validating admission policy created, changed or deleted",
		Verbs:       []string{"create", "update", "patch", "delete", "deletecollection"},
		APIGroups:   []string{"admissionregistration.k8s.io"}, Decision: "allow",
		Resources: []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations",
			"validatingadmissionpolicies", "validatingadmissionpolicybindings",
			"mutatingadmissionpolicies", "mutatingadmissionpolicybindings"},
		Users: []string{"!system:apiserver"},
	}, {
		ID: "csr-approval", Severity: "medium",
		Description: "Certificate signing request approved by an identity outside the control plane",
		Verbs:       []string{"update", "patch"}, Resources: []string{"certificatesigningrequests"},
		Subresources: []string{"approval"}, Users: controlPlane, Decision: "allow",
	}, {
		ID: "forbidden-burst", Severity: "medium",
		Description: "Burst of forbidden (403) requests from one user: someone probing their permissions",
		Stages:      []string{"ResponseComplete"}, Codes: []string{"403"},
		Rate: &RateSpec{Count: 10, Window: units.Duration(time.Minute)},
	}}
}

// Builtin returns the compiled built-in rules.
func Builtin() []*Rule {
	specs := BuiltinSpecs()
	out := make([]*Rule, len(specs))
	for i, s := range specs {
		r, err := Compile(s)
		if err != nil {
			panic(fmt.Sprintf("built-in rule: %v", err))
		}
		out[i] = r
	}
	return out
}
