// Package sinktest builds batches the way the agent does, for sink tests.
package sinktest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/sinks"
)

// Batch returns a batch of lines read from one file starting at offset
// start. Lines that parse as events are KindEvent, others KindUnparsed.
func Batch(file *sinks.FileRef, start int64, lines ...string) *sinks.Batch {
	b := &sinks.Batch{}
	off := start
	for _, l := range lines {
		r := sinks.Record{Line: []byte(l), Kind: sinks.KindEvent, Event: new(auditjson.Event), File: file, Offset: off}
		if err := auditjson.Parse(r.Line, r.Event); err != nil {
			r.Kind, r.Event = sinks.KindUnparsed, nil
		}
		b.Records = append(b.Records, r)
		b.Bytes += len(l)
		off += int64(len(l)) + 1
	}
	b.Segments = []sinks.Segment{{File: file, Start: start, End: off}}
	return b
}

// File returns a file reference with the given sequence number.
func File(seq uint64) *sinks.FileRef {
	return &sinks.FileRef{Seq: seq, ID: fmt.Sprintf("2049-%d-0123456789abcdef", 1000+seq), Path: "/var/log/kubernetes/audit/audit.log"}
}

// Event returns an audit event line with auditID derived from n, the given
// stage, and a padding field that makes it about size bytes long.
func Event(n int, stage string, size int) string {
	head := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%08x-0000-4000-8000-%012x","stage":%q,"requestURI":"/api/v1/namespaces/kube-system/secrets/s-%d","verb":"get","user":{"username":"alice@example.com","groups":["system:authenticated"]},"objectRef":{"resource":"secrets","namespace":"kube-system","name":"s-%d","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:00:00.000000Z","stageTimestamp":"2026-11-21T10:%02d:%02d.%06dZ","annotations":{"pad":"`,
		uint32(n)*2654435761, n, stage, n, n, (n/60)%60, n%60, n%1000000)
	pad := max(size-len(head)-3, 0)
	return head + strings.Repeat("x", pad) + `"}}`
}

// Events returns count events starting at n, with a mix of sizes and
// stages, plus the keys (auditID-stage) they carry.
func Events(n, count int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]string, 0, count)
	for i := n; i < n+count; i++ {
		stage := "ResponseComplete"
		if rng.IntN(5) == 0 {
			stage = "ResponseStarted"
		}
		out = append(out, Event(i, stage, 600+rng.IntN(3000)))
	}
	return out
}

// SpoofedAuditID is the auditID a client chose by sending the header
// Audit-ID with its requests; kube-apiserver logs it as sent.
const SpoofedAuditID = "x1"

// Spoofed returns the ResponseComplete events of two different requests
// by mallory that both sent Audit-ID: x1, as kube-apiserver logs them:
// reads of secrets/harmless and of secrets/cloud-admin-credentials, or,
// with exec, two execs into different pods.
func Spoofed(exec bool) [2]string {
	var out [2]string
	for i, name := range [2]string{"harmless", "cloud-admin-credentials"} {
		verb, res, sub, uri := "get", "secrets", "", "/api/v1/namespaces/prod/secrets/"+name
		if exec {
			verb, res, sub, uri = "create", "pods", "exec", "/api/v1/namespaces/prod/pods/"+name+"/exec?command=sh"
		}
		out[i] = fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete","requestURI":%q,"verb":%q,"user":{"username":"mallory","groups":["system:authenticated"]},"objectRef":{"resource":%q,"subresource":%q,"namespace":"prod","name":%q,"apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-21T10:00:0%d.000000Z","stageTimestamp":"2026-11-21T10:00:0%d.000100Z","annotations":{"authorization.k8s.io/decision":"allow"}}`,
			SpoofedAuditID, uri, verb, res, sub, name, i+1, i+1)
	}
	return out
}

// WithAnchors returns b with an anchor record (sinks.KindAnchor) for
// each of heads put first, as the agent puts notices, and the heads as
// delivered.
func WithAnchors(b *sinks.Batch, heads ...int64) (*sinks.Batch, []sinks.AnchorRecord) {
	var recs []sinks.Record
	var want []sinks.AnchorRecord
	for _, seq := range heads {
		a := sinks.AnchorRecord{Kind: sinks.AnchorRecordKind, APIVersion: sinks.RecordAPIVersion, Sink: "s3", Chain: "master-1/s3",
			Epoch: "20261130T000000Z-00000000", Seq: seq, SHA256: fmt.Sprintf("%064x", seq), Key: fmt.Sprintf("k%d", seq),
			AnchoredAt: "2026-11-30T00:00:00Z"}
		line, _ := json.Marshal(a)
		recs = append(recs, sinks.Record{Line: line, Kind: sinks.KindAnchor, File: &sinks.FileRef{ID: fmt.Sprintf("anchor-%d", seq)}})
		b.Bytes += len(line)
		want = append(want, a)
	}
	b.Records = append(recs, b.Records...)
	return b, want
}
