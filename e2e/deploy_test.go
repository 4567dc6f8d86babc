package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"sigs.k8s.io/yaml"

	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/sinks/registry"
)

// The deployment artifacts: the Helm chart (linted, rendered, and every
// manifest decoded strictly into the Kubernetes API types), the kops
// add-on, the kubeadm static pod and the audit policy.

const chart = "../charts/auditrail"

// kubeVersion is what helm template renders for; a Helm built with go
// install would otherwise assume v1.20, below the chart's kubeVersion.
const kubeVersion = "1.31.0"

func helmBin(t *testing.T) string {
	t.Helper()
	m := miniotest.Binary() // .tools/bin/minio: helm sits beside it
	if m != "" {
		if h := filepath.Join(filepath.Dir(m), "helm"); fileExists(h) {
			return h
		}
	}
	if os.Getenv("AUDITRAIL_REQUIRE_TOOLS") == "1" {
		t.Fatal("helm not found in .tools/bin: run scripts/tools.sh")
	}
	t.Skip("helm not found in .tools/bin: run scripts/tools.sh")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := testproc.Command(helmBin(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

// decodeStrict decodes a YAML manifest into v, failing on unknown fields.
func decodeStrict(t *testing.T, doc []byte, v any) {
	t.Helper()
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, doc)
	}
}

// manifests splits a multi-document YAML stream.
func manifests(t *testing.T, b []byte) [][]byte {
	t.Helper()
	rd := utilyaml.NewYAMLReader(bufioReader(b))
	var out [][]byte
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 && !isOnlyComments(doc) {
			out = append(out, doc)
		}
	}
}

func isOnlyComments(doc []byte) bool {
	for _, l := range strings.Split(string(doc), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// rendered is a chart rendering, decoded.
type rendered struct {
	ds    *appsv1.DaemonSet
	cm    *corev1.ConfigMap
	sa    *corev1.ServiceAccount
	svc   *corev1.Service
	pods  []*corev1.Pod // helm test hooks
	np    *networkingv1.NetworkPolicy
	other map[string]map[string]any
}

func decodeAll(t *testing.T, out []byte) *rendered {
	t.Helper()
	r := &rendered{other: map[string]map[string]any{}}
	for _, doc := range manifests(t, out) {
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "DaemonSet":
			r.ds = &appsv1.DaemonSet{}
			decodeStrict(t, doc, r.ds)
		case "ConfigMap":
			r.cm = &corev1.ConfigMap{}
			decodeStrict(t, doc, r.cm)
		case "ServiceAccount":
			r.sa = &corev1.ServiceAccount{}
			decodeStrict(t, doc, r.sa)
		case "Service":
			r.svc = &corev1.Service{}
			decodeStrict(t, doc, r.svc)
		case "NetworkPolicy":
			r.np = &networkingv1.NetworkPolicy{}
			decodeStrict(t, doc, r.np)
		case "Pod":
			p := &corev1.Pod{}
			decodeStrict(t, doc, p)
			r.pods = append(r.pods, p)
		case "ServiceMonitor", "PrometheusRule":
			// Prometheus Operator types are not in k8s.io/api; check shape.
			var m map[string]any
			yaml.Unmarshal(doc, &m)
			if meta.APIVersion != "monitoring.coreos.com/v1" || m["spec"] == nil {
				t.Errorf("%s: apiVersion %s, spec %v", meta.Kind, meta.APIVersion, m["spec"])
			}
			r.other[meta.Kind] = m
		default:
			t.Errorf("unexpected kind %s in the rendered chart", meta.Kind)
		}
	}
	return r
}

func TestHelmChart(t *testing.T) {
	helm(t, "lint", "--strict", chart)
	helm(t, "lint", "--strict", chart, "-f", chart+"/ci/full-values.yaml")
	for _, tc := range []struct {
		name   string
		values []string
		// dir is the audit directory the values configure.
		dir, file string
	}{
		{"defaults", nil, "/var/log/kubernetes/audit", "audit.log"},
		{"full", []string{"-f", chart + "/ci/full-values.yaml"}, "/var/log/kube-apiserver", "audit.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := helm(t, append([]string{"template", "auditrail", chart, "-n", "kube-system", "--kube-version", kubeVersion}, tc.values...)...)
			r := decodeAll(t, out)
			checkDaemonSet(t, r.ds, tc.dir)
			checkConfig(t, r.cm.Data["auditrail.yaml"], tc.dir+"/"+tc.file, podIPAddr)
			if r.sa == nil || r.svc == nil || len(r.pods) != 1 {
				t.Errorf("missing ServiceAccount, Service or test pod")
			}
			if tc.name == "defaults" && r.np != nil {
				t.Error("a NetworkPolicy is rendered by default")
			}
			if tc.name == "full" {
				if r.other["ServiceMonitor"] == nil || r.other["PrometheusRule"] == nil {
					t.Error("monitoring enabled but no ServiceMonitor/PrometheusRule rendered")
				}
				checkNetworkPolicy(t, r.np)
				if r.sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
					t.Error("IRSA annotation missing")
				}
				c := r.ds.Spec.Template.Spec.Containers[0]
				if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef.Name != "auditrail-credentials" {
					t.Errorf("credentials Secret not in envFrom: %+v", c.EnvFrom)
				}
			}
		})
	}
	// The schema rejects what the chart would silently ignore.
	cmd := testproc.Command(helmBin(t), "template", "x", chart, "--kube-version", kubeVersion, "--set", "auditLog.directory=relative")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "auditLog/directory") {
		t.Errorf("a relative audit directory was accepted: %v\n%s", err, out)
	}
}

// checkNetworkPolicy: the agent's pods take ingress on the metrics port
// only, from the peers the values list.
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy) {
	t.Helper()
	if np == nil {
		t.Fatal("networkPolicy.enabled but no NetworkPolicy rendered")
	}
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"] != "auditrail" {
		t.Errorf("NetworkPolicy selects %v", np.Spec.PodSelector.MatchLabels)
	}
	if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
		t.Errorf("policyTypes %v, want Ingress (egress is open when the values list none)", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || len(np.Spec.Ingress[0].Ports) != 1 ||
		np.Spec.Ingress[0].Ports[0].Port.IntValue() != 9808 {
		t.Errorf("ingress %+v, want the metrics port from the one peer listed", np.Spec.Ingress)
	}
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, auditDir string) {
	t.Helper()
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	spec := ds.Spec.Template.Spec
	if _, ok := spec.NodeSelector["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("nodeSelector %v does not pick control-plane nodes", spec.NodeSelector)
	}
	tolerated := map[string]bool{}
	for _, tol := range spec.Tolerations {
		if tol.Effect == corev1.TaintEffectNoSchedule && tol.Operator == corev1.TolerationOpExists {
			tolerated[tol.Key] = true
		}
	}
	for _, k := range []string{"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"} {
		if !tolerated[k] {
			t.Errorf("no toleration for %s", k)
		}
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= 25 {
		t.Errorf("terminationGracePeriodSeconds %v must exceed the 25 s drain timeout", spec.TerminationGracePeriodSeconds)
	}
	checkContainer(t, spec.Containers[0], spec.Volumes, auditDir)
	// The agent listens on the pod IP only (checkConfig): the chart gives
	// it through the downward API.
	var podIP bool
	for _, e := range spec.Containers[0].Env {
		if e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
			podIP = true
		}
	}
	if !podIP {
		t.Error("no POD_IP from status.podIP in the container's environment")
	}
}

// checkContainer asserts what a security reviewer looks for.
func checkContainer(t *testing.T, c corev1.Container, vols []corev1.Volume, auditDir string) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("no container securityContext")
	}
	if len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
		len(sc.Capabilities.Add) != 1 || sc.Capabilities.Add[0] != "DAC_READ_SEARCH" {
		t.Errorf("capabilities %+v, want drop ALL, add DAC_READ_SEARCH only", sc.Capabilities)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("root file system is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("privilege escalation allowed")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged")
	}
	// RuntimeDefault allows open_by_handle_at to a process with
	// CAP_DAC_READ_SEARCH ("Shocker"): the agent's own profile denies it.
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost ||
		sc.SeccompProfile.LocalhostProfile == nil || *sc.SeccompProfile.LocalhostProfile != seccompProfile {
		t.Errorf("seccomp profile %+v, want Localhost %s", sc.SeccompProfile, seccompProfile)
	}
	hostPaths := map[string]string{}
	for _, v := range vols {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
			// The agent never creates the audit directory: the kubelet
			// would make it 0755, listable by all, before kube-apiserver
			// (or the admin, 0700) does.
			var typ corev1.HostPathType
			if v.HostPath.Type != nil {
				typ = *v.HostPath.Type
			}
			if v.HostPath.Path == auditDir && typ != corev1.HostPathDirectory {
				t.Errorf("audit directory hostPath type %q, want Directory", typ)
			}
		}
	}
	var auditMounted, stateMounted bool
	for _, m := range c.VolumeMounts {
		switch hostPaths[m.Name] {
		case auditDir:
			auditMounted = true
			if !m.ReadOnly || m.MountPath != auditDir {
				t.Errorf("audit directory mount %+v: want read-only at %s", m, auditDir)
			}
		case "":
		default:
			if m.MountPath == "/var/lib/auditrail" {
				stateMounted = true
				if m.ReadOnly {
					t.Error("state directory mounted read-only")
				}
			}
		}
	}
	if !auditMounted || !stateMounted {
		t.Errorf("audit directory (%s) or state directory not mounted from the host: %v", auditDir, hostPaths)
	}
	probes := map[string]bool{}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p != nil && p.HTTPGet != nil {
			probes[p.HTTPGet.Path] = true
		}
	}
	if !probes["/healthz"] || !probes["/readyz"] {
		t.Errorf("probes %v, want /healthz and /readyz", probes)
	}
}

// podIPAddr is the listener address the chart gives the agent once
// ${POD_IP} is expanded (checkConfig sets POD_IP to 10.1.2.3).
const podIPAddr = "[10.1.2.3]:9808"

// checkConfig validates the agent configuration the chart renders, as the
// agent would, and that it listens on httpAddr, never on every interface.
func checkConfig(t *testing.T, raw, auditLog, httpAddr string) {
	t.Helper()
	for _, v := range []string{"NODE_NAME", "CLUSTER_NAME", "ES_API_KEY", "KAFKA_PASSWORD"} {
		t.Setenv(v, "x")
	}
	t.Setenv("ALERT_WEBHOOK_SECRET", strings.Repeat("s", 32))
	t.Setenv("POD_IP", "10.1.2.3")
	t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/x")
	c, err := config.Parse([]byte(raw), registry.Schema())
	if err != nil {
		t.Fatalf("rendered config is invalid: %v\n%s", err, raw)
	}
	if c.AuditLogPath != auditLog || c.StateDir != "/var/lib/auditrail" || c.HTTP.Address != httpAddr {
		t.Errorf("config paths: auditLogPath %s stateDir %s http %s", c.AuditLogPath, c.StateDir, c.HTTP.Address)
	}
}

// The kops add-on manifest is the chart rendered with deploy/kops/values.yaml.
func TestKopsAddonIsCurrent(t *testing.T) {
	out := helm(t, "template", "auditrail", chart, "-n", "kube-system", "--kube-version", kubeVersion, "-f", "../deploy/kops/values.yaml")
	committed, err := os.ReadFile("../deploy/kops/auditrail.addon.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, committed) {
		t.Fatal("deploy/kops/auditrail.addon.yaml is stale: helm template auditrail charts/auditrail -n kube-system --kube-version " + kubeVersion + " -f deploy/kops/values.yaml > deploy/kops/auditrail.addon.yaml")
	}
	r := decodeAll(t, committed)
	// A directory of its own, not /var/log: whoever writes other logs
	// there could plant files named like rotated audit logs.
	checkDaemonSet(t, r.ds, "/var/log/kube-apiserver-audit")
	checkConfig(t, r.cm.Data["auditrail.yaml"], "/var/log/kube-apiserver-audit/audit.log", podIPAddr)
}

func TestKubeadmStaticPod(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubeadm/auditrail.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	decodeStrict(t, b, &pod)
	if pod.Namespace != "kube-system" || !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
		t.Errorf("static pod: namespace %s hostNetwork %v priority %s", pod.Namespace, pod.Spec.HostNetwork, pod.Spec.PriorityClassName)
	}
	checkContainer(t, pod.Spec.Containers[0], pod.Spec.Volumes, "/var/log/kubernetes/audit")
	cfg, err := os.ReadFile("../deploy/kubeadm/auditrail-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checkConfig(t, string(cfg), "/var/log/kubernetes/audit/audit.log", "127.0.0.1:9808")
	// On the host network a listener on the pod IP is one on every node
	// address: the static pod listens on loopback, and its probes, which
	// the kubelet would send to the node IP, name 127.0.0.1.
	c := pod.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Host != "127.0.0.1" {
			t.Errorf("probe %+v does not go to 127.0.0.1", p)
		}
	}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			t.Errorf("port %s publishes hostPort %d", p.Name, p.HostPort)
		}
	}
}

// seccompProfile is deploy/seccomp/auditrail.json's path below the
// kubelet's seccomp directory (/var/lib/kubelet/seccomp).
const seccompProfile = "auditrail/auditrail.json"

// The seccomp profile allows what the agent calls and nothing that opens
// files by handle: with CAP_DAC_READ_SEARCH, open_by_handle_at opens any
// file of the host's file system from a handle the caller makes up.
func TestSeccompProfile(t *testing.T) {
	b, err := os.ReadFile("../deploy/seccomp/auditrail.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		DefaultAction string `json:"defaultAction"`
		Syscalls      []struct {
			Names    []string         `json:"names"`
			Action   string           `json:"action"`
			ErrnoRet int              `json:"errnoRet"`
			Args     []map[string]any `json:"args"`
		} `json:"syscalls"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Errorf("defaultAction %s: an allowlist must deny what it does not name", p.DefaultAction)
	}
	allowed := map[string]bool{}
	for _, r := range p.Syscalls {
		for _, n := range r.Names {
			if r.Action == "SCMP_ACT_ALLOW" {
				allowed[n] = true
				if n == "clone" && len(r.Args) == 0 {
					t.Error("clone allowed with any flags, new namespaces too")
				}
			}
		}
	}
	for _, n := range []string{"open_by_handle_at", "name_to_handle_at", "clone3", "unshare", "setns", "mount", "ptrace", "bpf", "keyctl", "init_module", "finit_module"} {
		if allowed[n] {
			t.Errorf("%s is allowed", n)
		}
	}
	// Traced (strace -f) while the agent read, rotated, checkpointed, sent
	// to a file sink, S3 and a webhook, and served /metrics and pprof.
	for _, n := range strings.Fields(`accept4 arch_prctl bind brk clone close connect epoll_create1 epoll_ctl
		epoll_pwait eventfd2 execve fcntl fstat fsync futex getdents64 getpid getrandom getsockname getsockopt
		gettid inotify_add_watch inotify_init1 listen madvise mkdirat mmap mprotect munmap nanosleep newfstatat
		openat prctl pread64 prlimit64 read readlinkat renameat rseq rt_sigaction rt_sigprocmask rt_sigreturn
		sched_getaffinity sched_yield set_robust_list set_tid_address setitimer setsockopt sigaltstack socket
		statfs tgkill timer_create timer_delete timer_settime uname write exit exit_group unlinkat fchmodat`) {
		if !allowed[n] {
			t.Errorf("%s, which the agent calls, is not allowed", n)
		}
	}
}

func TestAuditPolicy(t *testing.T) {
	b, err := os.ReadFile("../deploy/audit-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var p auditv1.Policy
	decodeStrict(t, b, &p)
	if p.Kind != "Policy" || p.APIVersion != "audit.k8s.io/v1" || len(p.OmitStages) != 1 || p.OmitStages[0] != auditv1.StageRequestReceived {
		t.Errorf("policy header: %s %s omitStages %v", p.APIVersion, p.Kind, p.OmitStages)
	}
	last := p.Rules[len(p.Rules)-1]
	if last.Level != auditv1.LevelMetadata || len(last.Resources)+len(last.Verbs)+len(last.Users)+len(last.NonResourceURLs) != 0 {
		t.Errorf("the last rule must log everything else at Metadata: %+v", last)
	}
	// Secrets never above Metadata: the first rule that matches secrets
	// decides, for every verb.
	for _, r := range p.Rules {
		for _, g := range r.Resources {
			for _, res := range g.Resources {
				if g.Group == "" && res == "secrets" {
					if r.Level != auditv1.LevelMetadata || len(r.Verbs) != 0 {
						t.Errorf("secrets logged at %s for verbs %v", r.Level, r.Verbs)
					}
					return
				}
			}
			if g.Group == "" && len(g.Resources) == 0 && r.Level != auditv1.LevelMetadata && r.Level != auditv1.LevelNone {
				t.Errorf("a rule logs every core resource, secrets included, at %s", r.Level)
			}
		}
	}
	t.Error("no rule names secrets")
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
