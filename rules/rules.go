// Package rules matches Kubernetes audit events against detection rules:
// a built-in set for the requests an attacker makes (secret reads, RBAC
// escalation, exec into pods, privileged pods, anonymous access, token
// minting, impersonation, admission webhook changes, CSR approvals, bursts
// of 403s) and rules written by users in the configuration.
//
// Matching is cheap for the events that match nothing: a rule first looks
// at the fields the agent already extracted without decoding (verb,
// resource, user, ...), and only a candidate that passes them is decoded
// to check groups, the authorization decision or requestObject and
// responseObject fields. Rules with field conditions on request or
// response bodies only fire when the audit policy logs those bodies
// (level Request or RequestResponse); such rules report NeedsBody.
package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/units"
)

// Severities, from the most to the least urgent.
var Severities = []string{"critical", "high", "medium", "low", "info"}

// Spec is a rule as written in the configuration. Every matcher is a list
// of globs ('*' any run of characters, '?' one character, a backslash
// escapes the next one, so `\*` is a literal asterisk); an entry
// starting with '!' excludes. An empty list matches anything; every
// non-empty list must match.
type Spec struct {
	ID          string `yaml:"id"`
	Severity    string `yaml:"severity"`
	Description string `yaml:"description"`

	Verbs        []string `yaml:"verbs"`
	Resources    []string `yaml:"resources"`
	Subresources []string `yaml:"subresources"`
	APIGroups    []string `yaml:"apiGroups"`
	Namespaces   []string `yaml:"namespaces"`
	Names        []string `yaml:"names"`
	Users        []string `yaml:"users"`
	// Groups match the user's groups: an exclusion matching any group
	// excludes, a plain pattern must match one group.
	Groups      []string `yaml:"groups"`
	Stages      []string `yaml:"stages"`
	RequestURIs []string `yaml:"requestURIs"`
	// Codes match responseStatus.code as text, e.g. "403" or "5??".
	Codes []string `yaml:"codes"`
	// Decision is allow or forbid: kube-apiserver's
	// authorization.k8s.io/decision annotation, or, where it is missing,
	// the response code.
	Decision string `yaml:"decision"`
	// Fields must all hold; of AnyFields, at least one.
	Fields    []FieldSpec `yaml:"fields"`
	AnyFields []FieldSpec `yaml:"anyFields"`
	// Rate makes the rule fire only when one user's matching events reach
	// Count within Window.
	Rate *RateSpec `yaml:"rate"`
}

// FieldSpec is a condition on a dotted path into the event, such as
// requestObject.spec.hostNetwork or user.extra. Arrays on the way are
// searched element by element. With Values, one of the values found must
// match one of the globs (booleans and numbers compare as their JSON
// text); with Exists, the path must (or must not) lead to a non-null
// value.
type FieldSpec struct {
	Path   string   `yaml:"path"`
	Paths  []string `yaml:"paths"`
	Values []string `yaml:"values"`
	Exists *bool    `yaml:"exists"`
}

// RateSpec is a threshold per user.
type RateSpec struct {
	Count  int            `yaml:"count"`
	Window units.Duration `yaml:"window"`
}

// Rule is a compiled Spec.
type Rule struct {
	ID          string
	Severity    string
	Description string
	// NeedsBody is set when the rule looks into requestObject or
	// responseObject, so it fires only if the audit policy logs them.
	NeedsBody bool
	// Rate is set for threshold rules; Set.Match never returns them.
	Rate *Rate

	verbs, resources, subresources, apiGroups, namespaces, names, users patterns
	groups, stages, uris, codes                                         patterns
	decision                                                            string
	fields, anyFields                                                   []field
}

// Rate is a compiled RateSpec.
type Rate struct {
	Count  int
	Window time.Duration
}

type field struct {
	paths [][]string
	// needles[i] is the quoted last key of paths[i]: a line without it
	// cannot have a value there, which saves decoding it.
	needles [][]byte
	// prefixes[i], if not nil, is the start of needles[i] that other
	// needles of the rule share ("host of "hostPID" and "hostPath"): one
	// search lists where it occurs, and each of those needles is then
	// looked for only there.
	prefixes [][]byte
	values   patterns
	exists   *bool
}

// Compile checks s and returns the rule. Errors name the offending key.
func Compile(s Spec) (*Rule, error) {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.ID == "" {
		add("id is required")
	} else if strings.ContainsAny(s.ID, " ,\"") {
		add("id %q must not contain spaces, commas or quotes", s.ID)
	}
	if !slices.Contains(Severities, s.Severity) {
		add("severity must be one of %s, got %q", strings.Join(Severities, ", "), s.Severity)
	}
	r := &Rule{ID: s.ID, Severity: s.Severity, Description: s.Description, decision: s.Decision}
	for _, m := range []struct {
		key  string
		list []string
		dst  *patterns
	}{
		{"verbs", s.Verbs, &r.verbs}, {"resources", s.Resources, &r.resources},
		{"subresources", s.Subresources, &r.subresources}, {"apiGroups", s.APIGroups, &r.apiGroups},
		{"namespaces", s.Namespaces, &r.namespaces}, {"names", s.Names, &r.names},
		{"users", s.Users, &r.users}, {"groups", s.Groups, &r.groups}, {"stages", s.Stages, &r.stages},
		{"requestURIs", s.RequestURIs, &r.uris}, {"codes", s.Codes, &r.codes},
	} {
		ps, err := compilePatterns(m.list)
		if err != nil {
			add("%s: %v", m.key, err)
		}
		*m.dst = ps
	}
	for _, res := range s.Resources {
		if strings.Contains(res, "/") {
			add("resources: %q: put the subresource under subresources", res)
		}
	}
	if s.Decision != "" && s.Decision != "allow" && s.Decision != "forbid" {
		add("decision must be allow or forbid, got %q", s.Decision)
	}
	for key, list := range map[string][]FieldSpec{"fields": s.Fields, "anyFields": s.AnyFields} {
		for i, fs := range list {
			f, body, err := compileField(fs)
			if err != nil {
				add("%s[%d]: %v", key, i, err)
				continue
			}
			r.NeedsBody = r.NeedsBody || body
			if key == "fields" {
				r.fields = append(r.fields, f)
			} else {
				r.anyFields = append(r.anyFields, f)
			}
		}
	}
	r.sharePrefixes()
	if s.Rate != nil {
		if s.Rate.Count < 2 || s.Rate.Window <= 0 {
			add("rate: count must be at least 2 and window positive")
		}
		r.Rate = &Rate{Count: s.Rate.Count, Window: time.Duration(s.Rate.Window)}
	}
	if r.matchesEverything() {
		add("matches every event; give it a matcher")
	}
	if err := errors.Join(errs...); err != nil {
		name := s.ID
		if name == "" {
			name = "unnamed"
		}
		return nil, fmt.Errorf("rule %s: %w", name, err)
	}
	return r, nil
}

func compileField(fs FieldSpec) (field, bool, error) {
	var f field
	paths := fs.Paths
	if fs.Path != "" {
		paths = append([]string{fs.Path}, paths...)
	}
	if len(paths) == 0 {
		return f, false, errors.New("path or paths is required")
	}
	if (len(fs.Values) == 0) == (fs.Exists == nil) {
		return f, false, errors.New("give exactly one of values and exists")
	}
	body := false
	for _, p := range paths {
		parts := strings.Split(p, ".")
		for _, part := range parts {
			if part == "" {
				return f, false, fmt.Errorf("bad path %q", p)
			}
		}
		body = body || parts[0] == "requestObject" || parts[0] == "responseObject"
		f.paths = append(f.paths, parts)
		f.needles = append(f.needles, []byte(`"`+parts[len(parts)-1]+`"`))
	}
	vs, err := compilePatterns(fs.Values)
	if err != nil {
		return f, false, fmt.Errorf("values: %w", err)
	}
	f.values, f.exists = vs, fs.Exists
	return f, body, nil
}

// minPrefix is the length of the needle prefixes searched for: the quote
// and four bytes of the key.
const minPrefix = 5

// sharePrefixes sets the prefixes of the needles of r's fields: the first
// minPrefix bytes of a needle that another needle of the rule starts with
// too.
func (r *Rule) sharePrefixes() {
	var fields []*field
	for i := range r.fields {
		fields = append(fields, &r.fields[i])
	}
	for i := range r.anyFields {
		fields = append(fields, &r.anyFields[i])
	}
	for _, f := range fields {
		f.prefixes = make([][]byte, len(f.needles))
		for i, n := range f.needles {
			if len(n) <= minPrefix {
				continue
			}
			for _, g := range fields {
				for _, m := range g.needles {
					if len(m) > minPrefix && !bytes.Equal(n, m) && bytes.Equal(n[:minPrefix], m[:minPrefix]) {
						f.prefixes[i] = n[:minPrefix:minPrefix]
					}
				}
			}
		}
	}
}

func (r *Rule) matchesEverything() bool {
	for _, ps := range []*patterns{&r.verbs, &r.resources, &r.subresources, &r.apiGroups, &r.namespaces,
		&r.names, &r.users, &r.groups, &r.stages, &r.uris, &r.codes} {
		if !ps.empty() {
			return false
		}
	}
	return r.decision == "" && len(r.fields) == 0 && len(r.anyFields) == 0
}

// Matches reports whether ev, parsed from line, matches the rule's
// conditions (for a rate rule: one event that counts toward the rate).
func (r *Rule) Matches(line []byte, ev *auditjson.Event) bool {
	d := doc{line: line, ev: ev}
	return r.matches(ev, &d)
}

func (r *Rule) matches(ev *auditjson.Event, d *doc) bool {
	if !r.verbs.match(ev.Verb) || !r.resources.match(ev.Resource) || !r.subresources.match(ev.Subresource) ||
		!r.apiGroups.match(ev.APIGroup) || !r.namespaces.match(ev.Namespace) || !r.names.match(ev.Name) ||
		!r.users.match(ev.Username) || !r.stages.match(ev.Stage) || !r.uris.match(ev.RequestURI) {
		return false
	}
	if !r.codes.empty() {
		var buf [20]byte
		code := buf[:0]
		if ev.Code != 0 {
			code = strconv.AppendInt(code, int64(ev.Code), 10)
		}
		if !r.codes.match(code) {
			return false
		}
	}
	if !r.groups.empty() && !r.groups.matchAny(d.leaves(groupsPath, nil, groupsNeedle)) {
		return false
	}
	if r.decision != "" && decision(ev) != r.decision {
		return false
	}
	for i := range r.fields {
		if !r.fields[i].holds(d) {
			return false
		}
	}
	if len(r.anyFields) == 0 {
		return true
	}
	for i := range r.anyFields {
		if r.anyFields[i].holds(d) {
			return true
		}
	}
	return false
}

func (f *field) holds(d *doc) bool {
	for i, p := range f.paths {
		vals := d.leaves(p, f.prefixes[i], f.needles[i])
		if f.exists != nil {
			if (len(vals) > 0) == *f.exists {
				return true
			}
			continue
		}
		if len(vals) > 0 && f.values.matchAny(vals) {
			return true
		}
	}
	return false
}

// doc decodes what a condition needs beyond the extracted fields, once:
// the request or response body alone for paths into them, else the whole
// event.
type doc struct {
	line []byte
	ev   *auditjson.Event
	// found caches needle searches: many paths end in the same key.
	found  [8]search
	nfound int
	// spots caches where needle prefixes occur.
	spots  [4]spots
	nspots int
	// parts are the decoded whole event, requestObject, responseObject
	// and impersonatedUser.
	parts   [4]any
	decoded [4]bool
}

const (
	whole = iota
	request
	response
	impersonated
)

// scope returns which part path starts in, the raw bytes of that part and
// the path inside it.
func (d *doc) scope(path []string) (int, []byte, []string) {
	switch path[0] {
	case "requestObject":
		return request, d.ev.RequestObject, path[1:]
	case "responseObject":
		return response, d.ev.ResponseObject, path[1:]
	case "impersonatedUser":
		return impersonated, d.ev.ImpersonatedUser, path[1:]
	}
	return whole, d.line, path
}

func (d *doc) part(i int, raw []byte) any {
	if !d.decoded[i] {
		d.decoded[i] = true
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		dec.Decode(&v) // what does not decode has no fields
		d.parts[i] = v
	}
	return d.parts[i]
}

// leaves returns the non-null values at path as text, descending into
// arrays along the way and at the end. needle, the quoted last key, must
// occur in the raw part for the path to exist, which spares decoding
// nearly every event; so must prefix, when not nil, a start of needle
// that other paths share.
func (d *doc) leaves(path []string, prefix, needle []byte) [][]byte {
	i, raw, rest := d.scope(path)
	if len(raw) == 0 || (len(rest) > 0 && !d.has(i, raw, prefix, needle)) {
		return nil
	}
	var out [][]byte
	var walk func(v any, rest []string)
	walk = func(v any, rest []string) {
		switch t := v.(type) {
		case nil:
		case []any:
			for _, e := range t {
				walk(e, rest)
			}
		case map[string]any:
			if len(rest) == 0 {
				out = append(out, []byte("{}"))
				return
			}
			walk(t[rest[0]], rest[1:])
		default:
			if len(rest) == 0 {
				out = append(out, []byte(fmt.Sprint(t)))
			}
		}
	}
	walk(d.part(i, raw), rest)
	return out
}

// has reports whether needle occurs in part i. For the whole event the
// bodies are skipped: a path outside them cannot be inside them, and they
// are most of the bytes. prefix, if not nil, starts needle and other
// needles: where it occurs is searched once for all of them.
func (d *doc) has(i int, raw, prefix, needle []byte) bool {
	if prefix != nil {
		if sp := d.prefixSpots(i, raw, prefix); sp != nil && sp.n <= len(sp.at) {
			for _, at := range sp.at[:sp.n] {
				if bytes.HasPrefix(raw[at.off:at.end], needle) {
					return true
				}
			}
			return false
		}
	}
	for _, f := range d.found[:d.nfound] {
		if f.part == i && bytes.Equal(f.needle, needle) {
			return f.ok
		}
	}
	ok := d.search(i, raw, needle)
	if d.nfound < len(d.found) {
		d.found[d.nfound] = search{part: i, needle: needle, ok: ok}
		d.nfound++
	}
	return ok
}

type search struct {
	part   int
	needle []byte
	ok     bool
}

// spots lists where a needle prefix occurs in a part: at[:n], each with
// the end of the span searched, or n > len(at) when it occurs more often.
type spots struct {
	part   int
	prefix []byte
	n      int
	at     [16]struct{ off, end int }
}

// prefixSpots returns where prefix occurs in part i, or nil when the doc
// keeps no more lists.
func (d *doc) prefixSpots(i int, raw, prefix []byte) *spots {
	for k := range d.nspots {
		if sp := &d.spots[k]; sp.part == i && bytes.Equal(sp.prefix, prefix) {
			return sp
		}
	}
	if d.nspots == len(d.spots) {
		return nil
	}
	sp := &d.spots[d.nspots]
	d.nspots++
	sp.part, sp.prefix, sp.n = i, prefix, 0
	spans, n := d.spans(i, raw)
	for _, s := range spans[:n] {
		for pos := s[0]; pos < s[1]; {
			k := indexQuoted(raw[pos:s[1]], prefix)
			if k < 0 {
				break
			}
			if sp.n == len(sp.at) {
				sp.n++
				return sp
			}
			sp.at[sp.n].off, sp.at[sp.n].end = pos+k, s[1]
			sp.n++
			pos += k + 1
		}
	}
	return sp
}

func (d *doc) search(i int, raw, needle []byte) bool {
	spans, n := d.spans(i, raw)
	for _, s := range spans[:n] {
		if indexQuoted(raw[s[0]:s[1]], needle) >= 0 {
			return true
		}
	}
	return false
}

// indexQuoted returns the index of the first needle in s, or -1. needle
// starts with a quote, the most common byte of JSON, which defeats the
// first-byte scan of bytes.Index: it looks for the rest instead and checks
// the quote before.
func indexQuoted(s, needle []byte) int {
	if len(needle) < 2 || needle[0] != '"' {
		return bytes.Index(s, needle)
	}
	for pos := 1; pos < len(s); {
		k := bytes.Index(s[pos:], needle[1:])
		if k < 0 {
			return -1
		}
		if s[pos+k-1] == '"' {
			return pos + k - 1
		}
		pos += k + 1
	}
	return -1
}

// spans returns the ranges of raw, part i, that searches cover: all of
// it, or for the whole event all but the request and response bodies.
func (d *doc) spans(i int, raw []byte) (spans [3][2]int, n int) {
	if i != whole {
		spans[0] = [2]int{0, len(raw)}
		return spans, 1
	}
	start := 0
	for _, body := range [][]byte{d.ev.RequestObject, d.ev.ResponseObject} {
		off, ok := offsetIn(raw, body)
		if !ok || off < start {
			continue
		}
		spans[n] = [2]int{start, off}
		n++
		start = off + len(body)
	}
	spans[n] = [2]int{start, len(raw)}
	return spans, n + 1
}

// offsetIn returns where sub, a sub-slice of b, starts in b.
func offsetIn(b, sub []byte) (int, bool) {
	if len(sub) == 0 || len(b) == 0 {
		return 0, false
	}
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(sub))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	if off < 0 || off+len(sub) > len(b) {
		return 0, false
	}
	return off, true
}

// decision is the authorizer's verdict: the annotation kube-apiserver
// adds once authorization ran, or else what the response code implies.
func decision(ev *auditjson.Event) string {
	switch {
	case len(ev.Decision) > 0:
		return string(ev.Decision)
	case ev.Code == 403:
		return "forbid"
	case ev.Code > 0 && ev.Code < 400:
		return "allow"
	}
	return ""
}

var (
	groupsPath   = []string{"user", "groups"}
	groupsNeedle = []byte(`"groups"`)
)

// Set is a list of rules evaluated together.
type Set struct {
	rules []*Rule
	// byResource holds, for each resource some rules name exactly, the
	// rules an event on that resource may match, in order; other holds
	// them for every other resource. Most rules name their resources, so
	// an event is tried against a few rules instead of all.
	byResource map[string][]*Rule
	other      []*Rule
}

// index sets byResource and other.
func (s *Set) index() {
	s.byResource = map[string][]*Rule{}
	listed := make([]bool, len(s.rules))
	for k, r := range s.rules {
		if listed[k] = r.resources.literal(); listed[k] {
			for _, g := range r.resources.pos {
				s.byResource[string(g.p)] = nil
			}
		}
	}
	for k, r := range s.rules {
		if !listed[k] {
			s.other = append(s.other, r)
		}
		for res, list := range s.byResource {
			if !listed[k] || r.resources.match([]byte(res)) {
				s.byResource[res] = append(list, r)
			}
		}
	}
}

// NewSet compiles the built-in rules (unless builtin is false), minus the
// ids in disable, and the user's specs. Errors name the rule.
func NewSet(builtin bool, disable []string, specs []Spec) (*Set, error) {
	var errs []error
	s := &Set{}
	ids := map[string]bool{}
	off := map[string]bool{}
	for _, id := range disable {
		off[id] = true
	}
	if builtin {
		for _, b := range Builtin() {
			ids[b.ID] = true
			if !off[b.ID] {
				s.rules = append(s.rules, b)
			}
			delete(off, b.ID)
		}
	}
	for id := range off {
		errs = append(errs, fmt.Errorf("disable: %q is not a built-in rule", id))
	}
	for i, sp := range specs {
		r, err := Compile(sp)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		if ids[r.ID] {
			errs = append(errs, fmt.Errorf("rules[%d]: id %q is already used", i, r.ID))
			continue
		}
		ids[r.ID] = true
		s.rules = append(s.rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.index()
	return s, nil
}

// Rules returns the set's rules in evaluation order.
func (s *Set) Rules() []*Rule { return s.rules }

// Match appends to dst the rules ev matches. Rate rules are included only
// if withRate is set: whether they fire depends on the events before.
func (s *Set) Match(line []byte, ev *auditjson.Event, withRate bool, dst []*Rule) []*Rule {
	d := doc{line: line, ev: ev}
	candidates, ok := s.byResource[string(ev.Resource)]
	if !ok {
		candidates = s.other
	}
	for _, r := range candidates {
		if r.Rate != nil && !withRate {
			continue
		}
		if r.matches(ev, &d) {
			dst = append(dst, r)
		}
	}
	return dst
}

// FieldPaths returns the paths, split at the dots, of every field the
// rule looks at, such as requestObject.roleRef.name. The caller must not
// modify them.
func (r *Rule) FieldPaths() [][]string {
	var out [][]string
	for _, fs := range [][]field{r.fields, r.anyFields} {
		for i := range fs {
			out = append(out, fs[i].paths...)
		}
	}
	return out
}
