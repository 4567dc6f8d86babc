package apiserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/testproc"
)

// The reasons Pod Security admission gives, level by level, for refusing
// the agent's pod, as the README's PodSecurity paragraph states them. The
// restricted level names its own version of a baseline check (restricted
// volume types for hostPath volumes, unrestricted capabilities for
// DAC_READ_SEARCH) instead of both. The kubeadm static pod (judged as its
// mirror pod) adds the host network, the hostPort that defaulting gives
// every port of a pod on the host network, and its probes' host.
var podSecurityReasons = map[string]map[string][]string{
	"chart": {
		"baseline":   {"hostPath volumes", "non-default capabilities"},
		"restricted": {"restricted volume types", "runAsNonRoot != true", "runAsUser=0", "unrestricted capabilities"},
	},
	"static pod": {
		"baseline": {"host namespaces", "hostPath volumes", "hostPort", "non-default capabilities", "probe or lifecycle host"},
		"restricted": {"host namespaces", "hostPort", "probe or lifecycle host", "restricted volume types", "runAsNonRoot != true",
			"runAsUser=0", "unrestricted capabilities"},
	},
}

// checkPodSecurity applies the Helm chart's rendered manifests and the
// kubeadm static pod with server-side dry run, so that kube-apiserver's
// validation, defaulting and admission judge them, in kube-system labelled
// for each Pod Security level in turn.
func checkPodSecurity(t *testing.T, c *cluster) {
	ctx := context.Background()
	warnings := &warnings{}
	cfg := rest.CopyConfig(c.Config)
	cfg.WarningHandler = warnings
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{t: t, dyn: dyn, mapper: restmapper.NewDiscoveryRESTMapper(groups), warnings: warnings}

	// helm test's hooks are not part of an install.
	chart := slices.DeleteFunc(a.decode(helmTemplate(t)), func(o *unstructured.Unstructured) bool {
		_, hook := o.GetAnnotations()["helm.sh/hook"]
		return hook
	})
	staticPod := a.decode(readFile(t, filepath.Join(repoRoot, "deploy", "kubeadm", "auditrail.yaml")))
	ds := daemonSet(t, chart)
	pods := map[string]*unstructured.Unstructured{
		"chart":      toUnstructured(t, podFromTemplate(ds)),
		"static pod": staticPod[0],
	}
	// The ServiceAccount admission plugin wants the pod's service account
	// to exist: the chart's is created for real, everything else is a dry
	// run. kube-system's default one, which the static pod gets, is
	// kube-controller-manager's work on a real control plane.
	must(t, create(ctx, c.Admin.CoreV1().ServiceAccounts("kube-system"), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}))
	for _, obj := range chart {
		if obj.GetKind() == "ServiceAccount" {
			if _, err := a.apply(ctx, obj, false); err != nil {
				t.Fatalf("ServiceAccount %s: %v", obj.GetName(), err)
			}
		}
	}
	for _, level := range []string{"privileged", "baseline", "restricted"} {
		t.Run(level, func(t *testing.T) {
			a.t = t
			_, err := c.Admin.CoreV1().Namespaces().Patch(ctx, "kube-system", "application/merge-patch+json",
				[]byte(`{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"`+level+`","pod-security.kubernetes.io/warn":"`+level+`"}}}`),
				metav1.PatchOptions{})
			must(t, err)
			for _, obj := range chart {
				if obj.GetKind() == "ServiceAccount" {
					continue // created above
				}
				if w, err := a.apply(ctx, obj, true); err != nil {
					t.Errorf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
				} else if obj.GetKind() == "DaemonSet" {
					checkReasons(t, "chart DaemonSet's warnings", w, podSecurityReasons["chart"][level])
				}
			}
			for _, name := range []string{"chart", "static pod"} {
				w, err := a.apply(ctx, pods[name], true)
				want := podSecurityReasons[name][level]
				switch {
				case len(want) == 0 && err != nil:
					t.Errorf("%s refused under %s: %v", name, level, err)
				case len(want) == 0:
					checkReasons(t, name+"'s warnings", w, nil)
				case !apierrors.IsForbidden(err):
					t.Errorf("%s under %s: %v, want it forbidden: %v", name, level, err, want)
				default:
					t.Logf("%s under %s: %v", name, level, err)
					checkReasons(t, name+" refused", []string{err.Error()}, want)
				}
			}
		})
	}
}

// checkReasons compares the Pod Security reasons in msgs with want.
func checkReasons(t *testing.T, what string, msgs []string, want []string) {
	t.Helper()
	var got []string
	for _, m := range msgs {
		got = append(got, podSecurityViolations(m)...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: %v, want %v\n%s", what, got, want, strings.Join(msgs, "\n"))
	}
}

// podSecurityViolations returns the names of the checks a Pod Security
// message lists: `... PodSecurity "baseline:latest": host namespaces
// (hostNetwork=true), hostPath volumes (volumes "a", "b")`.
func podSecurityViolations(msg string) []string {
	i := strings.Index(msg, `PodSecurity "`)
	if i < 0 {
		return nil
	}
	j := strings.Index(msg[i:], `": `)
	if j < 0 {
		return nil
	}
	var out []string
	depth, start := 0, i+j+3
	rest := msg + ", "
	for k := start; k < len(rest); k++ {
		switch rest[k] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 && k+1 < len(rest) && rest[k+1] == ' ' {
				item := strings.TrimSpace(rest[start:k])
				if p := strings.Index(item, " ("); p >= 0 {
					item = item[:p]
				}
				if item != "" {
					out = append(out, item)
				}
				start = k + 2
			}
		}
	}
	return out
}

// warnings collects the warnings kube-apiserver sends back.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.got
	w.got = nil
	return out
}

// applier creates objects of any kind through the dynamic client.
type applier struct {
	t        *testing.T
	dyn      dynamic.Interface
	mapper   meta.RESTMapper
	warnings *warnings
}

// apply creates obj in its namespace, as a server-side dry run if dryRun,
// and returns the warnings of the request.
func (a *applier) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) ([]string, error) {
	a.t.Helper()
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.t.Fatalf("%s: %v", gvk, err)
	}
	opts := metav1.CreateOptions{FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	a.warnings.take()
	_, err = a.dyn.Resource(m.Resource).Namespace(obj.GetNamespace()).Create(ctx, obj, opts)
	return a.warnings.take(), err
}

// decode splits a YAML stream into objects.
func (a *applier) decode(b []byte) []*unstructured.Unstructured {
	a.t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			a.t.Fatal(err)
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// daemonSet returns the single DaemonSet among objs.
func daemonSet(t *testing.T, objs []*unstructured.Unstructured) *appsv1.DaemonSet {
	t.Helper()
	var found []*appsv1.DaemonSet
	for _, o := range objs {
		if o.GetKind() == "DaemonSet" {
			ds := &appsv1.DaemonSet{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ds); err != nil {
				t.Fatal(err)
			}
			found = append(found, ds)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d DaemonSets rendered, want 1", len(found))
	}
	return found[0]
}

// podFromTemplate is the pod the DaemonSet controller would create.
func podFromTemplate(ds *appsv1.DaemonSet) *corev1.Pod {
	tmpl := ds.Spec.Template
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: ds.Name + "-node1", Namespace: ds.Namespace, Labels: tmpl.Labels, Annotations: tmpl.Annotations},
		Spec:       tmpl.Spec,
	}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// kubeVersion is the version helm template renders for: the API server's.
const kubeVersion = "1.37.2"

// helmTemplate renders the chart with its default values into kube-system.
func helmTemplate(t *testing.T) []byte {
	t.Helper()
	helm := ""
	if m := miniotest.Binary(); m != "" { // .tools/bin/minio: helm sits beside it
		helm = filepath.Join(filepath.Dir(m), "helm")
	}
	if _, err := os.Stat(helm); helm == "" || err != nil {
		if os.Getenv("AUDITRAIL_REQUIRE_TOOLS") == "1" {
			t.Fatal("helm not found in .tools/bin: run scripts/tools.sh")
		}
		t.Skip("helm not found in .tools/bin: run scripts/tools.sh")
	}
	cmd := testproc.Command(helm, "template", "auditrail", filepath.Join(repoRoot, "charts", "auditrail"), "-n", "kube-system", "--kube-version", kubeVersion)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.Bytes())
	}
	return out
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
