package rules

import (
	"strings"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// kube-apiserver logs the body of a PATCH as the client sent it
// (audit.LogRequestPatch), without its content type. A merge patch, a
// strategic merge patch or a server-side apply configuration is an object
// shaped like the object it changes, and paths are followed in it as in
// any body. A JSON patch (RFC 6902) is an array of operations, each on a
// JSON pointer (RFC 6901): its keys are never quoted object keys, so it is
// read as the values it puts at each path instead.

// isJSONPatch reports whether raw, the requestObject of ev, is a JSON
// patch: the body of a PATCH that is an array (auditjson keeps a body
// from its first byte, '{' or '[').
func isJSONPatch(ev *auditjson.Event, raw []byte) bool {
	return len(raw) > 0 && raw[0] == '[' && string(ev.Verb) == "patch"
}

// op is one operation of a JSON patch: what it does, to the keys of its
// pointer, with which value.
type op struct {
	kind  string
	segs  []string
	value any
}

// patchOps returns the operations of the JSON patch v, decoded once per
// event.
func (d *doc) patchOps(v any) []op {
	if d.ops != nil {
		return *d.ops
	}
	list, _ := v.([]any)
	ops := make([]op, 0, len(list))
	for _, o := range list {
		m, _ := o.(map[string]any)
		kind, _ := m["op"].(string)
		if ptr, ok := m["path"].(string); ok {
			ops = append(ops, op{kind: kind, segs: pointer(ptr), value: m["value"]})
		}
	}
	d.ops = &ops
	return ops
}

// patchLeaves returns the non-null values the add and replace operations
// of a JSON patch put at path or below it, as collect would find them in
// the patched object. opaque reports a move or copy to path, or to where
// path leads through or from: the value comes from the object, which the
// patch does not show. Test and remove operations put nothing.
func patchLeaves(ops []op, path []string) (vals [][]byte, opaque bool) {
	for _, o := range ops {
		switch o.kind {
		case "add", "replace":
			vals = atPointer(vals, path, o.segs, o.value)
		case "move", "copy":
			opaque = opaque || meets(path, o.segs)
		}
	}
	return vals, opaque
}

// pointer returns the keys of the JSON pointer p, unescaped: "~1" is a
// slash and "~0" a tilde, in that order, so "~01" is "~1". The empty
// pointer is the whole document.
func pointer(p string) []string {
	if p == "" {
		return nil
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for k, s := range segs {
		if strings.Contains(s, "~") {
			segs[k] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		}
	}
	return segs
}

// index reports whether the pointer key s may be an array index: digits,
// or "-" for past the end.
func index(s string) bool {
	if s == "-" {
		return true
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// atPointer appends to out the values at path once v is put at the
// pointer keys segs. Paths step through arrays unnamed, so a key that may
// be an index is both skipped, as an array element on the way, and
// matched, as an object key. A value put below path makes what is at path
// an object ("{}").
func atPointer(out [][]byte, path, segs []string, v any) [][]byte {
	switch {
	case len(segs) == 0:
		return collect(out, v, path)
	case index(segs[0]):
		out = atPointer(out, path, segs[1:], v)
		if len(path) == 0 {
			return out
		}
	case len(path) == 0:
		return append(out, []byte("{}"))
	}
	if path[0] == segs[0] {
		out = atPointer(out, path[1:], segs[1:], v)
	}
	return out
}

// meets reports whether the pointer keys segs lead to path, into it or
// to where it leads, stepping over keys that may be array indexes.
func meets(path, segs []string) bool {
	switch {
	case len(segs) == 0 || len(path) == 0:
		return true
	case index(segs[0]) && meets(path, segs[1:]):
		return true
	}
	return path[0] == segs[0] && meets(path[1:], segs[1:])
}
