package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unsafe"

	"github.com/auditrail/auditrail/internal/auditjson"
)

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
	// escapes are the characters each part spells with an escape, once
	// scanned.
	escapes [4]escapes
	scanned [4]bool
	// ops are the operations of a JSON patch requestObject, once decoded.
	ops *[]op
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
// that other paths share. A JSON patch names its keys in pointers
// instead, so it is always decoded, and read as the changes it makes;
// opaque reports that one of them puts a value the patch does not show
// (moved or copied from the object) at or around path.
func (d *doc) leaves(path []string, prefix, needle []byte) (vals [][]byte, opaque bool) {
	i, raw, rest := d.scope(path)
	if len(raw) == 0 {
		return nil, false
	}
	patch := i == request && isJSONPatch(d.ev, raw)
	if len(rest) > 0 && !patch && !d.has(i, raw, prefix, needle) {
		return nil, false
	}
	if patch && len(rest) > 0 {
		return patchLeaves(d.patchOps(d.part(i, raw)), rest)
	}
	return collect(nil, d.part(i, raw), rest), false
}

// collect appends to out the non-null values at path in v as text,
// descending into arrays along the way and at the end; an object at the
// end is "{}".
func collect(out [][]byte, v any, path []string) [][]byte {
	switch t := v.(type) {
	case nil:
	case []any:
		for _, e := range t {
			out = collect(out, e, path)
		}
	case map[string]any:
		if len(path) == 0 {
			return append(out, []byte("{}"))
		}
		return collect(out, t[path[0]], path[1:])
	default:
		if len(path) == 0 {
			out = append(out, []byte(fmt.Sprint(t)))
		}
	}
	return out
}

// has reports whether needle may occur in part i: it does, or the part
// has an escape that could spell it.
func (d *doc) has(i int, raw, prefix, needle []byte) bool {
	return d.hasNeedle(i, raw, prefix, needle) || d.escaped(i, raw, needle)
}

// escaped reports whether part i spells with an escape one of the
// characters of needle's key, so that not finding the needle proves
// nothing: kube-apiserver logs a patch as the client sent it, and
// "host\u0050ID" is "hostPID". kube-apiserver's own encoder escapes only
// quotes, backslashes, control characters and <, > and & (the \" of an
// embedded last-applied-configuration, the \u0026 of a shell's &&), none
// of which is in a key a rule names, so the bodies it writes are still
// spared decoding.
func (d *doc) escaped(i int, raw, needle []byte) bool {
	if !d.scanned[i] {
		d.scanned[i] = true
		spans, n := d.spans(i, raw)
		for _, s := range spans[:n] {
			d.escapes[i].scan(raw[s[0]:s[1]])
		}
	}
	return d.escapes[i].spells(needle[1 : len(needle)-1])
}

// escapes is the set of characters a JSON text spells with an escape:
// ASCII ones in a bitmap, any other as one flag.
type escapes struct {
	ascii [2]uint64
	other bool
}

func (e *escapes) add(c byte) { e.ascii[c>>6] |= 1 << (c & 63) }

// scan adds the characters b spells with an escape. A malformed \u
// counts as any character.
func (e *escapes) scan(b []byte) {
	for {
		k := bytes.IndexByte(b, '\\')
		if k < 0 || k+1 >= len(b) {
			return
		}
		c := b[k+1]
		b = b[k+2:]
		switch c {
		case 'u':
			if r, ok := hex4(b); ok && r < 0x80 {
				e.add(byte(r))
			} else {
				e.other = true
			}
		case 'b':
			e.add('\b')
		case 'f':
			e.add('\f')
		case 'n':
			e.add('\n')
		case 'r':
			e.add('\r')
		case 't':
			e.add('\t')
		default:
			e.add(c)
		}
	}
}

// hex4 decodes the four hex digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// spells reports whether one of the characters of key is in e.
func (e *escapes) spells(key []byte) bool {
	if e.ascii == [2]uint64{} && !e.other {
		return false
	}
	for _, c := range key {
		if c >= 0x80 && e.other || c < 0x80 && e.ascii[c>>6]&(1<<(c&63)) != 0 {
			return true
		}
	}
	return false
}

// hasNeedle reports whether needle occurs in part i. For the whole event
// the bodies are skipped: a path outside them cannot be inside them, and
// they are most of the bytes. prefix, if not nil, starts needle and other
// needles: where it occurs is searched once for all of them.
func (d *doc) hasNeedle(i int, raw, prefix, needle []byte) bool {
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
