package estest

// Response filtering (the filter_path query parameter), as Elasticsearch
// does it for every API; served here for _bulk.

import (
	"fmt"
	"path"
	"strings"
)

// filter is a filter_path: the fields of an answer to keep, each a
// dotted path whose parts may hold * (any run of characters within a
// part) or be ** (any number of parts). Arrays are transparent: a path
// goes through them to the fields of their elements. A nil filter keeps
// everything.
type filter [][]string

// parseFilter parses the comma-separated paths of a filter_path.
// Exclusions (-path) are refused: the server does not serve them, and a
// test relying on them should fail, not pass on an answer Elasticsearch
// would not give.
func parseFilter(q string) (filter, error) {
	if q == "" {
		return nil, nil
	}
	var f filter
	for _, p := range strings.Split(q, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if strings.HasPrefix(p, "-") {
			return nil, fmt.Errorf("filter_path exclusion %q is not served by estest", p)
		}
		f = append(f, strings.Split(p, "."))
	}
	return f, nil
}

// apply returns v, a value decoded from JSON (map[string]any, []any or a
// scalar), with only the fields f keeps, as Elasticsearch answers: an
// object or array left empty is dropped, and an answer with nothing kept
// is {}.
func (f filter) apply(v any) any {
	if f == nil {
		return v
	}
	out, ok := f.keep(v, nil)
	if !ok {
		return map[string]any{}
	}
	return out
}

// keep returns what f keeps of v, found at at, and whether it keeps
// anything.
func (f filter) keep(v any, at []string) (any, bool) {
	below := false
	for _, p := range f {
		whole, more := match(p, at)
		if whole {
			return v, true
		}
		below = below || more
	}
	if !below {
		return nil, false
	}
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			if kept, ok := f.keep(x, append(at[:len(at):len(at)], k)); ok {
				out[k] = kept
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, x := range v {
			if kept, ok := f.keep(x, at); ok {
				out = append(out, kept)
			}
		}
		return out, len(out) > 0
	}
	return nil, false // a scalar where the pattern goes deeper
}

// match reports whether pattern p matches the field path at, which keeps
// the field whole, or may match a field below it.
func match(p, at []string) (whole, below bool) {
	switch {
	case len(p) == 0:
		return true, false
	case len(at) == 0:
		return false, true
	case p[0] == "**":
		// ** matches no part, or the first part and maybe more.
		w1, b1 := match(p[1:], at)
		w2, b2 := match(p, at[1:])
		return w1 || w2, b1 || b2
	}
	if ok, _ := path.Match(p[0], at[0]); !ok {
		return false, false
	}
	return match(p[1:], at[1:])
}
