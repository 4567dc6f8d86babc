package estest

// Response filtering (the filter_path query parameter), as Elasticsearch
// does it for every API; served here for _bulk.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
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

// keeps reports whether f keeps the value at the field path at: some
// path of f matches it or one of its parents.
func (f filter) keeps(at ...string) bool {
	for _, p := range f {
		if match(p, at) {
			return true
		}
	}
	return f == nil
}

// kept remembers, for one answer, which field paths f keeps: an answer
// asks about the same few paths for every item.
type kept struct {
	f    filter
	seen map[string]bool
}

// keeps is f.keeps(at...), remembered by the path.
func (k *kept) keeps(at []string) bool {
	if k.f == nil {
		return true
	}
	key := strings.Join(at, ".")
	v, ok := k.seen[key]
	if !ok {
		v = k.f.keeps(at...)
		if k.seen == nil {
			k.seen = map[string]bool{}
		}
		k.seen[key] = v
	}
	return v
}

// match reports whether pattern p matches the field path at or one of
// its parents.
func match(p, at []string) bool {
	switch {
	case len(p) == 0:
		return true
	case len(at) == 0:
		return false
	case p[0] == "**":
		// ** matches no part, or the first part and maybe more.
		return match(p[1:], at) || match(p, at[1:])
	}
	if ok, _ := path.Match(p[0], at[0]); !ok {
		return false
	}
	return match(p[1:], at[1:])
}

// object writes a JSON object's fields as f keeps them, into buf. It
// writes nothing, not even its own key, until it keeps a field: an
// object left empty is left out, as Elasticsearch does.
type object struct {
	f   *kept
	at  []string
	buf *bytes.Buffer
	n   int
	// Before its first field, the object writes its key in parent, or
	// calls elem (an element of an array).
	parent *object
	name   string
	elem   func()
}

// key writes the key of the next field, and the object's opening first.
func (o *object) key(name string) {
	if o.n == 0 {
		switch {
		case o.parent != nil:
			o.parent.key(o.name)
		case o.elem != nil:
			o.elem()
		}
		o.buf.WriteByte('{')
	} else {
		o.buf.WriteByte(',')
	}
	o.n++
	appendString(o.buf, name)
	o.buf.WriteByte(':')
}

// appendString writes v as a JSON string: as it is when it needs no
// escaping, as the keys, ids and error types of an answer do not.
func appendString(buf *bytes.Buffer, v string) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(v)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(v)
	buf.WriteByte('"')
}

// has reports whether the field name is kept.
func (o *object) has(name string) bool {
	return o.f.keeps(append(o.at[:len(o.at):len(o.at)], name))
}

// field writes the field name with the JSON value v, if kept.
func (o *object) field(name string, v []byte) {
	if o.has(name) {
		o.key(name)
		o.buf.Write(v)
	}
}

// str writes the string field name, if kept.
func (o *object) str(name, v string) {
	if o.has(name) {
		o.key(name)
		appendString(o.buf, v)
	}
}

// num writes the number field name, if kept.
func (o *object) num(name string, v int) {
	if o.has(name) {
		o.key(name)
		o.buf.Write(strconv.AppendInt(o.buf.AvailableBuffer(), int64(v), 10))
	}
}

// child returns the object field name; close it before the next field.
func (o *object) child(name string) *object {
	return &object{f: o.f, at: append(o.at[:len(o.at):len(o.at)], name), buf: o.buf, parent: o, name: name}
}

// close ends the object and reports whether it kept anything.
func (o *object) close() bool {
	if o.n == 0 {
		return false
	}
	o.buf.WriteByte('}')
	return true
}
