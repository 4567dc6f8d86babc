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
	if r.Kind == sinks.KindEvent && s.appendElasticEvent(buf, r, meta) {
		return ruleMeta
	}
	doc := map[string]any{
		"@timestamp":  s.timestamp(r),
		"data_stream": s.stream(),
		"auditrail":   json.RawMessage(meta[len(`"auditrail":`):]),
	}
	s.elasticRecord(doc, r)
	b, _ := json.Marshal(doc) // strings, numbers and JSON from the line
	buf.Write(b)
	return ruleMeta
}

// stream is the data_stream field of every document.
func (s *Sink) stream() dataStream {
	return dataStream{Type: "logs", Dataset: elasticDataset, Namespace: s.cfg.DataStreamNamespace}
}

// appendElasticEvent appends the document of the audit event r, and
// reports false, having appended nothing, if its line is not a JSON
// object. Only the event's small fields are decoded; the bodies are
// copied as they are but for their metadata.
func (s *Sink) appendElasticEvent(buf *bytes.Buffer, r *sinks.Record, meta []byte) bool {
	var ev map[string]json.RawMessage
	if json.Unmarshal(r.Line, &ev) != nil || ev == nil {
		return false
	}
	doc := ecsDoc{Timestamp: s.timestamp(r), DataStream: s.stream()}
	elasticEvent(&doc, ev, s.cfg.Cluster)
	head, err := json.Marshal(&doc)
	if err != nil {
		return false
	}
	buf.Write(head[:len(head)-1])
	buf.WriteString(`,"kubernetes":{"audit":`)
	buf.Write(appendRawObject(buf.AvailableBuffer(), ev))
	buf.WriteString(`},`)
	buf.Write(meta)
	buf.WriteByte('}')
	return true
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
	if r.File != nil {
		doc["log"] = map[string]any{"offset": r.Offset, "file": map[string]any{"path": r.File.Path}}
	}
}

// ecsDoc is a document's fields beside kubernetes.audit.
type ecsDoc struct {
	Timestamp    string        `json:"@timestamp"`
	DataStream   dataStream    `json:"data_stream"`
	Event        ecsEvent      `json:"event"`
	User         *ecsUser      `json:"user,omitempty"`
	UserAgent    *ecsUserAgent `json:"user_agent,omitempty"`
	Source       *ecsIP        `json:"source,omitempty"`
	Client       *ecsIP        `json:"client,omitempty"`
	Related      *ecsRelated   `json:"related,omitempty"`
	Orchestrator ecsOrch       `json:"orchestrator"`
	Container    *ecsContainer `json:"container,omitempty"`
}

type dataStream struct {
	Type      string `json:"type"`
	Dataset   string `json:"dataset"`
	Namespace string `json:"namespace"`
}

type ecsEvent struct {
	Dataset string `json:"dataset"`
	Kind    string `json:"kind"`
	Action  string `json:"action,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

type ecsUser struct {
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
}

type ecsUserAgent struct {
	Original string `json:"original"`
}

type ecsIP struct {
	IP string `json:"ip"`
}

type ecsRelated struct {
	IP   []string `json:"ip,omitempty"`
	User []string `json:"user,omitempty"`
}

type ecsOrch struct {
	Type       string       `json:"type"`
	Cluster    *ecsCluster  `json:"cluster,omitempty"`
	Namespace  string       `json:"namespace,omitempty"`
	APIVersion string       `json:"api_version,omitempty"`
	Resource   *ecsResource `json:"resource,omitempty"`
}

type ecsCluster struct {
	Name string `json:"name"`
}

type ecsResource struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
}

type ecsContainer struct {
	Image struct {
		Name []string `json:"name"`
	} `json:"image"`
}

// auditFields are the fields of an audit event the ECS fields come from.
type auditFields struct {
	Verb             string     `json:"verb"`
	UserAgent        string     `json:"userAgent"`
	SourceIPs        []string   `json:"sourceIPs"`
	User             userFields `json:"user"`
	ImpersonatedUser userFields `json:"impersonatedUser"`
	ObjectRef        objectRef  `json:"objectRef"`
}

type userFields struct {
	Username string `json:"username"`
	UID      string `json:"uid"`
}

type objectRef struct {
	Resource, Namespace, Name, APIVersion, Subresource string
}

// elasticEvent fills doc's ECS fields from the audit event ev as the
// integration's ingest pipeline does, and a little more, and rewrites ev
// as the pipeline leaves it under kubernetes.audit: the metadata of
// requestObject and responseObject removed, the annotations' keys
// de-dotted, and user.extra keys that would fail an object mapping
// de-dotted too (safeKeys). The ECS fields: event.kind, event.action (the
// verb), event.outcome (from the authorization decision), user.name/id,
// user_agent.original, source.ip and client.ip (the first of sourceIPs,
// the client as kube-apiserver saw it), orchestrator.*, related.ip/user,
// and container.image.name where a pod is created.
func elasticEvent(doc *ecsDoc, ev map[string]json.RawMessage, cluster string) {
	var f auditFields
	for k, dst := range map[string]any{"verb": &f.Verb, "userAgent": &f.UserAgent, "sourceIPs": &f.SourceIPs,
		"user": &f.User, "impersonatedUser": &f.ImpersonatedUser, "objectRef": &f.ObjectRef} {
		if v, ok := ev[k]; ok {
			json.Unmarshal(v, dst)
		}
	}
	for _, k := range []string{"requestObject", "responseObject"} {
		var o map[string]json.RawMessage
		if json.Unmarshal(ev[k], &o) != nil || o == nil {
			continue
		}
		if _, ok := o["metadata"]; ok {
			delete(o, "metadata")
			ev[k] = rawObject(o)
		}
		if k == "requestObject" && f.Verb == "create" && f.ObjectRef.Resource == "pods" && f.ObjectRef.Subresource == "" {
			var pod struct {
				Spec struct {
					Containers, InitContainers []struct {
						Image string `json:"image"`
					}
				} `json:"spec"`
			}
			json.Unmarshal(ev[k], &pod)
			var images []string
			for _, c := range append(pod.Spec.Containers, pod.Spec.InitContainers...) {
				if c.Image != "" {
					images = append(images, c.Image)
				}
			}
			if images = unique(images); len(images) > 0 {
				doc.Container = &ecsContainer{}
				doc.Container.Image.Name = images
			}
		}
	}
	doc.Event = ecsEvent{Dataset: elasticDataset, Kind: "event", Action: f.Verb}
	var ann map[string]json.RawMessage
	if json.Unmarshal(ev["annotations"], &ann) == nil && ann != nil {
		dedotted := make(map[string]json.RawMessage, len(ann))
		for k, v := range ann {
			dedotted[strings.ReplaceAll(k, ".", "_")] = v
		}
		ev["annotations"] = rawObject(dedotted)
		var decision string
		json.Unmarshal(ann["authorization.k8s.io/decision"], &decision)
		switch decision {
		case "allow":
			doc.Event.Outcome = "success"
		case "forbid":
			doc.Event.Outcome = "failure"
		}
	}
	for _, k := range []string{"user", "impersonatedUser"} {
		var u map[string]json.RawMessage
		if json.Unmarshal(ev[k], &u) != nil || u == nil {
			continue
		}
		var extra map[string]json.RawMessage
		if json.Unmarshal(u["extra"], &extra) == nil && extra != nil {
			u["extra"] = rawObject(safeKeys(extra))
			ev[k] = rawObject(u)
		}
	}
	if f.User.Username != "" || f.User.UID != "" {
		doc.User = &ecsUser{Name: f.User.Username, ID: f.User.UID}
	}
	if f.UserAgent != "" {
		doc.UserAgent = &ecsUserAgent{Original: f.UserAgent}
	}
	var rel ecsRelated
	if ips := validIPs(f.SourceIPs); len(ips) > 0 {
		doc.Source, doc.Client = &ecsIP{IP: ips[0]}, &ecsIP{IP: ips[0]}
		rel.IP = unique(ips)
	}
	for _, name := range []string{f.User.Username, f.ImpersonatedUser.Username} {
		if name != "" {
			rel.User = append(rel.User, name)
		}
	}
	rel.User = unique(rel.User)
	if len(rel.IP)+len(rel.User) > 0 {
		doc.Related = &rel
	}
	doc.Orchestrator = ecsOrch{Type: "kubernetes", Namespace: f.ObjectRef.Namespace, APIVersion: f.ObjectRef.APIVersion}
	if cluster != "" {
		doc.Orchestrator.Cluster = &ecsCluster{Name: cluster}
	}
	if f.ObjectRef.Name != "" || f.ObjectRef.Resource != "" {
		doc.Orchestrator.Resource = &ecsResource{Name: f.ObjectRef.Name, Type: f.ObjectRef.Resource}
	}
}

// rawObject encodes m, whose values are JSON decoded from a line, as an
// object.
func rawObject(m map[string]json.RawMessage) json.RawMessage {
	return appendRawObject(nil, m)
}

// appendRawObject appends m as a JSON object: the values as they are,
// without the validation and compaction json.Marshal gives a RawMessage,
// as they come from the decoder.
func appendRawObject(dst []byte, m map[string]json.RawMessage) []byte {
	dst = append(dst, '{')
	first := true
	for k, v := range m {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		key, _ := json.Marshal(k)
		dst = append(dst, key...)
		dst = append(dst, ':')
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

// safeKeys returns extra with keys that would break an object mapping
// de-dotted: the integration maps user.extra as an object, in which
// Elasticsearch expands a.b.c into objects, so a key that is a dotted
// prefix of another (a.b beside a.b.c: a value and an object at once), or
// that has an empty part (a..b, .a, a.), fails the whole document. Every
// other key is kept as it is, as the rules query them
// (user.extra.authentication.kubernetes.io/pod-name).
func safeKeys[V any](extra map[string]V) map[string]V {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]V, len(extra))
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
func validIPs(l []string) []string {
	var out []string
	for _, x := range l {
		if a, err := netip.ParseAddr(x); err == nil {
			out = append(out, a.String())
		}
	}
	return out
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
