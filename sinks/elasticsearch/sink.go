// Package elasticsearch implements a sink that indexes audit events with
// the _bulk API.
//
// Every record is sent with the create operation and an _id the agent
// derives (sinks.AppendID): for an event the SHA-256 of its line as read
// from the file, for other records the source file identity and offset.
// Not the auditID, which a client chooses with the Audit-ID header and can
// give to several requests. So a batch delivered again after a crash
// creates nothing new: Elasticsearch answers 409 for those items, which
// counts as delivered. A batch is split into up to maxInFlightRequests
// bulk requests sent at once; each item counts as delivered when the
// request that carried it answers 201 or 409 for it, and Write returns nil
// only when every item is. Items rejected with 429 or 5xx are retried on
// their own, within the same write, each after a wait paced by the
// fraction its request had rejected, while the other requests go on; they
// are never dropped, and their retries are counted and logged (at most
// every 10 s). Items rejected for good (a mapping error, say) are sent,
// wrapped with the raw line as a string and the error, to a dead-letter
// index, and counted. A whole request that fails (connection error, 429,
// 5xx) fails the write once the requests in flight have ended, and the
// agent retries the batch: the records acknowledged before, by any
// request, are remembered by id and not sent again. A 429 or 503 with
// Retry-After is first waited out within the write (at most
// itemRetryMax, three times a write).
//
// Events carry an @timestamp from their stageTimestamp, inserted at the
// head of the original JSON object; nothing else of the event changes.
// With format elastic-kubernetes, documents follow instead the layout of
// the Elastic Kubernetes integration's audit_logs data stream (elastic.go).
package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	es "github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks"
)

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Checker = (*Sink)(nil)
)

// Sink is the Elasticsearch sink.
type Sink struct {
	name   string
	cfg    Config
	client *es.Client
	log    *slog.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	templated bool
	// meta is the "auditrail" field added to every document, encoded once.
	meta   []byte
	source *source
	// items and conns are kept from one write to the next.
	items []item
	conns []*conn
	// retryLog gathers the item retries logged at most every
	// retryLogEvery.
	retryLog retryLog
	// acked holds the ids of the records acknowledged in a write that
	// failed later; emptied when a write succeeds.
	acked map[string]struct{}

	indexed, conflicts, itemRetries, deadLettered prometheus.Counter
}

// item is one record on its way, or its wrapped form for the dead-letter
// index.
type item struct {
	rec  *sinks.Record
	dead *itemError
}

type itemError struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Index  string `json:"index"`
}

// New returns an Elasticsearch sink.
func New(ctx context.Context, name string, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("elasticsearch sink %s: %w", name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	client, err := es.NewClient(es.Config{
		Addresses: cfg.Addresses, Username: cfg.Username, Password: cfg.Password,
		APIKey: cfg.APIKey, ServiceToken: cfg.BearerToken,
		CompressRequestBody: cfg.Compression, Transport: tr, DisableRetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch sink %s: %w", name, err)
	}
	labels := prometheus.Labels{"sink": name}
	src := &source{Cluster: cfg.Cluster, Node: cfg.Node, AgentVersion: cfg.AgentVersion}
	meta, _ := json.Marshal(src)
	s := &Sink{
		name: name, cfg: cfg, client: client, log: log, now: time.Now, sleep: sinks.Sleep,
		meta: append([]byte(`"auditrail":`), meta...), source: src,
		indexed: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_elasticsearch_items_created_total",
			Help: "Documents created.", ConstLabels: labels}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_elasticsearch_items_duplicate_total",
			Help: "Items answered 409: already delivered before.", ConstLabels: labels}),
		itemRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_elasticsearch_item_retries_total",
			Help: "Items rejected with 429 or 5xx and sent again.", ConstLabels: labels}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_elasticsearch_dead_letter_items_total",
			Help: "Items rejected for good and sent to the dead-letter index.", ConstLabels: labels}),
	}
	if err := sinks.Register(reg, s.indexed, s.conflicts, s.itemRetries, s.deadLettered); err != nil {
		return nil, fmt.Errorf("elasticsearch sink %s: %w", name, err)
	}
	return s, nil
}

// Check implements sinks.Checker: with installTemplate, it installs the
// index template; when that fails, it is tried again before the first
// write.
func (s *Sink) Check(ctx context.Context) error {
	if !s.cfg.InstallTemplate {
		return nil
	}
	return s.installTemplate(ctx)
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// Close implements sinks.Sink.
func (s *Sink) Close(context.Context) error { return nil }

// Write indexes every record of b, in requests of at most a share of the
// batch, up to maxInFlightRequests at a time. Items rejected with 429 or
// 5xx are sent again, each after a wait paced by the fraction its request
// had rejected (rounds.next); when a write fails, the ids of the records
// acknowledged so far are kept, so that the agent's next write of the
// batch sends only the rest.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	if s.cfg.InstallTemplate && !s.templated {
		if err := s.installTemplate(ctx); err != nil {
			return err
		}
	}
	w := &write{s: s, queue: s.pending(b)}
	w.chunk = max(minBulkItems, (len(w.queue)+s.cfg.MaxInFlightRequests-1)/s.cfg.MaxInFlightRequests)
	err := w.send(ctx)
	s.items = w.queue[:0]
	s.logRetries(&w.r)
	if err != nil {
		s.remember(w.acked)
		return err
	}
	clear(s.acked)
	return nil
}

// bulk sends c.items once and leaves in c.retry those to send again:
// rejected with 429 or 5xx, or rejected for good and now due for the
// dead-letter index; c.acked gets the records stored.
func (s *Sink) bulk(ctx context.Context, c *conn) error {
	items := c.items
	c.retry = c.retry[:0]
	// Sized for the request beforehand: growing by doubling would leave
	// up to twice the body allocated for every later request.
	n := 0
	for _, it := range items {
		n += len(it.rec.Line) + itemOverhead
	}
	c.body.Reset()
	if c.body.Cap() < n {
		c.body = bytes.Buffer{}
		c.body.Grow(n + n/8)
	}
	for _, it := range items {
		c.ruleMeta = s.appendItem(&c.body, it, c.ruleMeta)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	res, err := esapi.BulkRequest{
		Body:       bytes.NewReader(c.body.Bytes()),
		FilterPath: []string{"errors", "items.*.status", "items.*.error.type", "items.*.error.reason"},
	}.Do(ctx, s.client)
	if err != nil {
		return fmt.Errorf("bulk request: %w", err)
	}
	defer res.Body.Close()
	// Read into the buffer of earlier responses: io.ReadAll would grow
	// a new one, by doubling, for every request.
	c.resp.Reset()
	if _, err := c.resp.ReadFrom(res.Body); err != nil {
		return fmt.Errorf("read bulk response: %w", err)
	}
	body := c.resp.Bytes()
	if res.StatusCode != http.StatusOK {
		return busyOr(res, httpError("bulk request", res.StatusCode, body), s.now())
	}
	var r bulkResponse
	if !allCreated(body) {
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decode bulk response: %w", err)
		}
	}
	if !r.Errors {
		for _, it := range items {
			s.count(it, http.StatusCreated)
			c.acked = append(c.acked, it.rec)
		}
		return nil
	}
	if len(r.Items) != len(items) {
		return fmt.Errorf("bulk response has %d items for %d sent", len(r.Items), len(items))
	}
	for i, it := range items {
		st := r.Items[i].Create
		switch {
		case st.Status == http.StatusOK || st.Status == http.StatusCreated || st.Status == http.StatusConflict:
			s.count(it, st.Status)
			c.acked = append(c.acked, it.rec)
		case st.Status == http.StatusTooManyRequests || st.Status >= 500:
			s.itemRetries.Inc()
			c.retry = append(c.retry, it)
		case it.dead != nil:
			return sinks.Permanent(fmt.Errorf("dead-letter index %s rejected document %s: %d %s",
				s.cfg.DeadLetterIndex, sinks.AppendID(nil, it.rec), st.Status, errorType(st.Error.Type)))
		default:
			// The reason quotes the document's values: it goes into the
			// dead-letter document, not into the log.
			s.log.Warn("Elasticsearch rejected a record; sending it to the dead-letter index", "sink", s.name,
				"status", st.Status, "type", errorType(st.Error.Type), "id", string(sinks.AppendID(nil, it.rec)),
				"file", it.rec.File.ID, "offset", it.rec.Offset)
			c.retry = append(c.retry, item{rec: it.rec, dead: &itemError{Status: st.Status, Type: st.Error.Type,
				Reason: st.Error.Reason, Index: s.index(it.rec)}})
		}
	}
	return nil
}

func (s *Sink) count(it item, status int) {
	switch {
	case status == http.StatusConflict:
		s.conflicts.Inc()
	case it.dead != nil:
		s.deadLettered.Inc()
	default:
		s.indexed.Inc()
	}
}

// httpError describes a failed request by its status and, when the
// answer is an Elasticsearch error, the error's type. The body is left
// out: a cluster's reason, or a proxy's page, may quote the request, and
// with it audit events.
func httpError(what string, status int, body []byte) error {
	var r struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &r) == nil && r.Error.Type != "" {
		return fmt.Errorf("%s: HTTP %d %s", what, status, errorType(r.Error.Type))
	}
	return fmt.Errorf("%s: HTTP %d (a %d-byte answer, not shown)", what, status, len(body))
}

// errorType returns t, an Elasticsearch error type such as
// mapper_parsing_exception, if it looks like one, and "other" if not: it
// names a class of error, where the reason beside it quotes values.
func errorType(t string) string {
	if t == "" || len(t) > 64 {
		return "other"
	}
	for _, c := range []byte(t) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '.' {
			return "other"
		}
	}
	return t
}

// allCreated reports whether a bulk response says, before its items, that
// no item failed: then the items need not be decoded, which is most of the
// cost of a response. Any other shape is decoded in full.
func allCreated(body []byte) bool {
	head := body
	if i := bytes.Index(body, []byte(`"items"`)); i >= 0 {
		head = body[:i]
	}
	return bytes.Contains(head, []byte(`"errors":false`))
}

type bulkResponse struct {
	Errors bool `json:"errors"`
	// Items are the results of create operations, the only ones the sink
	// sends: decoded into a struct, not a map an item.
	Items []struct {
		Create bulkItem `json:"create"`
	} `json:"items"`
}

type bulkItem struct {
	Status int `json:"status"`
	Error  struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// itemOverhead is about what appendItem adds to a line: the action line
// and the fields the sink adds.
const itemOverhead = 256

// appendItem appends the action and document lines of it; ruleMeta is
// scratch space, returned for the next call.
func (s *Sink) appendItem(buf *bytes.Buffer, it item, ruleMeta []byte) []byte {
	r := it.rec
	index := s.index(r)
	if it.dead != nil {
		index = s.cfg.DeadLetterIndex
	}
	buf.WriteString(`{"create":{"_index":"`)
	buf.WriteString(index)
	buf.WriteString(`","_id":"`)
	buf.Write(sinks.AppendID(buf.AvailableBuffer(), r))
	buf.WriteString("\"}}\n")
	switch {
	case it.dead == nil && s.cfg.Format == FormatElasticKubernetes:
		ruleMeta = s.appendElastic(buf, r, ruleMeta)
	case it.dead != nil:
		s.appendWrapped(buf, r, it.dead)
	case r.Kind == sinks.KindUnparsed:
		s.appendWrapped(buf, r, nil)
	default:
		ts := sinks.EventTime(r)
		if len(ts) == 0 {
			ts = []byte(s.now().UTC().Format(time.RFC3339Nano))
		}
		meta := s.meta
		if len(r.Rules) > 0 {
			ruleMeta = appendRules(append(ruleMeta[:0], s.meta...), r.Rules)
			meta = ruleMeta
		}
		appendWithTimestamp(buf, r.Line, ts, meta)
	}
	buf.WriteByte('\n')
	return ruleMeta
}

// appendRules adds a "rules" array to meta, which ends with the
// auditrail object's closing brace.
func appendRules(meta []byte, ids []string) []byte {
	meta = meta[:len(meta)-1]
	if meta[len(meta)-1] != '{' {
		meta = append(meta, ',')
	}
	meta = append(meta, `"rules":`...)
	b, _ := json.Marshal(ids)
	meta = append(meta, b...)
	return append(meta, '}')
}

// appendWithTimestamp writes the JSON object line with an @timestamp
// field and meta (a "key":value pair, or nothing) first.
func appendWithTimestamp(buf *bytes.Buffer, line, ts, meta []byte) {
	i := bytes.IndexByte(line, '{')
	buf.WriteString(`{"@timestamp":"`)
	buf.Write(ts)
	buf.WriteByte('"')
	if len(meta) > 0 {
		buf.WriteByte(',')
		buf.Write(meta)
	}
	rest := line[i+1:]
	if len(bytes.TrimLeft(rest, " \t")) > 0 && bytes.TrimLeft(rest, " \t")[0] != '}' {
		buf.WriteByte(',')
	}
	buf.Write(rest)
}

// wrapped is the document for a line that is not a well-formed event, or
// that Elasticsearch rejected.
type wrapped struct {
	Timestamp  string     `json:"@timestamp"`
	Kind       string     `json:"kind"`
	APIVersion string     `json:"apiVersion"`
	Message    string     `json:"message"`
	RawBase64  string     `json:"rawBase64,omitempty"`
	File       fileRef    `json:"file"`
	Offset     int64      `json:"offset"`
	Error      *itemError `json:"error,omitempty"`
	Source     *source    `json:"auditrail,omitempty"`
}

// source names where a document comes from.
type source struct {
	Cluster      string `json:"cluster,omitempty"`
	Node         string `json:"node,omitempty"`
	AgentVersion string `json:"agentVersion,omitempty"`
}

type fileRef struct {
	ID   string `json:"id"`
	Path string `json:"path"`
}

func (s *Sink) appendWrapped(buf *bytes.Buffer, r *sinks.Record, e *itemError) {
	w := wrapped{
		Timestamp: s.now().UTC().Format(time.RFC3339Nano), Kind: "AuditrailUnparsed", APIVersion: sinks.RecordAPIVersion,
		Message: string(r.Line), File: fileRef{ID: r.File.ID, Path: r.File.Path}, Offset: r.Offset, Error: e,
		Source: s.source,
	}
	if e != nil {
		w.Kind = "AuditrailRejected"
	}
	if ts := sinks.EventTime(r); len(ts) > 0 {
		w.Timestamp = string(ts)
	}
	if !utf8.Valid(r.Line) {
		w.RawBase64 = base64.StdEncoding.EncodeToString(r.Line)
	}
	b, _ := json.Marshal(w) // strings and numbers only
	buf.Write(b)
}

// index returns the index for r: the configured name with any {layout}
// replaced by the record's UTC date.
func (s *Sink) index(r *sinks.Record) string {
	ix := s.cfg.Index
	i := strings.IndexByte(ix, '{')
	if i < 0 {
		return ix
	}
	t := s.now()
	if ts := sinks.EventTime(r); len(ts) > 0 {
		if p, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
			t = p
		}
	}
	var out strings.Builder
	for i >= 0 {
		j := strings.IndexByte(ix[i:], '}')
		if j < 0 {
			break
		}
		out.WriteString(ix[:i])
		out.WriteString(t.UTC().Format(ix[i+1 : i+j]))
		ix = ix[i+j+1:]
		i = strings.IndexByte(ix, '{')
	}
	out.WriteString(ix)
	return out.String()
}

// installTemplate puts an index template for audit events matching the
// configured index: with the elastic-kubernetes format, the template for
// the integration's data stream.
func (s *Sink) installTemplate(ctx context.Context) error {
	if s.cfg.Format == FormatElasticKubernetes {
		return s.putTemplate(ctx, elasticTemplateName, elasticTemplate)
	}
	pattern := s.cfg.Index
	if i := strings.IndexByte(pattern, '{'); i >= 0 {
		pattern = pattern[:i]
	}
	tmpl := map[string]any{
		"index_patterns": []string{pattern + "*"},
		"priority":       250,
		"template": map[string]any{
			"settings": map[string]any{"index.mapping.total_fields.limit": 2000},
			"mappings": auditMapping,
		},
		"_meta": map[string]any{"managed_by": "auditrail"},
	}
	if !strings.Contains(s.cfg.Index, "{") {
		tmpl["data_stream"] = map[string]any{}
	}
	body, _ := json.Marshal(tmpl)
	return s.putTemplate(ctx, "auditrail-"+strings.Trim(pattern, "-_."), body)
}

// putTemplate installs the index template body as name.
func (s *Sink) putTemplate(ctx context.Context, name string, body []byte) error {
	res, err := esapi.IndicesPutIndexTemplateRequest{Name: name, Body: bytes.NewReader(body)}.Do(ctx, s.client)
	if err != nil {
		return fmt.Errorf("install index template: %w", err)
	}
	defer res.Body.Close()
	if res.IsError() {
		b, _ := io.ReadAll(res.Body)
		return httpError("install index template", res.StatusCode, b)
	}
	s.templated = true
	return nil
}

// auditMapping maps the fields of audit events that investigations search
// on; request and response bodies are flattened so that arbitrary objects
// cannot explode the mapping.
var auditMapping = map[string]any{
	"dynamic": false,
	"properties": map[string]any{
		"@timestamp":               map[string]any{"type": "date"},
		"kind":                     map[string]any{"type": "keyword"},
		"level":                    map[string]any{"type": "keyword"},
		"auditID":                  map[string]any{"type": "keyword"},
		"stage":                    map[string]any{"type": "keyword"},
		"requestURI":               map[string]any{"type": "wildcard"},
		"verb":                     map[string]any{"type": "keyword"},
		"user":                     userMapping,
		"impersonatedUser":         userMapping,
		"sourceIPs":                map[string]any{"type": "keyword"},
		"userAgent":                map[string]any{"type": "keyword", "ignore_above": 1024},
		"objectRef":                map[string]any{"properties": keywords("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")},
		"responseStatus":           map[string]any{"properties": map[string]any{"code": map[string]any{"type": "integer"}, "status": map[string]any{"type": "keyword"}, "reason": map[string]any{"type": "keyword"}, "message": map[string]any{"type": "text"}}},
		"requestObject":            map[string]any{"type": "flattened"},
		"responseObject":           map[string]any{"type": "flattened"},
		"requestReceivedTimestamp": map[string]any{"type": "date"},
		"stageTimestamp":           map[string]any{"type": "date"},
		"annotations":              map[string]any{"type": "flattened"},
		"message":                  map[string]any{"type": "text"},
		"auditrail":                map[string]any{"properties": keywords("cluster", "node", "agentVersion", "rules")},
		"reason":                   map[string]any{"type": "keyword"},
	},
}

var userMapping = map[string]any{"properties": map[string]any{
	"username": map[string]any{"type": "keyword"}, "uid": map[string]any{"type": "keyword"},
	"groups": map[string]any{"type": "keyword"}, "extra": map[string]any{"type": "flattened"},
}}

func keywords(names ...string) map[string]any {
	m := make(map[string]any, len(names))
	for _, n := range names {
		m[n] = map[string]any{"type": "keyword"}
	}
	return m
}
