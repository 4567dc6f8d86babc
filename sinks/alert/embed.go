package alert

import (
	"bytes"
	"encoding/json"

	"github.com/auditrail/auditrail/rules"
)

// MaxEventBytes bounds the event an alert embeds. An event can be 16 MiB;
// receivers commonly refuse bodies past a few MiB or less.
const MaxEventBytes = 64 << 10

// Values of Alert.EventTruncated.
const (
	// TruncatedBodies: the event was larger than MaxEventBytes; its
	// requestObject and responseObject keep only the fields the rule
	// looks at, and nothing else of the event changes.
	TruncatedBodies = "bodies"
	// TruncatedOmitted: the alert carries no event, because it was still
	// too large without its bodies or the receiver refused the alert with
	// it. Source says where it is.
	TruncatedOmitted = "omitted"
)

// embed returns the event line as an alert embeds it for rule, and how
// it was truncated ("" if not).
func embed(line []byte, rule *rules.Rule) (json.RawMessage, string) {
	if len(line) <= MaxEventBytes {
		return json.RawMessage(bytes.Clone(line)), ""
	}
	if ev, ok := cutBodies(line, rule.FieldPaths()); ok && len(ev) <= MaxEventBytes {
		return ev, TruncatedBodies
	}
	return nil, TruncatedOmitted
}

// bodies are the fields of an event that hold whole objects.
var bodies = []string{"requestObject", "responseObject"}

// cutBodies returns line with its bodies reduced to what paths lead to;
// false if line is not a JSON object.
func cutBodies(line []byte, paths [][]string) (json.RawMessage, bool) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(line, &ev) != nil {
		return nil, false
	}
	for _, name := range bodies {
		raw, ok := ev[name]
		if !ok {
			continue
		}
		delete(ev, name)
		var under [][]string
		for _, p := range paths {
			if len(p) > 1 && p[0] == name {
				under = append(under, p[1:])
			}
		}
		if kept := keepPaths(raw, under); kept != nil {
			ev[name] = kept
		}
	}
	out, err := json.Marshal(ev)
	return out, err == nil
}

// keepPaths returns the parts of the JSON value raw that paths lead to,
// or nil if none is there.
func keepPaths(raw json.RawMessage, paths [][]string) json.RawMessage {
	if len(paths) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return nil
	}
	kept := keep(v, paths)
	if kept == nil {
		return nil
	}
	out, _ := json.Marshal(kept)
	return out
}

// keep returns the parts of v that paths lead to, nil if none. Lists are
// looked through: a path goes on in each of their elements, and elements
// it leads nowhere in are left out.
func keep(v any, paths [][]string) any {
	if len(paths) == 0 {
		return nil
	}
	for _, p := range paths {
		if len(p) == 0 {
			return v
		}
	}
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range t {
			if kept := keep(c, below(paths, k)); kept != nil {
				out[k] = kept
			}
		}
		if len(out) > 0 {
			return out
		}
	case []any:
		var out []any
		for _, c := range t {
			if kept := keep(c, paths); kept != nil {
				out = append(out, kept)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// below returns the rest of the paths that start with key.
func below(paths [][]string, key string) [][]string {
	var out [][]string
	for _, p := range paths {
		if p[0] == key {
			out = append(out, p[1:])
		}
	}
	return out
}
