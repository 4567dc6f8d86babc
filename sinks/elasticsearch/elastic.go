package elasticsearch

// The elastic-kubernetes format: documents in the layout of the Elastic
// Kubernetes integration's audit_logs data stream, as its ingest pipeline
// leaves them, so that Elastic Security's Kubernetes rules run on them.

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditrail/auditrail/sinks"
)

// Formats of the documents.
const (
	// FormatAuditrail is the audit event as written, with @timestamp and
	// the auditrail field added.
	FormatAuditrail = "auditrail"
	// FormatElasticKubernetes is the Elastic Kubernetes integration's
	// audit_logs layout: the event under kubernetes.audit, ECS fields
	// beside it.
	FormatElasticKubernetes = "elastic-kubernetes"
	// elasticDataset is the integration's dataset; the data stream is
	// logs-<dataset>-<namespace>.
	elasticDataset = "kubernetes.audit_logs"
)

// elasticTemplate is the index template for the integration's data
// stream, for clusters without the integration; deploy/elasticsearch
// holds the same file for those who install it by hand.
//
//go:embed elastic-kubernetes-template.json
var elasticTemplate []byte

// elasticTemplateName names the template installed by installTemplate. Its
// priority is below the integration's, whose template wins where both are
// installed.
const elasticTemplateName = "auditrail-logs-kubernetes.audit_logs"

// appendElastic appends the document of r in the elastic-kubernetes
// layout; ruleMeta is scratch space, returned for the next call.
func (s *Sink) appendElastic(buf *bytes.Buffer, r *sinks.Record, ruleMeta []byte) []byte {
	meta := s.meta
	if len(r.Rules) > 0 {
		ruleMeta = appendRules(append(ruleMeta[:0], s.meta...), r.Rules)
		meta = ruleMeta
	}
	ds := map[string]any{"type": "logs", "dataset": elasticDataset, "namespace": s.cfg.DataStreamNamespace}
	doc := map[string]any{
		"data_stream": ds,
		"auditrail":   json.RawMessage(meta[len(`"auditrail":`):]),
	}
	var ev map[string]any
	if r.Kind == sinks.KindEvent {
		d := json.NewDecoder(bytes.NewReader(r.Line))
		d.UseNumber()
		if d.Decode(&ev) != nil {
			ev = nil
		}
	}
	if ev == nil {
		s.elasticRecord(doc, r)
	} else {
		elasticEvent(doc, ev, s.cfg.Cluster)
	}
	doc["@timestamp"] = s.timestamp(r)
	b, err := json.Marshal(doc)
	if err != nil {
		// Decoded from JSON, so it encodes; kept whole in the dead-letter
		// form should it ever not.
		s.appendWrapped(buf, r, nil)
		return ruleMeta
	}
	buf.Write(b)
	return ruleMeta
}

// timestamp is the event's stageTimestamp, or now for records without
// one.
func (s *Sink) timestamp(r *sinks.Record) string {
	if ts := sinks.EventTime(r); len(ts) > 0 {
		return string(ts)
	}
	return s.now().UTC().Format(time.RFC3339Nano)
}

// elasticRecord fills doc for a record that is not an audit event: the
// agent's own records (gaps, tamper, start, heartbeat) under
// auditrail.record, lines that are not events as message, like the
// integration's pipeline failures.
func (s *Sink) elasticRecord(doc map[string]any, r *sinks.Record) {
	event := map[string]any{"dataset": elasticDataset, "kind": "event", "action": r.Kind.String(), "module": "auditrail"}
	doc["event"] = event
	if r.Kind != sinks.KindUnparsed && json.Valid(r.Line) && bytes.HasPrefix(bytes.TrimSpace(r.Line), []byte("{")) {
		var meta map[string]any
		json.Unmarshal(doc["auditrail"].(json.RawMessage), &meta)
		meta["record"] = json.RawMessage(r.Line)
		doc["auditrail"] = meta
		return
	}
	event["kind"] = "pipeline_error"
	doc["message"] = string(r.Line)
	if !utf8.Valid(r.Line) {
		doc["error"] = map[string]any{"message": "not UTF-8; the line is in auditrail.rawBase64"}
		var meta map[string]any
		json.Unmarshal(doc["auditrail"].(json.RawMessage), &meta)
		meta["rawBase64"] = base64.StdEncoding.EncodeToString(r.Line)
		doc["auditrail"] = meta
	} else {
		doc["error"] = map[string]any{"message": "not a Kubernetes audit event"}
	}
	doc["file"] = map[string]any{"path": r.File.Path}
	doc["log"] = map[string]any{"offset": r.Offset, "file": map[string]any{"path": r.File.Path}}
}

// elasticEvent fills doc from the audit event ev as the integration's
// ingest pipeline does, and a little more: the event under
// kubernetes.audit with the metadata of requestObject and responseObject
// removed and the annotations' keys de-dotted; event.kind, event.action
// (the verb), event.outcome (from the authorization decision),
// user.name/id, user_agent.original, source.ip and client.ip (the first
// of sourceIPs, the client as kube-apiserver saw it), orchestrator.*,
// related.ip/user, and container.image.name where a pod is created.
func elasticEvent(doc, ev map[string]any, cluster string) {
	for _, k := range []string{"requestObject", "responseObject"} {
		if o, ok := ev[k].(map[string]any); ok {
			delete(o, "metadata")
		}
	}
	event := map[string]any{"dataset": elasticDataset, "kind": "event"}
	doc["event"] = event
	doc["kubernetes"] = map[string]any{"audit": ev}
	if ann, ok := ev["annotations"].(map[string]any); ok {
		dedotted := make(map[string]any, len(ann))
		for k, v := range ann {
			dedotted[strings.ReplaceAll(k, ".", "_")] = v
		}
		ev["annotations"] = dedotted
		switch ann["authorization.k8s.io/decision"] {
		case "allow":
			event["outcome"] = "success"
		case "forbid":
			event["outcome"] = "failure"
		}
	}
	verb := str(ev["verb"])
	if verb != "" {
		event["action"] = verb
	}
	var related []string
	for _, k := range []string{"user", "impersonatedUser"} {
		u, ok := ev[k].(map[string]any)
		if !ok {
			continue
		}
		if extra, ok := u["extra"].(map[string]any); ok {
			u["extra"] = safeKeys(extra)
		}
		if name := str(u["username"]); name != "" {
			related = append(related, name)
		}
	}
	user := map[string]any{}
	if u, ok := ev["user"].(map[string]any); ok {
		setIf(user, "name", str(u["username"]))
		setIf(user, "id", str(u["uid"]))
	}
	if len(user) > 0 {
		doc["user"] = user
	}
	if ua := str(ev["userAgent"]); ua != "" {
		doc["user_agent"] = map[string]any{"original": ua}
	}
	ips := validIPs(ev["sourceIPs"])
	if len(ips) > 0 {
		doc["source"] = map[string]any{"ip": ips[0]}
		doc["client"] = map[string]any{"ip": ips[0]}
	}
	rel := map[string]any{}
	if len(ips) > 0 {
		rel["ip"] = unique(ips)
	}
	if len(related) > 0 {
		rel["user"] = unique(related)
	}
	if len(rel) > 0 {
		doc["related"] = rel
	}
	orch := map[string]any{"type": "kubernetes"}
	if cluster != "" {
		orch["cluster"] = map[string]any{"name": cluster}
	}
	ref, _ := ev["objectRef"].(map[string]any)
	setIf(orch, "namespace", str(ref["namespace"]))
	setIf(orch, "api_version", str(ref["apiVersion"]))
	res := map[string]any{}
	setIf(res, "name", str(ref["name"]))
	setIf(res, "type", str(ref["resource"]))
	if len(res) > 0 {
		orch["resource"] = res
	}
	doc["orchestrator"] = orch
	if verb == "create" && str(ref["resource"]) == "pods" && str(ref["subresource"]) == "" {
		if images := podImages(ev["requestObject"]); len(images) > 0 {
			doc["container"] = map[string]any{"image": map[string]any{"name": images}}
		}
	}
}

// podImages returns the images of a Pod's containers and init containers.
func podImages(obj any) []string {
	o, _ := obj.(map[string]any)
	spec, _ := o["spec"].(map[string]any)
	var out []string
	for _, k := range []string{"containers", "initContainers"} {
		cs, _ := spec[k].([]any)
		for _, c := range cs {
			m, _ := c.(map[string]any)
			if img := str(m["image"]); img != "" {
				out = append(out, img)
			}
		}
	}
	return unique(out)
}

// safeKeys returns extra with keys that would break an object mapping
// de-dotted: the integration maps user.extra as an object, in which
// Elasticsearch expands a.b.c into objects, so a key that is a dotted
// prefix of another (a.b beside a.b.c: a value and an object at once), or
// that has an empty part (a..b, .a, a.), fails the whole document. Every
// other key is kept as it is, as the rules query them
// (user.extra.authentication.kubernetes.io/pod-name).
func safeKeys(extra map[string]any) map[string]any {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]any, len(extra))
	for i, k := range keys {
		bad := k == "" || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..")
		// Sorted, a key's dotted extensions follow it.
		for _, next := range keys[i+1:] {
			if !strings.HasPrefix(next, k) {
				break
			}
			if strings.HasPrefix(next, k+".") {
				bad = true
				break
			}
		}
		if bad {
			out[strings.ReplaceAll(k, ".", "_")] = extra[k]
		} else {
			out[k] = extra[k]
		}
	}
	return out
}

// validIPs returns the addresses of a sourceIPs list that parse as IP
// addresses, which the ip fields need.
func validIPs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if a, err := netip.ParseAddr(str(x)); err == nil {
			out = append(out, a.String())
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func setIf(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func unique(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := l[:0:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
