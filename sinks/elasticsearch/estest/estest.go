// Package estest is an Elasticsearch API server for tests: the parts of the
// API the sink uses (product header, _bulk with per-item results, _count,
// _search by ids, _refresh, index templates), with fault injection.
//
// It follows Elasticsearch's rules where the sink depends on them: create
// on an existing _id answers 409, a document that is not a JSON object
// answers 400 mapper_parsing_exception, a data stream (an index named
// logs-*-*) accepts only create with an @timestamp, a _bulk request
// answers only the fields its filter_path keeps (filter.go), and parses
// its documents before it takes the server's lock, so that concurrent
// requests are served in parallel.
package estest

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running test server.
type Server struct {
	*httptest.Server

	mu   sync.Mutex
	docs map[string]map[string]json.RawMessage
	// order lists each index's documents in the order they were created.
	order map[string][]created
	// requestFaults are statuses to answer whole _bulk requests with,
	// in order, before serving normally.
	requestFaults []int
	requestFault  func() int
	requestReply  func(body []byte) (int, string)
	retryAfter    string
	itemFault     func(index, id string, doc json.RawMessage) (int, string, string)
	bulkRequests  int
	templates     map[string]json.RawMessage
	lastAuth      string
	beforeBulk    func() (after func())
	// scrolls hold the hits of open scrolls not returned yet, by id.
	scrolls map[string][]hit
	nextID  int
}

// New starts a server on 127.0.0.1.
func New() *Server {
	s := &Server{docs: map[string]map[string]json.RawMessage{}, order: map[string][]created{}, templates: map[string]json.RawMessage{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// NewTLS starts a server that speaks HTTPS with a self-signed
// certificate; Certificate() returns it.
func NewTLS() *Server {
	s := &Server{docs: map[string]map[string]json.RawMessage{}, order: map[string][]created{}, templates: map[string]json.RawMessage{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the tests make fail
	s.Server.StartTLS()
	return s
}

// FailRequests makes the next len(statuses) _bulk requests answer with
// those statuses.
func (s *Server) FailRequests(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestFaults = append(s.requestFaults, statuses...)
}

// RetryAfter makes the _bulk requests failed by FailRequests or
// FailRequestsFunc answer with a Retry-After header of v; "" leaves it
// out.
func (s *Server) RetryAfter(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = v
}

// FailRequestsFunc makes f decide the status of each _bulk request: 0
// serves it normally.
func (s *Server) FailRequestsFunc(f func() int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestFault = f
}

// FailRequestsWith makes f answer each _bulk request, given its body,
// with a status and a response body, as a proxy or a cluster that quotes
// the request might: status 0 serves it normally.
func (s *Server) FailRequestsWith(f func(body []byte) (status int, response string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requestReply = f
}

// BeforeBulk makes the server call f for each _bulk request before it
// serves it, outside its lock, so that f may hold requests to see how
// many arrive at once; the function f returns is called once the request
// is served.
func (s *Server) BeforeBulk(f func() (after func())) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeBulk = f
}

// FailItems makes f decide each item's status: 0 serves it normally.
func (s *Server) FailItems(f func(index, id string) int) {
	s.FailItemsWith(func(index, id string, _ json.RawMessage) (int, string, string) {
		return f(index, id), "injected", "injected fault"
	})
}

// FailItemsWith makes f decide each item's status, error type and reason,
// given its document, as Elasticsearch's mapping errors quote a field's
// value: status 0 serves it normally.
func (s *Server) FailItemsWith(f func(index, id string, doc json.RawMessage) (status int, typ, reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.itemFault = f
}

// BulkRequests returns how many _bulk requests arrived.
func (s *Server) BulkRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bulkRequests
}

// Docs returns the documents of an index by _id.
func (s *Server) Docs(index string) map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]json.RawMessage{}
	for id, d := range s.docs[index] {
		out[id] = d
	}
	return out
}

// DocsSince returns the documents created in index after the first from,
// in creation order, when each was created, and the position to ask from
// next time: a cheap way to follow an index.
func (s *Server) DocsSince(index string, from int) (docs []json.RawMessage, created []time.Time, next int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	order := s.order[index]
	for _, c := range order[min(from, len(order)):] {
		docs = append(docs, s.docs[index][c.id])
		created = append(created, c.at)
	}
	return docs, created, len(order)
}

// created is a document's id and when it was created.
type created struct {
	id string
	at time.Time
}

// LastAuthorization returns the Authorization header of the last request.
func (s *Server) LastAuthorization() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAuth
}

// Template returns an installed index template.
func (s *Server) Template(name string) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.templates[name]
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	s.mu.Lock()
	s.lastAuth = r.Header.Get("Authorization")
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/":
		io.WriteString(w, `{"name":"estest","cluster_name":"estest","version":{"number":"8.19.0","build_flavor":"default"},"tagline":"You Know, for Search"}`)
	case parts[len(parts)-1] == "_bulk":
		def := ""
		if len(parts) == 2 {
			def = parts[0]
		}
		s.mu.Lock()
		before := s.beforeBulk
		s.mu.Unlock()
		if before != nil {
			defer before()()
		}
		f, err := parseFilter(r.URL.Query().Get("filter_path"))
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		s.bulk(w, body, def, f)
	case len(parts) == 2 && parts[0] == "_index_template" && r.Method == http.MethodPut:
		s.mu.Lock()
		s.templates[parts[1]] = body
		s.mu.Unlock()
		io.WriteString(w, `{"acknowledged":true}`)
	case len(parts) == 2 && parts[1] == "_refresh":
		io.WriteString(w, `{"_shards":{"total":1,"successful":1,"failed":0}}`)
	case len(parts) == 2 && parts[1] == "_count":
		s.mu.Lock()
		n := len(s.docs[parts[0]])
		s.mu.Unlock()
		fmt.Fprintf(w, `{"count":%d}`, n)
	case len(parts) >= 2 && parts[0] == "_search" && parts[1] == "scroll":
		id := r.URL.Query().Get("scroll_id")
		if len(parts) == 3 {
			id = parts[2]
		}
		s.scroll(w, r.Method, id, body)
	case len(parts) == 2 && parts[1] == "_search":
		s.search(w, parts[0], body, r.URL.Query().Get("scroll") != "")
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"not_implemented","reason":"estest does not serve %s %s"},"status":404}`, r.Method, r.URL.Path)
	}
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	} else if r.ContentLength > 0 {
		// Read into a buffer of the body's size: io.ReadAll would grow
		// one by doubling, a large cost for large requests.
		b := make([]byte, r.ContentLength)
		_, err := io.ReadFull(rd, b)
		return b, err
	}
	return io.ReadAll(rd)
}

type result struct {
	Index  string     `json:"_index"`
	ID     string     `json:"_id"`
	Status int        `json:"status"`
	Error  *errorBody `json:"error,omitempty"`
}

type errorBody struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// op is one action of a _bulk request and its document.
type op struct {
	name, index, id string
	doc             json.RawMessage
	// fault is the injected answer to the item, if any (FailItems).
	fault *result
	// object is whether doc is a JSON object, checked outside the
	// server's lock, as Elasticsearch parses documents in parallel, and
	// only for the items without a fault, as a rejected item's document
	// is not parsed.
	object bool
}

// parseBulk reads the actions and documents of a _bulk body; the error
// is the answer to a malformed one. The documents are parts of body.
func parseBulk(body []byte, defIndex string) ([]op, string) {
	var ops []op
	next := func() []byte {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		return bytes.TrimSuffix(line, []byte("\r"))
	}
	for len(body) > 0 {
		line := next()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, "malformed action line"
		}
		if len(body) == 0 {
			return nil, "action without document"
		}
		doc := json.RawMessage(next())
		for name, a := range action {
			ops = append(ops, op{name: name, index: cmp.Or(a.Index, defIndex), id: a.ID, doc: doc})
		}
	}
	return ops, ""
}

func (s *Server) bulk(w http.ResponseWriter, body []byte, defIndex string, f filter) {
	if s.bulkFault(w, body) {
		return
	}
	ops, bad := parseBulk(body, defIndex)
	if bad != "" {
		badRequest(w, bad)
		return
	}
	// The faults are decided in the order the items arrive, then the
	// other documents parsed without the lock, then applied.
	s.mu.Lock()
	for i := range ops {
		ops[i].fault = s.fault(ops[i])
	}
	s.mu.Unlock()
	for i := range ops {
		if ops[i].fault == nil {
			d := bytes.TrimSpace(ops[i].doc)
			ops[i].object = len(d) > 0 && d[0] == '{' && json.Valid(d)
		}
	}
	results := make([]result, len(ops))
	anyErr := false
	s.mu.Lock()
	for i, o := range ops {
		results[i] = s.item(o)
		anyErr = anyErr || results[i].Error != nil
	}
	s.mu.Unlock()
	w.Write(bulkAnswer(f, anyErr, ops, results))
}

// bulkAnswer is the answer to a _bulk request, with the fields f keeps.
func bulkAnswer(f filter, anyErr bool, ops []op, results []result) []byte {
	var buf bytes.Buffer
	buf.Grow(64 + 128*len(ops))
	k := &kept{f: f}
	root := &object{f: k, buf: &buf}
	root.num("took", 1)
	root.field("errors", strconv.AppendBool(nil, anyErr))
	items := 0
	elem := func() {
		if items == 0 {
			root.key("items")
			buf.WriteByte('[')
		} else {
			buf.WriteByte(',')
		}
		items++
	}
	for i, o := range ops {
		r := results[i]
		item := &object{f: k, at: []string{"items"}, buf: &buf, elem: elem}
		res := item.child(o.name)
		res.str("_index", r.Index)
		res.str("_id", r.ID)
		res.num("status", r.Status)
		if r.Error != nil {
			e := res.child("error")
			e.str("type", r.Error.Type)
			e.str("reason", r.Error.Reason)
			e.close()
		}
		res.close()
		item.close()
	}
	if items > 0 {
		buf.WriteByte(']')
	}
	if !root.close() {
		buf.WriteString("{}")
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// badRequest answers 400 illegal_argument_exception with reason.
func badRequest(w http.ResponseWriter, reason string) {
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]any{"status": 400,
		"error": map[string]any{"type": "illegal_argument_exception", "reason": reason}})
}

// bulkFault answers a _bulk request with the fault set for it, if any,
// and reports whether it did.
func (s *Server) bulkFault(w http.ResponseWriter, body []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bulkRequests++
	st := 0
	if s.requestFault != nil {
		st = s.requestFault()
	}
	if st == 0 && len(s.requestFaults) > 0 {
		st = s.requestFaults[0]
		s.requestFaults = s.requestFaults[1:]
	}
	if st != 0 {
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(st)
		fmt.Fprintf(w, `{"error":{"type":"injected","reason":"injected fault"},"status":%d}`, st)
		return true
	}
	if s.requestReply != nil {
		if st, reply := s.requestReply(body); st != 0 {
			w.WriteHeader(st)
			io.WriteString(w, reply)
			return true
		}
	}
	return false
}

// fault returns the answer FailItems decides for o, or nil; the caller
// holds s.mu.
func (s *Server) fault(o op) *result {
	if s.itemFault == nil {
		return nil
	}
	st, typ, reason := s.itemFault(o.index, o.id, o.doc)
	if st == 0 {
		return nil
	}
	return &result{Index: o.index, ID: o.id, Status: st, Error: &errorBody{Type: typ, Reason: reason}}
}

// item applies o to the documents; the caller holds s.mu.
func (s *Server) item(o op) result {
	if o.fault != nil {
		return *o.fault
	}
	index, id, doc := o.index, o.id, o.doc
	res := result{Index: index, ID: id}
	fail := func(status int, typ, reason string) result {
		res.Status, res.Error = status, &errorBody{Type: typ, Reason: reason}
		return res
	}
	if !o.object {
		return fail(400, "mapper_parsing_exception", "failed to parse: not a JSON object")
	}
	if strings.HasPrefix(index, "logs-") && strings.Count(index, "-") >= 2 {
		if o.name != "create" {
			return fail(400, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams")
		}
		if !bytes.Contains(doc, []byte(`"@timestamp":`)) {
			return fail(400, "document_parsing_exception", "data stream timestamp field [@timestamp] is missing")
		}
	}
	if s.docs[index] == nil {
		s.docs[index] = map[string]json.RawMessage{}
	}
	if _, exists := s.docs[index][id]; exists && o.name == "create" {
		return fail(409, "version_conflict_engine_exception", "["+id+"]: version conflict, document already exists")
	}
	if _, exists := s.docs[index][id]; !exists {
		s.order[index] = append(s.order[index], created{id, time.Now()})
	}
	// A copy: doc is part of the request's body, which holds the
	// documents that were not stored as well.
	s.docs[index][id] = bytes.Clone(doc)
	res.Status = 201
	return res
}

// search serves {"query":{"ids":{"values":[...]}}}.
type hit struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

// search answers a query by ids, or by match or term clauses on one field
// each, any of which matches ("bool.should"), over an index name or a
// pattern with * (several comma-separated). With scroll set, it answers
// the first size hits and a _scroll_id for the rest.
func (s *Server) search(w http.ResponseWriter, index string, body []byte, scroll bool) {
	var q struct {
		Size  int `json:"size"`
		Query struct {
			IDs struct {
				Values []string `json:"values"`
			} `json:"ids"`
			Bool struct {
				Should []map[string]map[string]string `json:"should"`
			} `json:"bool"`
		} `json:"query"`
	}
	json.Unmarshal(body, &q)
	s.mu.Lock()
	defer s.mu.Unlock()
	var hits []hit
	for _, ix := range s.indices(index) {
		for _, id := range q.Query.IDs.Values {
			if d, ok := s.docs[ix][id]; ok {
				hits = append(hits, hit{Index: ix, ID: id, Source: d})
			}
		}
		if len(q.Query.Bool.Should) == 0 {
			continue
		}
		for _, c := range s.order[ix] {
			if d := s.docs[ix][c.id]; matchesAny(d, q.Query.Bool.Should) {
				hits = append(hits, hit{Index: ix, ID: c.id, Source: d})
			}
		}
	}
	if len(q.Query.IDs.Values) > 0 {
		sort.Slice(hits, func(i, j int) bool { return hits[i].ID < hits[j].ID })
	}
	if !scroll {
		json.NewEncoder(w).Encode(map[string]any{"hits": map[string]any{"total": map[string]any{"value": len(hits)}, "hits": hits}})
		return
	}
	if s.scrolls == nil {
		s.scrolls = map[string][]hit{}
	}
	s.nextID++
	id := fmt.Sprintf("scroll-%d", s.nextID)
	size := cmp.Or(q.Size, 10)
	s.scrolls[id] = hits
	s.page(w, id, size, len(hits))
}

// page answers the next size hits of scroll id.
func (s *Server) page(w http.ResponseWriter, id string, size, total int) {
	hits := s.scrolls[id]
	n := min(size, len(hits))
	s.scrolls[id] = hits[n:]
	json.NewEncoder(w).Encode(map[string]any{"_scroll_id": id, "_size": size,
		"hits": map[string]any{"total": map[string]any{"value": total}, "hits": hits[:n]}})
}

// scroll continues (GET, POST) or clears (DELETE) a scroll, named in the
// path, the query or the body.
func (s *Server) scroll(w http.ResponseWriter, method, id string, body []byte) {
	var q struct {
		ScrollID string `json:"scroll_id"`
	}
	json.Unmarshal(body, &q)
	q.ScrollID = cmp.Or(id, q.ScrollID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.scrolls[q.ScrollID]; !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"type":"search_context_missing_exception","reason":"no such scroll"},"status":404}`)
		return
	}
	if method == http.MethodDelete {
		delete(s.scrolls, q.ScrollID)
		io.WriteString(w, `{"succeeded":true,"num_freed":1}`)
		return
	}
	s.page(w, q.ScrollID, 1000, len(s.scrolls[q.ScrollID]))
}

// indices returns the index names pattern names, * matching any run of
// characters.
func (s *Server) indices(pattern string) []string {
	var out []string
	for _, p := range strings.Split(pattern, ",") {
		for ix := range s.docs {
			if ok, _ := path.Match(p, ix); ok && !slices.Contains(out, ix) {
				out = append(out, ix)
			}
		}
	}
	sort.Strings(out)
	return out
}

// matchesAny reports whether doc has, for one of the clauses ({"match" or
// "term": {field: value}}), the value at the field's dotted path.
func matchesAny(doc json.RawMessage, clauses []map[string]map[string]string) bool {
	var v map[string]any
	if json.Unmarshal(doc, &v) != nil {
		return false
	}
	for _, c := range clauses {
		for _, fv := range c {
			for field, want := range fv {
				if got, ok := lookup(v, field).(string); ok && got == want {
					return true
				}
			}
		}
	}
	return false
}

// lookup returns the value at a dotted path, taking keys that hold dots
// (flattened objects) as they come.
func lookup(v map[string]any, field string) any {
	if x, ok := v[field]; ok {
		return x
	}
	for i := range len(field) {
		if field[i] != '.' {
			continue
		}
		if sub, ok := v[field[:i]].(map[string]any); ok {
			if x := lookup(sub, field[i+1:]); x != nil {
				return x
			}
		}
	}
	return nil
}
