package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsac "k8s.io/client-go/applyconfigurations/apps/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	metaac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// load is ordinary traffic: config maps and deployments created, read,
// listed, updated, applied server-side, patched and deleted, and watches
// held open, by several workers.
type load struct {
	cs   *kubernetes.Clientset
	ns   string
	sent atomic.Int64 // requests sent
	errs atomic.Int64 // of which answered with an error
	wg   sync.WaitGroup
}

// start runs workers writers and one watcher until ctx ends.
func (l *load) start(ctx context.Context, workers int) {
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				l.cycle(ctx, fmt.Sprintf("w%d-%d", w, i))
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for ctx.Err() == nil {
			l.watch(ctx)
		}
	}()
}

// wait waits for the workers to stop.
func (l *load) wait() { l.wg.Wait() }

func (l *load) count(err error) {
	l.sent.Add(1)
	if err != nil {
		l.errs.Add(1)
	}
}

// cycle is one round of one worker: 11 requests.
func (l *load) cycle(ctx context.Context, name string) {
	cms := l.cs.CoreV1().ConfigMaps(l.ns)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": name}}
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	l.count(err)
	got, err := cms.Get(ctx, name, metav1.GetOptions{})
	l.count(err)
	if err == nil {
		got.Data["k"] = "updated"
		_, err = cms.Update(ctx, got, metav1.UpdateOptions{})
		l.count(err)
	}
	_, err = cms.Apply(ctx, coreac.ConfigMap(name, l.ns).WithData(map[string]string{"applied": "yes"}),
		metav1.ApplyOptions{FieldManager: "load", Force: true})
	l.count(err)
	_, err = cms.List(ctx, metav1.ListOptions{Limit: 50})
	l.count(err)

	deps := l.cs.AppsV1().Deployments(l.ns)
	_, err = deps.Apply(ctx, deployment(name, l.ns), metav1.ApplyOptions{FieldManager: "load", Force: true})
	l.count(err)
	_, err = deps.Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
	l.count(err)
	_, err = deps.Get(ctx, name, metav1.GetOptions{})
	l.count(err)
	_, err = deps.List(ctx, metav1.ListOptions{Limit: 20})
	l.count(err)
	l.count(deps.Delete(ctx, name, metav1.DeleteOptions{}))
	l.count(cms.Delete(ctx, name, metav1.DeleteOptions{}))
}

// watch holds a watch on config maps open for up to 10 s.
func (l *load) watch(ctx context.Context) {
	timeout := int64(10)
	w, err := l.cs.CoreV1().ConfigMaps(l.ns).Watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout})
	l.count(err)
	if err != nil {
		sleep(ctx, time.Second)
		return
	}
	defer w.Stop()
	for range w.ResultChan() {
	}
}

// deployment is an ordinary web deployment, as an apply configuration.
func deployment(name, ns string) *appsac.DeploymentApplyConfiguration {
	labels := map[string]string{"app": name}
	return appsac.Deployment(name, ns).WithSpec(appsac.DeploymentSpec().
		WithReplicas(1).
		WithSelector(metaac.LabelSelector().WithMatchLabels(labels)).
		WithTemplate(coreac.PodTemplateSpec().WithLabels(labels).WithSpec(coreac.PodSpec().
			WithContainers(coreac.Container().WithName("web").WithImage("registry.k8s.io/pause:3.10").
				WithPorts(coreac.ContainerPort().WithContainerPort(8080)).
				WithEnv(coreac.EnvVar().WithName("MODE").WithValue("production"))))))
}

// webDeployment is an ordinary, unprivileged deployment.
func webDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}}},
			},
		},
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// randomValue returns a distinctive value no sink could hold by chance.
func randomValue(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newAuditID returns a random UUID to send as Audit-ID.
func newAuditID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
