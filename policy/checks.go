package policy

import (
	"fmt"
	"slices"

	"k8s.io/apiserver/pkg/apis/audit"
)

var (
	reads  = []string{"get", "list", "watch"}
	writes = []string{"create", "update", "patch"}
	// returnsObject are the verbs whose response is the object itself.
	returnsObject = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)

var (
	secrets      = kind{resource: "secrets"}
	tokenRequest = kind{resource: "serviceaccounts", subresource: "token"}
	tokenReview  = kind{group: "authentication.k8s.io", resource: "tokenreviews", clusterScoped: true}
)

// leaks is where a body holds credentials: a probe and the lowest level
// that logs that body.
type leak struct {
	probes []probe
	from   audit.Level
	what   string
}

// credentials reports rules that log a body holding a secret's values or
// a token: a Secret written (request) or returned (response), a
// TokenReview's request (the token to review), a TokenRequest's response
// (the new token).
func (l *linter) credentials() {
	s := l.probes
	for _, lk := range []leak{
		{s.resources(s.everyone, writes, secrets), audit.LevelRequest, "the request body holds the secret's values"},
		{s.resources(s.everyone, returnsObject, secrets), audit.LevelRequestResponse, "the response body holds the secret's values"},
		{s.resources(s.everyone, []string{"create"}, tokenReview), audit.LevelRequest, "the request body holds the bearer token under review"},
		{s.resources(s.everyone, []string{"create"}, tokenRequest), audit.LevelRequestResponse, "the response body holds the new service account token"},
	} {
		for _, pr := range lk.probes {
			level, i := l.eval.decide(pr)
			if level.GreaterOrEqual(lk.from) {
				l.addOnce("credential-body", fmt.Sprint(i), SeverityError, l.ruleLine(i),
					"%s %q and logs it at %s: %s, copied into the audit log and every sink; log %s at Metadata",
					where(i), pr, level, lk.what, pr.resource)
			}
		}
	}
}

// catchAll reports a policy under which a request that none of its rules
// names is not recorded.
func (l *linter) catchAll() {
	id := identity{"auditrail-lint-probe", []string{"system:authenticated"}}
	for _, pr := range []probe{
		{id: id, verb: "create", namespace: "auditrail-lint-probe", group: "probe.auditrail.example", resource: "widgets", name: "probe"},
		{id: id, verb: "get", path: "/auditrail-lint-probe"},
	} {
		if level, i := l.eval.decide(pr); level == audit.LevelNone {
			l.addOnce("no-catch-all", "", SeverityWarning, l.ruleLine(i),
				"%s %q, a request no rule names, and it is not recorded: end the rules with a catch-all at Metadata (\"- level: Metadata\")",
				where(i), pr)
		}
	}
}

// matchesAll tells a rule that matches every request: it selects nothing.
func matchesAll(r audit.PolicyRule) bool {
	return len(r.Users) == 0 && len(r.UserGroups) == 0 && len(r.Verbs) == 0 &&
		len(r.Namespaces) == 0 && len(r.Resources) == 0 && len(r.NonResourceURLs) == 0
}

// unreachable reports rules after one that matches every request.
func (l *linter) unreachable() {
	for i, r := range l.policy.Rules {
		if !matchesAll(r) {
			continue
		}
		for j := i + 1; j < len(l.policy.Rules); j++ {
			l.add("unreachable-rule", SeverityWarning, l.ruleLine(j),
				"rules[%d] can never match: rules[%d] (line %d) matches every request first", j, i, l.ruleLine(i))
		}
		return
	}
}

// omitStages reports a policy that logs requests at RequestReceived too:
// each is then recorded twice, with nothing in the first record that the
// last lacks.
func (l *linter) omitStages() {
	if slices.Contains(l.policy.OmitStages, audit.StageRequestReceived) {
		return
	}
	for i, r := range l.policy.Rules {
		if r.Level != audit.LevelNone && !slices.Contains(r.OmitStages, audit.StageRequestReceived) {
			line := l.lines.of("omitStages")
			if line == 1 {
				line = l.ruleLine(i)
			}
			l.add("omit-stages", SeverityWarning, line,
				"omitStages lacks RequestReceived: every request rules[%d] logs is recorded twice (RequestReceived, then ResponseComplete), doubling the volume in every sink", i)
			return
		}
	}
}

// Paths of kube-apiserver's health checks.
var healthChecks = []string{"/healthz", "/healthz/etcd", "/livez", "/livez/ping", "/readyz", "/readyz/shutdown"}

// noise reports the cluster's background chatter logged at Request or
// RequestResponse: events, lease renewals, health checks and the control
// plane's watches, together most of the requests of a quiet cluster.
func (l *linter) noise() {
	s := l.probes
	var probes []probe
	for _, ev := range []kind{{resource: "events"}, {group: "events.k8s.io", resource: "events"}} {
		probes = append(probes, s.resources(s.everyone, append(reads, writes...), ev)...)
	}
	probes = append(probes, s.resources(s.controlPlane, []string{"get", "list", "watch", "update"}, kind{group: "coordination.k8s.io", resource: "leases"})...)
	probes = append(probes, s.paths(s.everyone, healthChecks...)...)
	for _, k := range []kind{{resource: "pods"}, {resource: "nodes", clusterScoped: true}, {resource: "endpoints"}, {resource: "services"},
		{resource: "configmaps"}, {resource: "namespaces", clusterScoped: true}, {group: "discovery.k8s.io", resource: "endpointslices"}} {
		probes = append(probes, s.resources(s.controlPlane, []string{"list", "watch"}, k)...)
	}
	for _, pr := range probes {
		if level, i := l.eval.decide(pr); level.GreaterOrEqual(audit.LevelRequest) {
			l.addOnce("noise-at-request", fmt.Sprint(i), SeverityWarning, l.ruleLine(i),
				"%s %q, background chatter, and logs it at %s: log it at Metadata or None", where(i), pr, level)
		}
	}
}

// requirement is a kind of request that must be recorded at least at a
// level for the CIS Kubernetes Benchmark (3.2.2) or the built-in detection
// rules to see it.
type requirement struct {
	rule   string
	probes []probe
	min    audit.Level
	why    string
}

// coverage reports requests of those outside the control plane that the
// policy records below what the built-in rules and CIS 3.2.2 need.
func (l *linter) coverage() {
	s, o := l.probes, l.probes.outsiders
	var exec []probe
	for _, sub := range []string{"exec", "attach", "portforward", "proxy"} {
		exec = append(exec, s.resources(o, []string{"create", "get"}, kind{resource: "pods", subresource: sub})...)
	}
	exec = append(exec, s.resources(o, []string{"update", "patch"}, kind{resource: "pods", subresource: "ephemeralcontainers"})...)
	exec = append(exec, s.resources(o, []string{"create", "get"}, kind{resource: "services", subresource: "proxy"})...)
	rbac := []kind{
		{group: "rbac.authorization.k8s.io", resource: "roles"}, {group: "rbac.authorization.k8s.io", resource: "rolebindings"},
		{group: "rbac.authorization.k8s.io", resource: "clusterroles", clusterScoped: true},
		{group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", clusterScoped: true},
	}
	workloads := []kind{{resource: "pods"}, {resource: "replicationcontrollers"}, {group: "apps", resource: "deployments"},
		{group: "apps", resource: "daemonsets"}, {group: "apps", resource: "statefulsets"}, {group: "apps", resource: "replicasets"},
		{group: "batch", resource: "jobs"}, {group: "batch", resource: "cronjobs"}}
	var credentials []probe
	credentials = append(credentials, s.resources(o, returnsObject, secrets)...)
	credentials = append(credentials, s.resources(o, []string{"create"}, tokenRequest, tokenReview)...)
	for _, req := range []requirement{
		{"coverage-exec", exec, audit.LevelMetadata, "the pod-exec rule and CIS 3.2.2 need exec, attach, port-forward, proxy and ephemeral containers recorded"},
		{"coverage-rbac", s.resources(o, writes, rbac...), audit.LevelRequest, "the RBAC rules judge the role or binding in the body"},
		{"coverage-rbac", s.resources(o, []string{"delete", "deletecollection"}, rbac...), audit.LevelMetadata, "CIS 3.2.2 needs RBAC changes recorded"},
		{"coverage-secrets", credentials, audit.LevelMetadata, "the secret-read and serviceaccount-token rules and CIS 3.2.2 need every access to secrets and tokens recorded"},
		{"coverage-pods", s.resources(o, writes, workloads...), audit.LevelRequest, "the pod-host-access rule finds privileged pods, hostPath, hostNetwork, hostPID and hostIPC in the body"},
	} {
		for _, pr := range req.probes {
			if level, i := l.eval.decide(pr); !level.GreaterOrEqual(req.min) {
				l.addOnce(req.rule, fmt.Sprint(i), SeverityError, l.ruleLine(i),
					"%s %q and logs it at %s, below %s: %s", where(i), pr, level, req.min, req.why)
			}
		}
	}
}
