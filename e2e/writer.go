package e2e

import (
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	auditlog "k8s.io/apiserver/plugin/pkg/audit/log"
)

// Writer writes audit events exactly as kube-apiserver does with
// --audit-log-path, --audit-log-maxsize, --audit-log-maxbackup and
// --audit-log-compress, and remembers every auditID+stage it wrote.
type Writer struct {
	lj       *lumberjack.Logger
	backend  audit.Backend
	rng      *rand.Rand
	bigMax   int
	bigEvery int
	random   bool
	words    bool
	// secretWrites is how many requests in 1000 are Secret writes with
	// bodies.
	secretWrites int

	out *countingWriter

	mu        sync.Mutex
	written   map[string]time.Time
	n         int
	path      string
	ino       uint64
	rotations int
}

// WriterConfig mirrors kube-apiserver's audit log flags.
type WriterConfig struct {
	Path       string
	MaxSizeMB  int
	MaxBackups int
	Compress   bool
	Seed       uint64
	// BigMB, when set, sizes the rare very large events up to this many
	// MiB (it must stay below MaxSizeMB: lumberjack refuses larger writes).
	BigMB int
	// BigEvery makes one request in BigEvery, on average, a very large
	// event (a long list at the RequestResponse level); 0 means 500.
	BigEvery int
	// RandomBodies fills request and response bodies with random
	// characters instead of Kubernetes objects: a worst case for
	// compression.
	RandomBodies bool
	// WordBodies fills request and response bodies with words and hex
	// strings (see wordObject), which compress about 4.7 times.
	WordBodies bool
	// SecretWritesPermille makes this many requests in 1000 Secret writes
	// with bodies at the RequestResponse level, as kubectl apply sends
	// them (see secretWrite); 0 leaves the mix, and the corpus of a seed,
	// as it was.
	SecretWritesPermille int
}

// NewWriter returns a writer that appends to cfg.Path.
func NewWriter(cfg WriterConfig) *Writer {
	lj := &lumberjack.Logger{Filename: cfg.Path, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups, Compress: cfg.Compress}
	out := &countingWriter{w: lj}
	return &Writer{
		lj:           lj,
		out:          out,
		backend:      auditlog.NewBackend(out, auditlog.FormatJson, auditv1.SchemeGroupVersion),
		rng:          rand.New(rand.NewPCG(cfg.Seed, 1)),
		bigMax:       max(cfg.BigMB<<20, 856<<10),
		bigEvery:     cmp.Or(cfg.BigEvery, 500),
		random:       cfg.RandomBodies,
		words:        cfg.WordBodies,
		secretWrites: cfg.SecretWritesPermille,
		written:      make(map[string]time.Time),
		path:         cfg.Path,
	}
}

// Close closes the current file.
func (w *Writer) Close() error { return w.lj.Close() }

// Key is how events are matched between what was written and what arrived.
func Key(auditID, stage string) string { return auditID + "/" + stage }

// Written returns every key written, with the time it was written.
func (w *Writer) Written() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(w.written))
	for k, v := range w.written {
		out[k] = v
	}
	return out
}

// WriteRequest writes the events of one request: ResponseStarted for some
// watches, and ResponseComplete.
func (w *Writer) WriteRequest() {
	w.mu.Lock()
	w.n++
	n := w.n
	w.mu.Unlock()
	ev := w.event(n)
	stages := []auditinternal.Stage{auditinternal.StageResponseComplete}
	if ev.Verb == "watch" {
		stages = []auditinternal.Stage{auditinternal.StageResponseStarted, auditinternal.StageResponseComplete}
	}
	for _, st := range stages {
		e := *ev
		e.Stage = st
		e.StageTimestamp = metav1.NewMicroTime(time.Now())
		if !w.backend.ProcessEvents(&e) {
			panic("audit backend refused an event")
		}
		w.mu.Lock()
		w.written[Key(string(e.AuditID), string(st))] = time.Now()
		w.mu.Unlock()
	}
	w.noteRotation()
}

// WriteEvent writes ev as it stands, through kube-apiserver's audit
// backend.
func (w *Writer) WriteEvent(ev *auditinternal.Event) {
	if !w.backend.ProcessEvents(ev) {
		panic("audit backend refused an event")
	}
	w.mu.Lock()
	w.written[Key(string(ev.AuditID), string(ev.Stage))] = time.Now()
	w.mu.Unlock()
	w.noteRotation()
}

// noteRotation counts a new inode at the live path as a rotation.
func (w *Writer) noteRotation() {
	fi, err := os.Stat(w.path)
	if err != nil {
		return
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	w.mu.Lock()
	if w.ino != 0 && ino != w.ino {
		w.rotations++
	}
	w.ino = ino
	w.mu.Unlock()
}

var (
	verbs     = []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	resources = []string{"pods", "secrets", "configmaps", "leases", "deployments", "clusterrolebindings", "events"}
	users     = []string{"system:kube-controller-manager", "system:serviceaccount:kube-system:coredns", "alice@example.com", "system:node:master-1", "ünïcødé-user"}
)

func (w *Writer) event(n int) *auditinternal.Event {
	r := w.rng
	now := time.Now()
	ev := &auditinternal.Event{
		Level:                    auditinternal.LevelMetadata,
		AuditID:                  types.UID(fmt.Sprintf("%08x-e2e0-4000-8000-%012x", r.Uint32(), n)),
		Verb:                     verbs[r.IntN(len(verbs))],
		User:                     authnv1.UserInfo{Username: users[r.IntN(len(users))], Groups: []string{"system:authenticated"}},
		SourceIPs:                []string{"10.0.0.1"},
		UserAgent:                "kube-controller-manager/v1.30.0 (linux/amd64) kubernetes/abcdef/leader-election",
		ObjectRef:                &auditinternal.ObjectReference{Resource: resources[r.IntN(len(resources))], Namespace: "kube-system", Name: fmt.Sprintf("objekt-ñ-%d", n), APIVersion: "v1"},
		RequestURI:               fmt.Sprintf("/api/v1/namespaces/kube-system/pods/objekt-%d", n),
		ResponseStatus:           &metav1.Status{Code: 200},
		RequestReceivedTimestamp: metav1.NewMicroTime(now),
		Annotations:              map[string]string{"authorization.k8s.io/decision": "allow"},
	}
	res := ev.ObjectRef.Resource
	if w.secretWrites > 0 && r.IntN(1000) < w.secretWrites {
		ev.Level = auditinternal.LevelRequestResponse
		ev.ObjectRef.Resource, ev.ObjectRef.Name = "secrets", fmt.Sprintf("app-credentials-%d", n)
		ev.RequestURI = "/api/v1/namespaces/kube-system/secrets/" + ev.ObjectRef.Name
		ev.Verb, ev.RequestObject, ev.ResponseObject = secretWrite(r, now)
		return ev
	}
	switch p := r.IntN(1000); {
	case r.IntN(w.bigEvery) == 0: // a very large RequestResponse event: a long list
		ev.Level = auditinternal.LevelRequestResponse
		ev.ResponseObject = w.body(res, 256<<10+r.IntN(w.bigMax-256<<10), now) // lumberjack refuses single writes above MaxSize
	case res == "secrets" && p%100 != 0:
		// Secrets are logged at the Metadata level, as audit policies
		// recommend; a few bodies remain for the redaction to work on.
	case p < 150:
		ev.Level = auditinternal.LevelRequestResponse
		ev.RequestObject = w.body(res, 1<<10+r.IntN(4<<10), now)
		ev.ResponseObject = w.body(res, 1<<10+r.IntN(4<<10), now)
	case p < 300:
		ev.Level = auditinternal.LevelRequest
		ev.RequestObject = w.body(res, 512+r.IntN(2<<10), now)
	}
	return ev
}

// body returns a request or response body of about size bytes for a
// request on resource.
func (w *Writer) body(resource string, size int, now time.Time) *runtime.Unknown {
	if w.random {
		return randomObject(w.rng, size)
	}
	if w.words {
		return wordObject(w.rng, size)
	}
	return bodyFor(w.rng, resource, size, now)
}

// WriteRaw writes b to the audit log through lumberjack, as it stands:
// for lines kube-apiserver would never write.
func (w *Writer) WriteRaw(b []byte) {
	if _, err := w.lj.Write(b); err != nil {
		panic(err)
	}
}

// Count returns how many events were written.
func (w *Writer) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.written)
}

// Rotations returns how many times lumberjack rotated the file, counted by
// the backups it made.
func (w *Writer) Rotations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rotations
}

// Bytes returns how many bytes kube-apiserver's backend wrote.
func (w *Writer) Bytes() int64 { return w.out.n.Load() }

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}
