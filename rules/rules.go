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
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

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
	if !r.groups.empty() {
		if groups, _ := d.leaves(groupsPath, nil, groupsNeedle); !r.groups.matchAny(groups) {
			return false
		}
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

// holds reports whether one of f's paths satisfies it. A value a JSON
// patch moves or copies from the object is there but unknown: it may be
// any value, so it is taken to match.
func (f *field) holds(d *doc) bool {
	for i, p := range f.paths {
		vals, opaque := d.leaves(p, f.prefixes[i], f.needles[i])
		if f.exists != nil {
			if (len(vals) > 0 || opaque) == *f.exists {
				return true
			}
			continue
		}
		if opaque || (len(vals) > 0 && f.values.matchAny(vals)) {
			return true
		}
	}
	return false
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
