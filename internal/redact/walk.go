package redact

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// maxDepth bounds the nesting the walker follows; a deeper body is sealed.
const maxDepth = 256

// walker copies a body of a request on a sensitive resource to out,
// replacing the values under sensitive keys by their digests. It reads the
// body once, front to back; bytes it does not replace are copied as they
// are. ok turns false at the first syntax error: the caller seals the body.
type walker struct {
	in    []byte
	out   []byte
	last  int // in[:last] has been copied or replaced
	n     int // values replaced
	depth int
	ok    bool
	tmp   []byte // scratch for unescaped strings
	dec   [256]byte
}

// keyKind is what a key says about its value.
type keyKind int

const (
	plainKey  keyKind = iota
	dataKey           // a map of base64 values: Secret data
	stringKey         // a map of plain values: Secret stringData
	valueKey          // a credential itself: a token, kubectl's copy of the object
)

// classify returns the kind of an object key, given unescaped.
func classify(k []byte) keyKind {
	switch string(k) {
	case "data":
		return dataKey
	case "stringData":
		return stringKey
	case "token", lastApplied:
		return valueKey
	}
	return plainKey
}

func (w *walker) fail() bool {
	w.ok = false
	return false
}

// space skips white space at i.
func (w *walker) space(i int) int {
	for i < len(w.in) && (w.in[i] == ' ' || w.in[i] == '\n' || w.in[i] == '\t' || w.in[i] == '\r') {
		i++
	}
	return i
}

// str returns the end of the string at i (past its closing quote).
func (w *walker) str(i int) int {
	if i >= len(w.in) || w.in[i] != '"' {
		w.fail()
		return len(w.in)
	}
	j := auditjson.StringEnd(w.in, i+1)
	if j < 0 {
		w.fail()
		return len(w.in)
	}
	return j + 1
}

// key returns the unescaped key of the string at i and the end of the
// string.
func (w *walker) key(i int) ([]byte, int) {
	end := w.str(i)
	if !w.ok {
		return nil, end
	}
	raw := w.in[i+1 : end-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, end
	}
	k, ok := unescape(w.tmp[:0], raw)
	if !ok {
		w.fail()
	}
	w.tmp = k
	return k, end
}

// value walks the value at i with plain keys around it and returns its
// end.
func (w *walker) value(i int) int {
	if i >= len(w.in) {
		w.fail()
		return i
	}
	switch w.in[i] {
	case '{':
		return w.object(i, nil)
	case '[':
		return w.array(i, false)
	case '"':
		return w.str(i)
	}
	return w.literal(i)
}

// literal returns the end of the number, true, false or null at i.
func (w *walker) literal(i int) int {
	j := i
	for j < len(w.in) {
		c := w.in[j]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-' || c == '+' || c == '.' || c == 'E') {
			break
		}
		j++
	}
	if j == i {
		w.fail()
	}
	return j
}

// members walks the members of the object at i, calling member with each
// key (unescaped, valid until the next key) and the start of its value;
// member returns the end of the value.
func (w *walker) members(i int, member func(k []byte, v int) int) int {
	if w.depth++; w.depth > maxDepth {
		w.fail()
		return len(w.in)
	}
	defer func() { w.depth-- }()
	i = w.space(i + 1)
	if i < len(w.in) && w.in[i] == '}' {
		return i + 1
	}
	for w.ok {
		k, end := w.key(w.space(i))
		if !w.ok {
			break
		}
		i = w.space(end)
		if i >= len(w.in) || w.in[i] != ':' {
			break
		}
		i = w.space(member(k, w.space(i+1)))
		if !w.ok || i >= len(w.in) {
			break
		}
		if w.in[i] == '}' {
			return i + 1
		}
		if w.in[i] != ',' {
			break
		}
		i++
	}
	w.fail()
	return len(w.in)
}

// object walks the object at i. A JSON patch operation (op set) has its
// value judged by its path.
func (w *walker) object(i int, op *patchOp) int {
	return w.members(i, func(k []byte, v int) int {
		if op != nil && string(k) == "value" {
			return w.opValue(v, op)
		}
		return w.member(classify(k), v)
	})
}

// member walks the value at v of a key of kind kk.
func (w *walker) member(kk keyKind, v int) int {
	switch kk {
	case dataKey, stringKey:
		return w.dataMap(v, kk == dataKey)
	case valueKey:
		return w.redactValue(v, false)
	}
	return w.value(v)
}

// array walks the array at i; the elements of a JSON patch (patch set)
// are operations.
func (w *walker) array(i int, patch bool) int {
	if w.depth++; w.depth > maxDepth {
		w.fail()
		return len(w.in)
	}
	defer func() { w.depth-- }()
	i = w.space(i + 1)
	if i < len(w.in) && w.in[i] == ']' {
		return i + 1
	}
	for w.ok && i < len(w.in) {
		if patch && w.in[i] == '{' {
			op := w.scanOp(i)
			i = w.object(i, &op)
		} else {
			i = w.value(i)
		}
		i = w.space(i)
		if !w.ok || i >= len(w.in) {
			break
		}
		if w.in[i] == ']' {
			return i + 1
		}
		if w.in[i] != ',' {
			break
		}
		i = w.space(i + 1)
	}
	w.fail()
	return len(w.in)
}

// dataMap walks the value of a data (b64) or stringData key: every value
// of the map is redacted; a value that is not a map is redacted whole.
func (w *walker) dataMap(v int, b64 bool) int {
	if v >= len(w.in) || w.in[v] != '{' {
		return w.redactValue(v, b64)
	}
	return w.members(v, func(_ []byte, v int) int { return w.redactValue(v, b64) })
}

// redactValue replaces the value at v by its digest: of the unescaped
// string (base64-decoded for data, when it decodes), or of the raw JSON
// of any other value. null stays.
func (w *walker) redactValue(v int, b64 bool) int {
	if v >= len(w.in) {
		w.fail()
		return v
	}
	var end int
	switch w.in[v] {
	case '"':
		if end = w.str(v); end == v+2 {
			return end // "" holds nothing
		}
	case '{', '[':
		end = w.skipValue(v) // the digest covers whatever it holds
	default:
		end = w.literal(v)
		if string(w.in[v:end]) == "null" {
			return end
		}
	}
	if !w.ok {
		return end
	}
	val := w.in[v:end]
	if val[0] == '"' {
		val = w.stringBytes(val[1:len(val)-1], b64)
		if !w.ok {
			return end
		}
	}
	w.replace(v, end, val)
	return end
}

// stringBytes returns the bytes a string value stands for: unescaped, and
// base64-decoded when b64 is set and it decodes.
func (w *walker) stringBytes(raw []byte, b64 bool) []byte {
	if bytes.IndexByte(raw, '\\') >= 0 {
		s, ok := unescape(w.tmp[:0], raw)
		if !ok {
			w.fail()
			return nil
		}
		w.tmp, raw = s, s
	}
	if !b64 {
		return raw
	}
	n := base64.StdEncoding.DecodedLen(len(raw))
	buf := w.dec[:]
	if n > len(buf) {
		buf = make([]byte, n)
	}
	if m, err := base64.StdEncoding.Decode(buf, raw); err == nil {
		return buf[:m]
	}
	return raw
}

// replace writes the digest of val in place of in[from:to].
func (w *walker) replace(from, to int, val []byte) {
	w.out = append(w.out, w.in[w.last:from]...)
	w.out = appendDigest(w.out, val)
	w.last = to
	w.n++
}

// appendDigest appends the JSON string "sha256:<hex>" of val.
func appendDigest(dst, val []byte) []byte {
	sum := sha256.Sum256(val)
	dst = append(dst, `"sha256:`...)
	dst = hex.AppendEncode(dst, sum[:])
	return append(dst, '"')
}

// patchOp is what the path of a JSON patch operation says about its value.
type patchOp struct {
	// kind is the kind of the deepest sensitive key on the path; valueKey
	// also when the path is missing or unreadable.
	kind keyKind
	// whole is set when the path ends at that key: a data or stringData
	// value is then a map.
	whole bool
}

// scanOp reads the path of the JSON patch operation at i, wherever it is
// among the operation's members, without copying anything.
func (w *walker) scanOp(i int) patchOp {
	sub := walker{in: w.in, ok: true, depth: w.depth}
	op := patchOp{kind: valueKey}
	sub.members(i, func(k []byte, v int) int {
		if string(k) != "path" || v >= len(sub.in) || sub.in[v] != '"' {
			return sub.skipValue(v)
		}
		end := sub.str(v)
		if p, ok := unescape(nil, sub.in[v+1:end-1]); ok && sub.ok {
			op = judgePath(p)
		}
		return end
	})
	return op
}

// skipValue returns the end of the value at v, checking its syntax.
func (w *walker) skipValue(v int) int {
	last, out, n := w.last, w.out, w.n
	end := w.value(v)
	w.last, w.out, w.n = last, out, n
	return end
}

// judgePath returns what a JSON pointer says about the value it points
// at: the last sensitive key among its segments, and whether it is the
// last segment.
func judgePath(p []byte) patchOp {
	op := patchOp{kind: plainKey}
	segs := strings.Split(string(p), "/")
	for i, s := range segs {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		if kk := classify([]byte(s)); kk != plainKey {
			op = patchOp{kind: kk, whole: i == len(segs)-1}
		}
	}
	return op
}

// opValue walks the value of a JSON patch operation.
func (w *walker) opValue(v int, op *patchOp) int {
	switch {
	case op.kind == plainKey:
		return w.value(v)
	case op.whole && (op.kind == dataKey || op.kind == stringKey):
		return w.dataMap(v, op.kind == dataKey)
	}
	return w.redactValue(v, op.kind == dataKey)
}

// unescape appends the contents of a JSON string, raw as between its
// quotes, to dst with its escapes resolved.
func unescape(dst, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if i++; i >= len(raw) {
			return dst, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			dst = append(dst, raw[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, n, ok := unicodeEscape(raw[i-1:])
			if !ok {
				return dst, false
			}
			dst = utf8.AppendRune(dst, r)
			i += n - 2
		default:
			return dst, false
		}
	}
	return dst, true
}

// unicodeEscape decodes the \uXXXX escape at the start of b, and the one
// after it when the two are a surrogate pair, as encoding/json does. It
// returns the rune and how many bytes it took.
func unicodeEscape(b []byte) (rune, int, bool) {
	r, ok := hex4(b)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(b[6:]); ok && len(b) >= 12 && b[6] == '\\' {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

// hex4 decodes the \uXXXX at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 6 || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
