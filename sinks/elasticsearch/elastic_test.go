package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// elasticDocs indexes the lines of the audit log files with format
// elastic-kubernetes into the estest server and returns each event's
// document and the event as written, by auditID and stage.
func elasticDocs(t *testing.T, files ...string) (docs, events map[string]map[string]any) {
	t.Helper()
	tg := newTarget(t)
	srv := tg.fakeOnly()
	cfg := tg.config("")
	cfg.Index, cfg.Format, cfg.DataStreamNamespace = "", FormatElasticKubernetes, "prod"
	cfg.ApplyDefaults()
	s := newSink(t, cfg)
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(b)), "\n")...)
	}
	b := sinktest.Batch(sinktest.File(1), 0, lines...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	stored := srv.Docs("logs-kubernetes.audit_logs-prod")
	if len(stored) != len(lines) {
		t.Fatalf("%d documents in logs-kubernetes.audit_logs-prod for %d lines", len(stored), len(lines))
	}
	docs, events = map[string]map[string]any{}, map[string]map[string]any{}
	for i := range b.Records {
		var ev, doc map[string]any
		if err := json.Unmarshal(b.Records[i].Line, &ev); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if err := json.Unmarshal(stored[string(sinks.AppendID(nil, &b.Records[i]))], &doc); err != nil {
			t.Fatalf("document of line %d: %v", i, err)
		}
		key := fmt.Sprint(ev["auditID"], "/", ev["stage"])
		docs[key], events[key] = doc, ev
	}
	return docs, events
}

// corpus is every audit log the layout is checked on: the example log
// and the scenarios, both written by kube-apiserver's audit log backend.
var corpus = []string{"../../examples/audit/audit.log", "testdata/kube-scenarios.log"}

// lookup returns the values at a dotted path in v as KQL sees them:
// arrays are searched element by element, and a key may itself hold dots
// (kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name).
func lookup(v any, path string) []any {
	if path == "" {
		if l, ok := v.([]any); ok {
			return l
		}
		return []any{v}
	}
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, lookup(e, path)...)
		}
		return out
	case map[string]any:
		parts := strings.Split(path, ".")
		var out []any
		for i := len(parts); i > 0; i-- {
			if e, ok := x[strings.Join(parts[:i], ".")]; ok {
				out = append(out, lookup(e, strings.Join(parts[i:], "."))...)
			}
		}
		return out
	}
	return nil
}

// want returns what a document must hold at a field the rules query,
// from the event as written, as the integration's pipeline would set it.
func want(ev map[string]any, field string) []any {
	switch field {
	case "data_stream.dataset", "event.dataset":
		return []any{"kubernetes.audit_logs"}
	case "data_stream.namespace":
		return []any{"prod"}
	case "event.action":
		return lookup(ev, "verb")
	case "user.name":
		return lookup(ev, "user.username")
	case "user_agent.original":
		return lookup(ev, "userAgent")
	case "source.ip":
		if ips := lookup(ev, "sourceIPs"); len(ips) > 0 {
			return ips[:1]
		}
		return nil
	}
	rest, ok := strings.CutPrefix(field, "kubernetes.audit.")
	if !ok {
		return nil
	}
	if key, ok := strings.CutPrefix(rest, "annotations."); ok {
		ann, _ := ev["annotations"].(map[string]any)
		for k, v := range ann {
			if strings.ReplaceAll(k, ".", "_") == key {
				return []any{v}
			}
		}
		return nil
	}
	return lookup(ev, rest)
}

type ruleField struct {
	Field string   `json:"field"`
	Rules []string `json:"rules"`
	Unset string   `json:"unset"`
}

func ruleFields(t *testing.T) []ruleField {
	b, err := os.ReadFile("testdata/elastic-rule-fields.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Fields []ruleField }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Fields
}

// Every field Elastic Security's Kubernetes rules query is in the
// documents built from kube-apiserver's events, with the value the
// integration would give it, and at least one event of the corpus carries
// each.
func TestElasticLayoutCarriesRuleFields(t *testing.T) {
	docs, events := elasticDocs(t, corpus...)
	for _, f := range ruleFields(t) {
		if f.Unset != "" {
			continue
		}
		carried := 0
		for key, ev := range events {
			w := want(ev, f.Field)
			got := lookup(docs[key], f.Field)
			if !reflect.DeepEqual(got, w) && !(len(w) == 0 && len(got) == 0) {
				t.Errorf("%s (queried by %d rules, e.g. %q), event %s: document has %v, want %v", f.Field, len(f.Rules), f.Rules[0], key, got, w)
			}
			if len(got) > 0 {
				carried++
			}
		}
		if carried == 0 {
			t.Errorf("%s (queried by %q): no event of the corpus carries it", f.Field, f.Rules)
		}
	}
}

// The ECS fields and the handling of bodies and annotations, checked on
// one event of each shape.
func TestElasticLayoutECS(t *testing.T) {
	docs, _ := elasticDocs(t, corpus...)
	doc := docs["attack-privileged-pod/ResponseComplete"]
	for field, w := range map[string][]any{
		"@timestamp":                   {"2026-11-30T03:00:00.003000Z"},
		"data_stream.type":             {"logs"},
		"event.kind":                   {"event"},
		"event.outcome":                {"success"},
		"user.id":                      {"uid-alice@example.com"},
		"client.ip":                    {"203.0.113.7"},
		"related.ip":                   {"203.0.113.7", "10.0.0.1"},
		"related.user":                 {"alice@example.com"},
		"orchestrator.type":            {"kubernetes"},
		"orchestrator.namespace":       {"default"},
		"orchestrator.resource.type":   {"pods"},
		"orchestrator.resource.name":   {"root"},
		"orchestrator.api_version":     {"v1"},
		"orchestrator.cluster.name":    {"prod-eu"},
		"container.image.name":         {"alpine:3.20", "registry.k8s.io/pause:3.10"},
		"auditrail.node":               {"master-1"},
		"kubernetes.audit.annotations": {map[string]any{"authorization_k8s_io/decision": "allow", "authorization_k8s_io/reason": `RBAC: allowed by ClusterRoleBinding "x"`}},
	} {
		if got := lookup(doc, field); !reflect.DeepEqual(got, w) {
			t.Errorf("%s = %v, want %v", field, got, w)
		}
	}
	for _, gone := range []string{"kubernetes.audit.requestObject.metadata", "kubernetes.audit.responseObject.metadata"} {
		if got := lookup(doc, gone); len(got) > 0 {
			t.Errorf("%s kept (%v); the integration's pipeline removes it", gone, got)
		}
	}
	if got := lookup(docs["attack-forbidden-create/ResponseComplete"], "event.outcome"); !reflect.DeepEqual(got, []any{"failure"}) {
		t.Errorf("forbidden request: event.outcome = %v, want failure", got)
	}
	if got := lookup(docs["attack-impersonate-admin/ResponseComplete"], "related.user"); !reflect.DeepEqual(got, []any{"alice@example.com", "system:admin"}) {
		t.Errorf("impersonation: related.user = %v", got)
	}
	if got := lookup(docs["attack-user-exec/ResponseComplete"], "container"); len(got) > 0 {
		t.Errorf("exec into a pod is no pod creation: container = %v", got)
	}
}

// glob matches KQL's wildcard * against a keyword, case-sensitively.
func glob(pattern, s string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
	return regexp.MustCompile(re).MatchString(s)
}

// any reports whether a value of doc at field matches one of the KQL
// patterns.
func anyOf(doc map[string]any, field string, patterns ...string) bool {
	for _, v := range lookup(doc, field) {
		for _, p := range patterns {
			if glob(p, fmt.Sprint(v)) {
				return true
			}
		}
	}
	return false
}

func has(doc map[string]any, field string) bool { return len(lookup(doc, field)) > 0 }

// eq reports whether a value of doc at field is one of values, as a
// quoted KQL value or an ES|QL ==/IN: no wildcards.
func eq(doc map[string]any, field string, values ...string) bool {
	for _, v := range lookup(doc, field) {
		for _, w := range values {
			if fmt.Sprint(v) == w {
				return true
			}
		}
	}
	return false
}

func allowed(d map[string]any) bool {
	return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "kubernetes.audit.annotations.authorization_k8s_io/decision", "allow")
}

// elasticRules are conditions of Elastic Security's Kubernetes rules
// (elastic/detection-rules rules/integrations/kubernetes), KQL and EQL
// translated as written, exception lists shortened: the name of the rule,
// the scenario whose events must match (attack-<scenario>) and, where the
// corpus has one, the benign events that must not (benign-<scenario>).
var elasticRules = []struct {
	name, scenario string
	match          func(d map[string]any) bool
}{
	{"Kubernetes Events Deleted", "events-deleted", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "kubernetes.audit.verb", "delete") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "events") && anyOf(d, "kubernetes.audit.stage", "ResponseComplete")
	}},
	{"Kubernetes Forbidden Creation Request", "forbidden-create", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "kubernetes.audit.verb", "create") &&
			anyOf(d, "kubernetes.audit.stage", "ResponseComplete") && anyOf(d, "kubernetes.audit.annotations.authorization_k8s_io/decision", "forbid")
	}},
	{"Kubernetes User Exec into Pod", "user-exec", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.verb", "get", "create") && anyOf(d, "kubernetes.audit.objectRef.subresource", "exec") &&
			anyOf(d, "kubernetes.audit.stage", "ResponseComplete", "ResponseStarted") && anyOf(d, "kubernetes.audit.level", "Request") &&
			!(anyOf(d, "kubernetes.audit.objectRef.namespace", "trident") && anyOf(d, "kubernetes.audit.objectRef.name", "trident-controller-*"))
	}},
	{"Kubernetes Privileged Pod Created", "privileged-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.verb", "create") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.containers.securityContext.privileged", "true") &&
			!anyOf(d, "kubernetes.audit.requestObject.spec.containers.image", "quay.io/calico*", "rancher/system-agent*", "mirror.gcr.io/aquasec/trivy*")
	}},
	{"Kubernetes Pod Created With HostNetwork", "hostnetwork-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.verb", "create", "patch", "update") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.hostNetwork", "true") &&
			!(anyOf(d, "kubernetes.audit.requestObject.spec.containers.image", "quay.io/calico/node*", "*elastic-agent*") ||
				anyOf(d, "kubernetes.audit.objectRef.namespace", "calico", "calico-system", "kube-system"))
	}},
	{"Kubernetes Pod Created With HostPID", "hostpid-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.hostPID", "true") &&
			!anyOf(d, "kubernetes.audit.requestObject.spec.containers.image", "quay.io/prometheus/node-exporter*", "rancher/system-agent*")
	}},
	{"Kubernetes Pod Created With HostIPC", "hostipc-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.hostIPC", "true") &&
			!anyOf(d, "kubernetes.audit.requestObject.spec.containers.image", "docker.elastic.co/beats/elastic-agent*")
	}},
	{"Kubernetes Pod Created with a Sensitive hostPath Volume", "hostpath-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.volumes.hostPath.path", "/", "/proc", "/root", "/var", "/var/run/docker.sock", "/etc", "/etc/kubernetes", "/var/lib/kubelet")
	}},
	{"Kubernetes Container Created with Excessive Linux Capabilities", "capabilities-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.verb", "create") && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.containers.securityContext.capabilities.add", "BPF", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "SYSLOG") &&
			!anyOf(d, "kubernetes.audit.objectRef.namespace", "kube-system")
	}},
	{"Kubernetes Suspicious Assignment of Controller Service Account", "controller-sa-pod", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.verb", "create") && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") &&
			anyOf(d, "kubernetes.audit.objectRef.namespace", "kube-system") && anyOf(d, "kubernetes.audit.requestObject.spec.serviceAccountName", "*controller")
	}},
	{"Kubernetes Cluster-Admin Role Binding Created", "cluster-admin-binding", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "clusterrolebindings", "rolebindings") && anyOf(d, "kubernetes.audit.verb", "create") &&
			anyOf(d, "kubernetes.audit.requestObject.roleRef.name", "cluster-admin") && anyOf(d, "kubernetes.audit.level", "RequestResponse") &&
			anyOf(d, "kubernetes.audit.stage", "ResponseComplete")
	}},
	{"Kubernetes RBAC Wildcard Elevation on Existing Role", "role-wildcard", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "roles", "clusterroles") && anyOf(d, "kubernetes.audit.verb", "update", "patch") &&
			eq(d, "kubernetes.audit.level", "RequestResponse") && eq(d, "kubernetes.audit.stage", "ResponseComplete") &&
			has(d, "kubernetes.audit.sourceIPs") && !eq(d, "kubernetes.audit.sourceIPs", "::1", "127.0.0.1") &&
			eq(d, "kubernetes.audit.responseObject.rules.verbs", "*") && eq(d, "kubernetes.audit.responseObject.rules.resources", "*")
	}},
	{"Kubernetes Creation or Modification of Sensitive Role", "sensitive-role", func(d map[string]any) bool {
		sensitive := func(body string) bool {
			verbs, resources := "kubernetes.audit."+body+".rules.verbs", "kubernetes.audit."+body+".rules.resources"
			return eq(d, verbs, "*", "escalate", "bind", "impersonate") ||
				(eq(d, verbs, "*", "create", "patch", "update") && eq(d, resources, "*", "clusterroles", "clusterrolebindings", "roles", "rolebindings", "pods/exec", "serviceaccounts/token", "nodes/proxy", "daemonsets")) ||
				(eq(d, verbs, "*", "get", "list") && eq(d, resources, "*", "secrets"))
		}
		return eq(d, "kubernetes.audit.objectRef.resource", "roles", "clusterroles") && eq(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			eq(d, "kubernetes.audit.annotations.authorization_k8s_io/decision", "allow") && eq(d, "kubernetes.audit.level", "RequestResponse") &&
			eq(d, "kubernetes.audit.stage", "ResponseComplete") && !eq(d, "kubernetes.audit.sourceIPs", "::1", "127.0.0.1") &&
			!(anyOf(d, "user.name", "eks:*") && anyOf(d, "kubernetes.audit.objectRef.name", "eks:*")) &&
			(sensitive("requestObject") || sensitive("responseObject"))
	}},
	{"Kubernetes Secret get or list with Suspicious User Agent", "secret-curl", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "event.action", "get", "list") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "secrets") &&
			anyOf(d, "user_agent.original", "curl*", "python*", "Python*", "wget*", "Go-http*", "perl*", "java*", "node*", "php*") && has(d, "source.ip")
	}},
	{"Kubernetes Secret get or list from Node or Pod Service Account", "secret-pod-sa", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "event.action", "get", "list") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "secrets") && anyOf(d, "user.name", "system:serviceaccount:*", "system:node:*") &&
			has(d, "source.ip") && !anyOf(d, "source.ip", "127.0.0.1") &&
			!anyOf(d, "kubernetes.audit.user.groups", "system:serviceaccounts:flux-system", "system:serviceaccounts:kyverno") &&
			!(anyOf(d, "kubernetes.audit.user.username", "system:serviceaccount:security:trivy-operator") &&
				anyOf(d, "kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name", "trivy-operator-*"))
	}},
	{"Kubernetes Secrets List Across Cluster or Sensitive Namespaces", "secrets-list-all", func(d map[string]any) bool {
		return anyOf(d, "event.dataset", "kubernetes.audit_logs") && anyOf(d, "event.action", "list") && anyOf(d, "kubernetes.audit.objectRef.resource", "secrets") &&
			anyOf(d, "kubernetes.audit.requestURI", "/api/v1/secrets", "/api/v1/secrets?limit*", "/api/v1/namespaces/kube-system/secrets", "/api/v1/namespaces/kube-system/secrets?limit*") &&
			has(d, "source.ip") && !anyOf(d, "source.ip", "::1", "127.0.0.1") && !anyOf(d, "user.name", "system:kube-controller-manager")
	}},
	{"Kubernetes Exposed Service Created With Type NodePort", "nodeport", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "services") && anyOf(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			anyOf(d, "kubernetes.audit.requestObject.spec.type", "NodePort")
	}},
	{"Kubernetes API Request Impersonating Privileged Identity", "impersonate-admin", func(d map[string]any) bool {
		return allowed(d) && has(d, "kubernetes.audit.impersonatedUser.username") && anyOf(d, "kubernetes.audit.verb", "create", "delete", "get", "list", "patch", "update") &&
			(anyOf(d, "kubernetes.audit.impersonatedUser.username", "admin", "cluster-admin", "system:admin", "system:node:*", "system:serviceaccount:kube-system:*") ||
				anyOf(d, "kubernetes.audit.impersonatedUser.groups", "cluster-admin", "system:cluster-admins", "system:masters")) &&
			!anyOf(d, "user.name", "system:kube-controller-manager", "system:node:*", "eks:*")
	}},
	{"Kubernetes Service Account Token Created via TokenRequest API", "token-request", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "kubernetes.audit.verb", "create") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "serviceaccounts") && anyOf(d, "kubernetes.audit.objectRef.subresource", "token") &&
			has(d, "user.name") && !anyOf(d, "user.name", "system:kube-controller-manager", "system:kube-scheduler", "system:node:*", "system:serviceaccount:kube-system:*")
	}},
	{"Kubernetes CoreDNS or Kube-DNS Configuration Modified", "coredns-modified", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "configmaps") && anyOf(d, "kubernetes.audit.objectRef.name", "coredns", "kube-dns", "coredns-custom") &&
			anyOf(d, "kubernetes.audit.objectRef.namespace", "kube-system") && anyOf(d, "kubernetes.audit.verb", "update", "patch", "delete") &&
			!anyOf(d, "user.name", "system:serviceaccount:kube-system:coredns", "system:node:*")
	}},
	{"Kubernetes Anonymous User Create/Update/Patch Pods Request", "anonymous-pod", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") &&
			(anyOf(d, "kubernetes.audit.user.username", "system:anonymous", "system:unauthenticated") || !has(d, "kubernetes.audit.user.username")) &&
			anyOf(d, "kubernetes.audit.level", "RequestResponse", "ResponseComplete", "Request") && anyOf(d, "kubernetes.audit.verb", "create", "update", "patch") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "pods")
	}},
	{"Kubernetes Ephemeral Container Added to Pod", "ephemeral-container", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.objectRef.resource", "pods") && anyOf(d, "kubernetes.audit.objectRef.subresource", "ephemeralcontainers") &&
			anyOf(d, "kubernetes.audit.verb", "update", "patch") && !anyOf(d, "user.name", "system:node:*", "system:serviceaccount:kube-system:*")
	}},
	{"Kubernetes Service Account Modified RBAC Objects", "sa-rbac-write", func(d map[string]any) bool {
		return allowed(d) && anyOf(d, "kubernetes.audit.user.username", "system:serviceaccount:*") &&
			!anyOf(d, "kubernetes.audit.user.username", "system:serviceaccount:kube-system:clusterrole-aggregation-controller", "system:serviceaccount:kube-system:generic-garbage-collector") &&
			anyOf(d, "kubernetes.audit.objectRef.resource", "clusterrolebindings", "clusterroles", "rolebindings", "roles") &&
			anyOf(d, "kubernetes.audit.verb", "create", "delete", "patch", "update")
	}},
	{"Kubernetes Denied Service Account Request via Unusual User Agent", "denied-sa", func(d map[string]any) bool {
		return anyOf(d, "data_stream.dataset", "kubernetes.audit_logs") && anyOf(d, "kubernetes.audit.user.username", "system:serviceaccount:*") &&
			anyOf(d, "kubernetes.audit.annotations.authorization_k8s_io/decision", "forbid") &&
			has(d, "user_agent.original") && !anyOf(d, "user_agent.original", "*kubernetes/$Format", "karpenter", "Prometheus*")
	}},
	{"Kubernetes API Server Proxying Request to Kubelet", "node-proxy", func(d map[string]any) bool {
		return anyOf(d, "kubernetes.audit.objectRef.subresource", "proxy") && anyOf(d, "kubernetes.audit.objectRef.resource", "nodes") &&
			!anyOf(d, "kubernetes.audit.requestURI", "*metrics*", "*healthz*", "*stats/summary*", "*configz*") &&
			!anyOf(d, "user.name", "system:kube-controller-manager", "system:node:*", "system:serviceaccount:kube-system:*")
	}},
	{"Kubernetes Admission Webhook Created or Modified", "webhook", func(d map[string]any) bool {
		return anyOf(d, "kubernetes.audit.objectRef.resource", "mutatingwebhookconfigurations", "validatingwebhookconfigurations") &&
			anyOf(d, "kubernetes.audit.verb", "create", "update", "patch", "delete") && anyOf(d, "kubernetes.audit.annotations.authorization_k8s_io/decision", "allow") &&
			has(d, "user.name") && !anyOf(d, "user.name", "system:kube-controller-manager", "system:serviceaccount:kube-system:*", "system:serviceaccount:cert-manager:*") &&
			has(d, "kubernetes.audit.objectRef.name") && !anyOf(d, "kubernetes.audit.objectRef.name", "pod-identity-webhook", "eks-*", "gke-*")
	}},
}

// The rules' conditions, run on the documents, match the events of their
// attack and none of the benign ones. (On the example log they match
// what they are about: its node deleting events, for one.)
func TestElasticRulesMatchAttacks(t *testing.T) {
	docs, _ := elasticDocs(t, corpus...)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, r := range elasticRules {
		t.Run(r.scenario, func(t *testing.T) {
			attack := "attack-" + r.scenario + "/ResponseComplete"
			if docs[attack] == nil {
				t.Fatalf("no scenario %s", attack)
			}
			if !r.match(docs[attack]) {
				t.Errorf("%q does not match its attack: %v", r.name, docs[attack])
			}
			for _, k := range keys {
				if strings.HasPrefix(k, "benign-") && r.match(docs[k]) {
					t.Errorf("%q matches %s", r.name, k)
				}
			}
		})
	}
	if len(elasticRules) < 10 {
		t.Errorf("%d rules translated, want at least 10", len(elasticRules))
	}
}

// The index template installed with installTemplate is the one in
// deploy/elasticsearch, for the integration's data stream, below the
// integration's own priority.
func TestElasticTemplate(t *testing.T) {
	deployed, err := os.ReadFile("../../deploy/elasticsearch/elastic-kubernetes-template.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(deployed, elasticTemplate) {
		t.Error("deploy/elasticsearch/elastic-kubernetes-template.json differs from the template the sink installs")
	}
	tg := newTarget(t)
	srv := tg.fakeOnly()
	cfg := tg.config("")
	cfg.Index, cfg.Format, cfg.InstallTemplate = "", FormatElasticKubernetes, true
	cfg.ApplyDefaults()
	if err := newSink(t, cfg).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		IndexPatterns []string       `json:"index_patterns"`
		DataStream    map[string]any `json:"data_stream"`
		Priority      int
		Template      struct {
			Mappings map[string]any
		}
	}
	if err := json.Unmarshal(srv.Template(elasticTemplateName), &tmpl); err != nil {
		t.Fatalf("template %s: %v", elasticTemplateName, err)
	}
	if !reflect.DeepEqual(tmpl.IndexPatterns, []string{"logs-kubernetes.audit_logs-*"}) || tmpl.DataStream == nil || tmpl.Priority >= 200 {
		t.Errorf("template: patterns %v, data stream %v, priority %d", tmpl.IndexPatterns, tmpl.DataStream, tmpl.Priority)
	}
	// Every field the rules query is mapped (so they search it), and
	// user.extra is flattened (dotted keys cannot break it).
	for _, f := range ruleFields(t) {
		if f.Unset != "" || strings.HasPrefix(f.Field, "kubernetes.audit.annotations.") || strings.HasPrefix(f.Field, "kubernetes.audit.user.extra.") {
			continue
		}
		if mapped(tmpl.Template.Mappings, f.Field) == nil {
			t.Errorf("%s is not mapped", f.Field)
		}
	}
	if m := mapped(tmpl.Template.Mappings, "kubernetes.audit.user.extra"); m == nil || m["type"] != "flattened" {
		t.Errorf("kubernetes.audit.user.extra mapped as %v, want flattened", m)
	}
}

// mapped returns the mapping of a dotted field in mappings, or nil.
func mapped(mappings map[string]any, field string) map[string]any {
	m := mappings
	for _, p := range strings.Split(field, ".") {
		props, _ := m["properties"].(map[string]any)
		next, ok := props[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// Dotted keys in user.extra are kept, as the rules query them, unless
// Elasticsearch's expansion of dots into objects would fail the
// document: a key that is a dotted prefix of another, or with an empty
// part.
func TestSafeExtraKeys(t *testing.T) {
	extra := map[string]any{
		"authentication.kubernetes.io/pod-name": []any{"web-1"},
		"a.b":                                   []any{"x"},
		"a.b-c":                                 []any{"x"},
		"a.b.c":                                 []any{"y"},
		"x..y":                                  []any{"z"},
		".lead":                                 []any{"z"},
		"scopes":                                []any{"z"},
	}
	got := safeKeys(extra)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	wantKeys := []string{"_lead", "a.b-c", "a.b.c", "a_b", "authentication.kubernetes.io/pod-name", "scopes", "x__y"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys %v, want %v", keys, wantKeys)
	}
	if err := expandDots(got); err != nil {
		t.Errorf("the keys kept would fail an object mapping: %v", err)
	}
	if err := expandDots(extra); err == nil {
		t.Error("expandDots finds no conflict in the original keys; the test proves nothing")
	}
}

// expandDots expands dotted keys into objects as Elasticsearch does for
// an object field, and reports a key that would be a value and an object
// at once, or has an empty part.
func expandDots(m map[string]any) error {
	root := map[string]any{}
	for k, v := range m {
		parts := strings.Split(k, ".")
		node := root
		for i, p := range parts {
			if p == "" {
				return fmt.Errorf("key %q has an empty part", k)
			}
			if i == len(parts)-1 {
				if _, ok := node[p]; ok {
					return fmt.Errorf("key %q is a value and an object", k)
				}
				node[p] = v
				break
			}
			next, ok := node[p]
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			obj, ok := next.(map[string]any)
			if !ok {
				return fmt.Errorf("key %q is a value and an object", k)
			}
			node = obj
		}
	}
	return nil
}

// Redaction happens before the sink and stays done in this layout; rule
// ids tag the document; lines that are not events and the agent's own
// records reach the data stream too.
func TestElasticLayoutRedactedTaggedAndWhole(t *testing.T) {
	tg := newTarget(t)
	srv := tg.fakeOnly()
	cfg := tg.config("")
	cfg.Index, cfg.Format = "", FormatElasticKubernetes
	cfg.ApplyDefaults()
	s := newSink(t, cfg)
	const secret = "c3VwZXJzZWNyZXQtZGItcGFzc3dvcmQ="
	line := `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"5e1f","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/secrets","verb":"create","user":{"username":"alice"},"sourceIPs":["10.0.0.9"],"objectRef":{"resource":"secrets","namespace":"default","name":"db","apiVersion":"v1"},"requestObject":{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"` + secret + `"}},"requestReceivedTimestamp":"2026-11-30T03:00:00.000000Z","stageTimestamp":"2026-11-30T03:00:00.002000Z","annotations":{"authorization.k8s.io/decision":"allow"}}`
	b := sinktest.Batch(sinktest.File(1), 0, line, "not json at all", `{"kind":"AuditrailGap","apiVersion":"auditrail.io/v1","bytes":42}`)
	r := &b.Records[0]
	sum := r.LineSum()
	redacted, res := redact.Event(nil, r.Line, r.Event)
	if !res.Changed() {
		t.Fatal("the secret was not redacted; the test proves nothing")
	}
	r.Line, r.Sum, r.Event = redacted, &sum, new(auditjson.Event)
	if err := auditjson.Parse(r.Line, r.Event); err != nil {
		t.Fatal(err)
	}
	r.Rules = []string{"secret-write"}
	b.Records[2].Kind = sinks.KindGap
	b.Records[2].Event = nil
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	docs := srv.Docs("logs-kubernetes.audit_logs-default")
	if len(docs) != 3 {
		t.Fatalf("%d documents, want 3", len(docs))
	}
	var ev, unparsed, gap map[string]any
	json.Unmarshal(docs[string(sinks.AppendID(nil, r))], &ev)
	json.Unmarshal(docs[string(sinks.AppendID(nil, &b.Records[1]))], &unparsed)
	json.Unmarshal(docs[string(sinks.AppendID(nil, &b.Records[2]))], &gap)
	if raw, _ := json.Marshal(ev); bytes.Contains(raw, []byte(secret)) || !has(ev, "kubernetes.audit.requestObject.data.password") {
		t.Errorf("event document: secret value present or field gone: %s", raw)
	}
	if got := lookup(ev, "auditrail.rules"); !reflect.DeepEqual(got, []any{"secret-write"}) {
		t.Errorf("auditrail.rules = %v", got)
	}
	if !anyOf(unparsed, "event.kind", "pipeline_error") || !anyOf(unparsed, "message", "not json at all") || !has(unparsed, "@timestamp") {
		t.Errorf("unparsed line: %v", unparsed)
	}
	if !anyOf(gap, "event.action", "gap") || !anyOf(gap, "auditrail.record.bytes", "42") {
		t.Errorf("gap record: %v", gap)
	}
}

// Configuration of the format: the data stream follows the namespace,
// and index cannot point elsewhere.
func TestElasticFormatConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Format: FormatElasticKubernetes}, ""},
		{Config{Format: FormatElasticKubernetes, DataStreamNamespace: "prod_eu"}, ""},
		{Config{Format: FormatElasticKubernetes, DataStreamNamespace: "prod-eu"}, `elasticsearch.dataStreamNamespace "prod-eu" must be lowercase`},
		{Config{Format: FormatElasticKubernetes, Index: "audit"}, `elasticsearch.index "audit": leave it unset with format: elastic-kubernetes`},
		{Config{DataStreamNamespace: "prod"}, "elasticsearch.dataStreamNamespace is only valid with format: elastic-kubernetes"},
		{Config{Format: "ecs"}, `elasticsearch.format "ecs" must be auditrail or elastic-kubernetes`},
	} {
		tc.cfg.Addresses = []string{"https://es:9200"}
		tc.cfg.ApplyDefaults()
		err := tc.cfg.Validate("elasticsearch")
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err = %v, want %q", tc.cfg.Format, err, tc.want)
		}
		if tc.want == "" && tc.cfg.Index != "logs-kubernetes.audit_logs-"+tc.cfg.DataStreamNamespace {
			t.Errorf("index %q for namespace %q", tc.cfg.Index, tc.cfg.DataStreamNamespace)
		}
	}
}
