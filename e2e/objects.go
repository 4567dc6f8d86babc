package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
)

// The request and response bodies of the generated events are Kubernetes
// objects shaped like the ones kube-apiserver logs: metadata with uids,
// resource versions and managed fields, pod specs and statuses with image
// digests and container ids, config data. Their random parts (uids, ids,
// digests, addresses, times) are as random as in a real cluster, so the
// corpus compresses about as well as a real audit log.

// workload is a controller-managed set of pods.
type workload struct {
	name, namespace, image, app string
}

var workloads = []workload{
	{"coredns-5d78c9869d", "kube-system", "registry.k8s.io/coredns/coredns:v1.11.1", "kube-dns"},
	{"metrics-server-6d94bc8694", "kube-system", "registry.k8s.io/metrics-server/metrics-server:v0.7.1", "metrics-server"},
	{"ingress-nginx-controller-7d9f5b6c4d", "ingress-nginx", "registry.k8s.io/ingress-nginx/controller:v1.10.1", "ingress-nginx"},
	{"checkout-api-7f8d9c6b5a", "shop", "ghcr.io/example/checkout-api:2.14.3", "checkout-api"},
	{"payments-worker-84c7b9d6f", "shop", "ghcr.io/example/payments-worker:1.9.0", "payments-worker"},
	{"prometheus-k8s-6b7c8d9e0f", "monitoring", "quay.io/prometheus/prometheus:v2.53.0", "prometheus"},
	{"cert-manager-webhook-5c6d7e8f9", "cert-manager", "quay.io/jetstack/cert-manager-webhook:v1.15.1", "webhook"},
}

var envNames = []string{"LOG_LEVEL", "GOMAXPROCS", "POD_NAME", "POD_NAMESPACE", "NODE_NAME", "HTTP_PORT",
	"DATABASE_HOST", "CACHE_TTL", "FEATURE_FLAGS", "OTEL_EXPORTER_OTLP_ENDPOINT", "REGION", "TZ"}

var configKeys = []string{"Corefile", "nginx.conf", "prometheus.yml", "config.yaml", "application.properties",
	"logging.json", "feature-flags.yaml", "rules.yml"}

var configLines = []string{
	"    errors", "    health {", "       lameduck 5s", "    }", "    ready",
	"    kubernetes cluster.local in-addr.arpa ip6.arpa {", "       pods insecure", "       fallthrough in-addr.arpa ip6.arpa",
	"    prometheus :9153", "    forward . /etc/resolv.conf {", "       max_concurrent 1000", "    cache 30", "    loop", "    reload", "    loadbalance",
	"worker_processes auto;", "keepalive_timeout 75s;", "client_max_body_size 1m;", "proxy_read_timeout 60s;",
	"scrape_interval: 30s", "evaluation_interval: 30s", "  - job_name: kubernetes-pods", "    kubernetes_sd_configs:", "      - role: pod",
	"server.port=8080", "spring.datasource.hikari.maximum-pool-size=20", "logging.level.root=INFO",
}

// bodyFor returns an object of about size bytes for a request on resource:
// a single object, or for a very large event (size above 64 KiB) a list.
func bodyFor(r *rand.Rand, resource string, size int, now time.Time) *runtime.Unknown {
	var b strings.Builder
	b.Grow(size + 4096)
	switch {
	case size > 64<<10:
		podList(r, &b, size, now)
	case resource == "secrets":
		secret(r, &b, now)
	case resource == "configmaps":
		configMap(r, &b, size, now)
	case resource == "leases":
		lease(r, &b, now)
	default:
		podObject(r, &b, workloads[r.IntN(len(workloads))], size, now)
	}
	return &runtime.Unknown{Raw: []byte(b.String()), ContentType: runtime.ContentTypeJSON}
}

func uid(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xfff,
		0x8000|r.Uint32()&0x3fff, r.Uint64()&0xffffffffffff)
}

func hex64(r *rand.Rand) string {
	return fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())
}

func suffix(r *rand.Rand, n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b)
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func meta(r *rand.Rand, b *strings.Builder, name, namespace string, now time.Time) {
	fmt.Fprintf(b, `"metadata":{"name":%q,"namespace":%q,"uid":%q,"resourceVersion":"%d","creationTimestamp":%q`,
		name, namespace, uid(r), 1000000+r.IntN(90000000), ts(now.Add(-time.Duration(r.IntN(86400*30))*time.Second)))
}

// podObject writes a pod of workload w, adding containers and environment
// variables until it is about size bytes.
func podObject(r *rand.Rand, b *strings.Builder, w workload, size int, now time.Time) {
	start := b.Len()
	name := w.name + "-" + suffix(r, 5)
	owner := uid(r)
	b.WriteString(`{"kind":"Pod","apiVersion":"v1",`)
	meta(r, b, name, w.namespace, now)
	fmt.Fprintf(b, `,"generateName":"%s-","labels":{"app.kubernetes.io/name":%q,"pod-template-hash":%q},`+
		`"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":%q,"uid":%q,"controller":true,"blockOwnerDeletion":true}],`+
		`"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":%q,"fieldsType":"FieldsV1",`+
		`"fieldsV1":{"f:metadata":{"f:generateName":{},"f:labels":{".":{},"f:app.kubernetes.io/name":{},"f:pod-template-hash":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"%s\"}":{}}},`+
		`"f:spec":{"f:containers":{"k:{\"name\":\"%s\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{}}}},`+
		`{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":%q,"fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:startTime":{}}},"subresource":"status"}]},`,
		w.name, w.app, w.name[strings.LastIndexByte(w.name, '-')+1:], w.name, owner, ts(now), owner, w.app+"-0", ts(now))
	fmt.Fprintf(b, `"spec":{"volumes":[{"name":"kube-api-access-%s","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},`+
		`{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}],"defaultMode":420}}],"containers":[`, suffix(r, 5))
	for c := 0; ; c++ {
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `{"name":"%s-%d","image":%q,"ports":[{"name":"http","containerPort":%d,"protocol":"TCP"}],"env":[`, w.app, c, w.image, 8000+r.IntN(1000))
		for e := 0; e < 3+r.IntN(6); e++ {
			if e > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, `{"name":%q,"value":"%d"}`, envNames[r.IntN(len(envNames))], r.IntN(100000))
		}
		fmt.Fprintf(b, `],"resources":{"limits":{"memory":"%dMi"},"requests":{"cpu":"%dm","memory":"%dMi"}},`+
			`"volumeMounts":[{"name":"kube-api-access","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],`+
			`"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}`,
			64<<r.IntN(4), 50*(1+r.IntN(8)), 32<<r.IntN(4))
		if b.Len()-start > size-900 || c > 64 {
			break
		}
	}
	fmt.Fprintf(b, `],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":%q,"nodeName":"master-%d","schedulerName":"default-scheduler"},`+
		`"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":%q}],"hostIP":"10.0.%d.%d","podIP":"10.244.%d.%d","startTime":%q,`+
		`"containerStatuses":[{"name":%q,"state":{"running":{"startedAt":%q}},"ready":true,"restartCount":%d,"image":%q,"imageID":"%s@sha256:%s","containerID":"containerd://%s","started":true}],"qosClass":"Burstable"}}`,
		w.app, 1+r.IntN(3), ts(now), r.IntN(4), 1+r.IntN(250), r.IntN(256), 1+r.IntN(250), ts(now),
		w.app, ts(now), r.IntN(3), w.image, w.image[:strings.LastIndexByte(w.image, ':')], hex64(r), hex64(r))
}

// podList writes a list of pods of about size bytes: what a large list
// request returns at the RequestResponse level.
func podList(r *rand.Rand, b *strings.Builder, size int, now time.Time) {
	start := b.Len()
	fmt.Fprintf(b, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%d"},"items":[`, 1000000+r.IntN(90000000))
	for i := 0; b.Len()-start < size-4096; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		podObject(r, b, workloads[r.IntN(len(workloads))], 1500+r.IntN(3000), now)
	}
	b.WriteString(`]}`)
}

func configMap(r *rand.Rand, b *strings.Builder, size int, now time.Time) {
	start := b.Len()
	b.WriteString(`{"kind":"ConfigMap","apiVersion":"v1",`)
	meta(r, b, fmt.Sprintf("app-config-%s", suffix(r, 4)), workloads[r.IntN(len(workloads))].namespace, now)
	b.WriteString(`},"data":{`)
	for k := 0; ; k++ {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"%s-%d":"`, configKeys[r.IntN(len(configKeys))], k)
		for l := 0; l < 4+r.IntN(12); l++ {
			b.WriteString(configLines[r.IntN(len(configLines))])
			b.WriteString(`\n`)
		}
		fmt.Fprintf(b, `# revision %d\n"`, r.IntN(1000))
		if b.Len()-start > size-200 || k > 64 {
			break
		}
	}
	b.WriteString(`}}`)
}

func secret(r *rand.Rand, b *strings.Builder, now time.Time) {
	b.WriteString(`{"kind":"Secret","apiVersion":"v1",`)
	meta(r, b, "db-credentials-"+suffix(r, 4), workloads[r.IntN(len(workloads))].namespace, now)
	fmt.Fprintf(b, `},"type":"Opaque","data":{"username":"YXBwLXVzZXI=","password":"%s"}}`, hex64(r)[:44])
}

func lease(r *rand.Rand, b *strings.Builder, now time.Time) {
	micro := now.UTC().Format("2006-01-02T15:04:05.000000Z")
	b.WriteString(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1",`)
	meta(r, b, fmt.Sprintf("master-%d", 1+r.IntN(3)), "kube-node-lease", now)
	fmt.Fprintf(b, `,"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"master-1","uid":%q}]},`+
		`"spec":{"holderIdentity":"master-%d_%s","leaseDurationSeconds":40,"acquireTime":"%s","renewTime":"%s","leaseTransitions":%d}}`,
		uid(r), 1+r.IntN(3), uid(r), micro, micro, r.IntN(10))
}

// randomObject returns a ConfigMap of size bytes whose data is random
// characters, which compress poorly.
func randomObject(r *rand.Rand, size int) *runtime.Unknown {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b strings.Builder
	b.Grow(size + 64)
	b.WriteString(`{"kind":"ConfigMap","apiVersion":"v1","data":{"blob":"`)
	for b.Len() < size {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	b.WriteString(`"}}`)
	return &runtime.Unknown{Raw: []byte(b.String()), ContentType: runtime.ContentTypeJSON}
}

// secretWrite returns the bodies of a Secret write as kubectl apply makes
// it: a create whose request and response carry the values and the
// last-applied annotation with a copy of them, or a strategic-merge patch
// of data and the annotation, answered with the whole Secret.
func secretWrite(r *rand.Rand, now time.Time) (verb string, req, resp *runtime.Unknown) {
	name := "app-credentials-" + suffix(r, 5)
	ns := workloads[r.IntN(len(workloads))].namespace
	user, pass := hex64(r)[:12], hex64(r)[:44]
	applied := fmt.Sprintf(`{\"apiVersion\":\"v1\",\"data\":{\"password\":\"%s\",\"username\":\"%s\"},\"kind\":\"Secret\",\"metadata\":{\"annotations\":{},\"name\":\"%s\",\"namespace\":\"%s\"},\"type\":\"Opaque\"}\n`,
		pass, user, name, ns)
	data := fmt.Sprintf(`"data":{"password":%q,"username":%q}`, pass, user)
	ann := fmt.Sprintf(`"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"%s"}`, applied)
	var b strings.Builder
	b.WriteString(`{"kind":"Secret","apiVersion":"v1",`)
	meta(r, &b, name, ns, now)
	fmt.Fprintf(&b, `,%s,"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":%q,"fieldsType":"FieldsV1",`+
		`"fieldsV1":{"f:data":{".":{},"f:password":{},"f:username":{}},"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}}},"f:type":{}}}]},%s,"type":"Opaque"}`,
		ann, ts(now), data)
	whole := &runtime.Unknown{Raw: []byte(b.String()), ContentType: runtime.ContentTypeJSON}
	if r.IntN(2) == 0 {
		create := fmt.Sprintf(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"creationTimestamp":null,%s},%s,"type":"Opaque"}`, name, ns, ann, data)
		return "create", &runtime.Unknown{Raw: []byte(create), ContentType: runtime.ContentTypeJSON}, whole
	}
	patch := fmt.Sprintf(`{"data":{"password":%q},"metadata":{%s}}`, pass, ann)
	return "patch", &runtime.Unknown{Raw: []byte(patch), ContentType: runtime.ContentTypeJSON}, whole
}

// bodyWords are the words wordObject draws from.
var bodyWords = strings.Fields(`the of and to in is for on with as by at from that this be are was
it or an not have has can will all but their more one other new which when
there about also into only some time these could would after first than
been over such most where many between through before those because while
service deployment replica controller namespace container volume secret
config endpoint ingress cluster node pod image registry version release
status ready running pending failed healthy timeout retry backoff limit
request response memory cpu storage network policy role binding account
token certificate issuer subject audience claim scope label annotation
selector match expression operator value key field path mount port
protocol target source destination address gateway route rule filter
metric alert threshold window sample bucket shard index partition offset
leader follower election lease heartbeat checkpoint snapshot journal
backup restore migrate upgrade rollback canary stable beta alpha preview`)

// wordObject returns a ConfigMap of size bytes whose data is words and
// hex strings, as in application config: it compresses about 4.7 times
// with zstd -1, between Kubernetes objects (15) and random characters
// (1.7).
func wordObject(r *rand.Rand, size int) *runtime.Unknown {
	var b strings.Builder
	b.Grow(size + 96)
	b.WriteString(`{"kind":"ConfigMap","apiVersion":"v1","data":{"config":"`)
	for b.Len() < size {
		if r.IntN(100) < hexPercent {
			fmt.Fprintf(&b, "%x ", r.Uint64())
			continue
		}
		b.WriteString(bodyWords[r.IntN(len(bodyWords))])
		b.WriteByte(' ')
	}
	b.WriteString(`"}}`)
	return &runtime.Unknown{Raw: []byte(b.String()), ContentType: runtime.ContentTypeJSON}
}

// hexPercent is how many tokens in 100 of a wordObject are hex strings.
const hexPercent = 9
