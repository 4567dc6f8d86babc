// Package redact replaces credential values in audit events before they
// leave the node.
//
// A common audit policy mistake logs Secrets at Request or RequestResponse
// level, which copies every credential into the audit log and from there
// into every system it is shipped to. What is redacted is decided by the
// event's objectRef, not by what the body says it is, since a patch body
// has no kind:
//
//   - secrets: every value under a data or stringData key, at any depth
//     (a Secret, the items of a list, a merge or strategic-merge patch),
//     and the kubectl.kubernetes.io/last-applied-configuration annotation,
//     which holds a copy of the values; in a JSON patch, the value of an
//     operation whose path goes through one of those keys, wherever the
//     path is among the operation's members;
//   - tokenreviews, serviceaccounts/token and tokenrequests: every value
//     under a token key (TokenReview spec.token, echoed in the response;
//     TokenRequest status.token).
//
// Keys are compared after their escapes are resolved, as the API server
// reads them. Each such value is replaced by "sha256:<hex>": the SHA-256
// of the value's bytes (base64-decoded for data, the raw JSON for a value
// that is not a string), so an investigator can still match a known value
// without the trail holding it.
//
// Redaction fails closed: a body of a request on such a resource that
// cannot be walked (bad syntax, nesting deeper than 256, a string) is
// replaced whole by {"auditrailRedacted":"unparseable","sha256":"<hex>"},
// the SHA-256 of the body's bytes.
//
// On other resources, a body that mentions Secret or TokenRequest is
// decoded and its objects of kind Secret, SecretList and TokenRequest are
// redacted (an aggregated API that embeds one); one that cannot be decoded
// is sealed the same way.
//
// The bodies are walked once over their bytes, without decoding them, and
// everything but the replaced values keeps its bytes and order.
package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// Sensitive reports whether the bodies of ev, a request on its
// objectRef's resource, may hold credentials.
func Sensitive(ev *auditjson.Event) bool {
	switch string(ev.Resource) {
	case "secrets", "tokenreviews", "tokenrequests":
		return true
	case "serviceaccounts":
		return string(ev.Subresource) == "token"
	}
	return false
}

// Candidate reports whether line, parsed into ev, may need redacting: it
// has a body, and it is a request on a sensitive resource or mentions
// Secret or TokenRequest.
func Candidate(line []byte, ev *auditjson.Event) bool {
	if len(ev.RequestObject) == 0 && len(ev.ResponseObject) == 0 {
		return false
	}
	return Sensitive(ev) || mentionsSecret(line)
}

// Result says what Event did.
type Result struct {
	// Values is how many values were replaced by their digest.
	Values int
	// Sealed is how many bodies were replaced whole by a marker, because
	// they could not be redacted.
	Sealed int
}

// Changed reports whether the line changed.
func (r Result) Changed() bool { return r.Values+r.Sealed > 0 }

// Event appends to dst the line, parsed into ev, with its credential
// values replaced, and makes ev's fields point into the appended bytes.
// When there is nothing to replace it returns dst and ev unchanged and a
// zero Result.
func Event(dst, line []byte, ev *auditjson.Event) ([]byte, Result) {
	spans, ok := bodySpans(line, ev)
	if !ok {
		// Parsed from a copy: the fields must point into line.
		auditjson.Parse(line, ev)
		spans, _ = bodySpans(line, ev)
	}
	start, last := len(dst), 0
	var res Result
	sensitive := Sensitive(ev)
	for i := range spans {
		s := &spans[i]
		if s.field == nil {
			continue
		}
		dst = append(dst, line[last:s.from]...)
		var r Result
		s.at = len(dst) - start
		dst, r = body(dst, line[s.from:s.to], sensitive)
		s.size = len(dst) - start - s.at
		res.Values, res.Sealed = res.Values+r.Values, res.Sealed+r.Sealed
		last = s.to
	}
	if !res.Changed() {
		return dst[:start], Result{}
	}
	dst = append(dst, line[last:]...)
	rebase(ev, line, dst[start:], spans)
	return dst, res
}

// span is where a body is in the line, and where it is in the redacted
// line.
type span struct {
	from, to int
	at, size int
	field    *[]byte
}

// bodySpans returns where ev's bodies are in line, in order; false if ev
// was not parsed from line.
func bodySpans(line []byte, ev *auditjson.Event) ([2]span, bool) {
	var spans [2]span
	for i, f := range [2]*[]byte{&ev.RequestObject, &ev.ResponseObject} {
		if len(*f) == 0 {
			continue
		}
		off := auditjson.Offset(line, *f)
		if off < 0 {
			return spans, false
		}
		spans[i] = span{from: off, to: off + len(*f), field: f}
	}
	if spans[0].field != nil && spans[1].field != nil && spans[1].from < spans[0].from {
		spans[0], spans[1] = spans[1], spans[0]
	}
	return spans, true
}

// rebase makes ev's fields point into out, line with the bodies at spans
// replaced.
func rebase(ev *auditjson.Event, line, out []byte, spans [2]span) {
	for _, s := range spans {
		if s.field != nil {
			*s.field = nil // set below: their length may have changed
		}
	}
	ev.Rebase(line, out, func(off int) int {
		at := off
		for _, s := range spans {
			if s.field != nil && off >= s.to {
				at += s.size - (s.to - s.from)
			}
		}
		return at
	})
	for _, s := range spans {
		if s.field != nil {
			*s.field = out[s.at : s.at+s.size]
		}
	}
}

// body appends b redacted to dst; by resource when sensitive, else by
// kind.
func body(dst, b []byte, sensitive bool) ([]byte, Result) {
	if !sensitive {
		out, n, err := byKind(b)
		if err != nil {
			return seal(dst, b), Result{Sealed: 1}
		}
		return append(dst, out...), Result{Values: n}
	}
	switch b[0] {
	case '{', '[':
	case '"':
		return seal(dst, b), Result{Sealed: 1} // what a string holds cannot be told
	default:
		return append(dst, b...), Result{} // a number or literal holds nothing
	}
	tmp := tmpPool.Get().(*[]byte)
	defer tmpPool.Put(tmp)
	w := walker{in: b, out: dst, ok: true, tmp: (*tmp)[:0]}
	end := w.space(w.array0(0))
	if cap(w.tmp) <= maxTmp {
		*tmp = w.tmp[:0]
	}
	if !w.ok || end != len(b) {
		return seal(dst, b), Result{Sealed: 1}
	}
	return append(w.out, b[w.last:]...), Result{Values: w.n}
}

// tmpPool holds the walkers' buffers for unescaped strings (kubectl's
// annotation is a whole object in a string), up to maxTmp bytes each.
var tmpPool = sync.Pool{New: func() any { return new([]byte) }}

const maxTmp = 64 << 10

// array0 walks the body at i: an array at the top is a JSON patch.
func (w *walker) array0(i int) int {
	if w.in[i] == '[' {
		return w.array(i, true)
	}
	return w.value(i)
}

// seal appends the marker that replaces a body that cannot be redacted.
func seal(dst, b []byte) []byte {
	sum := sha256.Sum256(b)
	out := append(dst, `{"auditrailRedacted":"unparseable","sha256":"`...)
	out = hex.AppendEncode(out, sum[:])
	return append(out, `"}`...)
}
