// Package auditjson extracts the few fields of a Kubernetes audit event that
// routing and idempotency need, without decoding the whole event.
//
// Parse walks the top-level object once, skipping every value it does not
// need, and returns sub-slices of the input: it allocates nothing. It also
// decides whether a line is well-formed enough to be treated as an event;
// anything else is shipped raw and marked unparsed by the caller.
package auditjson

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"unicode/utf8"
)

// Event holds raw JSON string contents (without quotes, escapes left as
// they are) of the fields the agent uses. A field missing from the line is
// empty.
type Event struct {
	Kind                     []byte
	Level                    []byte
	AuditID                  []byte
	Stage                    []byte
	Verb                     []byte
	RequestURI               []byte
	StageTimestamp           []byte
	RequestReceivedTimestamp []byte
	Username                 []byte
	Resource                 []byte
	Subresource              []byte
	Namespace                []byte
	Name                     []byte
	APIGroup                 []byte
	// Decision is the authorization.k8s.io/decision annotation: allow or
	// forbid, empty before authorization ran.
	Decision []byte
	// RequestObject and ResponseObject are the raw JSON values of the
	// bodies, when the event has them: objects mostly, arrays for JSON
	// patches; a null body is left empty.
	RequestObject  []byte
	ResponseObject []byte
	// ImpersonatedUser is the raw JSON value of impersonatedUser.
	ImpersonatedUser []byte
	// Code is responseStatus.code, 0 when absent.
	Code int
}

// Errors returned by Parse. The caller only needs to know that the line is
// not a well-formed event; the kinds feed metrics.
var (
	ErrInvalidUTF8 = errors.New("auditjson: invalid UTF-8")
	ErrNUL         = errors.New("auditjson: NUL byte")
	ErrCRLF        = errors.New("auditjson: CRLF line ending")
	ErrSyntax      = errors.New("auditjson: not a JSON object")
)

// Parse extracts the event fields from line, which must not include its
// trailing newline. On error the fields parsed so far may be set.
func Parse(line []byte, ev *Event) error {
	return parse(line, ev, blockParse)
}

// parse is Parse, looking at 64-byte blocks with masks64 when blocks is
// set and a byte at a time otherwise.
func parse(line []byte, ev *Event, blocks bool) error {
	*ev = Event{}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return ErrCRLF
	}
	if !blocks {
		if err := checkBytes(line); err != nil {
			return err
		}
	}
	p := parser{b: line, blocks: blocks, base: -64}
	ok := p.object(topLevel, ev)
	if ok {
		p.space()
		ok = p.i == len(p.b)
	}
	if !ok {
		// The blocks may not have reached a NUL or invalid UTF-8 that
		// makes the line wrong before its syntax does; without blocks
		// they were checked first.
		if blocks {
			if err := checkBytes(line); err != nil {
				*ev = Event{}
				return err
			}
		}
		return ErrSyntax
	}
	if blocks {
		// Every block has been scanned for NULs and invalid UTF-8.
		for p.advance() {
		}
		if p.nul {
			*ev = Event{}
			return ErrNUL
		}
		if p.badUTF8 {
			*ev = Event{}
			return ErrInvalidUTF8
		}
	}
	return nil
}

// checkBytes reports a NUL byte or invalid UTF-8 in line.
func checkBytes(line []byte) error {
	if bytes.IndexByte(line, 0) >= 0 {
		return ErrNUL
	}
	if !utf8.Valid(line) {
		return ErrInvalidUTF8
	}
	return nil
}

type scope int

const (
	topLevel scope = iota
	userScope
	objectRefScope
	responseStatusScope
	annotationsScope
)

type parser struct {
	b []byte
	i int

	// blocks selects masks64's view of the line: the fields below hold
	// the masks of the 64-byte block at base, the one that holds i or
	// lies before it. Blocks start at multiples of 64 and are scanned in
	// order, each once.
	blocks  bool
	base    int
	quotes  uint64 // quotes, without those a backslash escapes
	opens   uint64 // { and [, without escaped ones
	closes  uint64 // } and ], without escaped ones
	carry   uint64 // 1 when the block's last byte escapes the next block's first
	nul     bool   // a block had a NUL
	badUTF8 bool   // a block had invalid UTF-8
	utf8End int    // the end of the last multi-byte character decoded
}

// spaces pads the last block of a line.
var spaces = [64]byte(bytes.Repeat([]byte{' '}, 64))

// advance scans the next block of the line, padded with spaces past its
// end; it returns false when there is none.
func (p *parser) advance() bool {
	b, base := p.b, p.base+64
	if base >= len(b) {
		return false
	}
	p.base = base
	var quotes, backslashes, opens, closes, high, nul uint64
	if len(b)-base < 64 {
		quotes, backslashes, opens, closes, high, nul = lastMasks(b[base:])
	} else if hasAVX2 {
		quotes, backslashes, opens, closes, high, nul = masks64AVX2((*[64]byte)(b[base : base+64]))
	} else {
		quotes, backslashes, opens, closes, high, nul = masks64((*[64]byte)(b[base : base+64]))
	}
	if nul != 0 {
		p.nul = true
	}
	if high != 0 {
		p.checkUTF8(base, high)
	}
	if backslashes|p.carry != 0 {
		var esc uint64
		esc, p.carry = escapedBytes(backslashes, p.carry)
		quotes &^= esc
		opens &^= esc
		closes &^= esc
	}
	p.quotes, p.opens, p.closes = quotes, opens, closes
	return true
}

// lastMasks returns the masks of b, the last bytes of a line, padded with
// spaces to a block.
//
//go:noinline
func lastMasks(b []byte) (quotes, backslashes, opens, closes, high, nul uint64) {
	pad := spaces
	copy(pad[:], b)
	return masks64(&pad)
}

// checkUTF8 decodes the characters that start at the non-ASCII bytes of
// the block at base, marked in high, skipping the bytes of characters
// decoded already: every byte of a multi-byte character is >= 0x80, so
// this decodes every such character of the line once.
func (p *parser) checkUTF8(base int, high uint64) {
	for ; high != 0 && !p.badUTF8; high &= high - 1 {
		i := base + bits.TrailingZeros64(high)
		if i < p.utf8End {
			continue
		}
		r, n := utf8.DecodeRune(p.b[i:])
		p.badUTF8 = r == utf8.RuneError && n == 1
		p.utf8End = i + n
	}
}

func (p *parser) space() {
	if p.i < len(p.b) && p.b[p.i] > ' ' {
		return // encoding/json writes no spaces
	}
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses an object at p.i, capturing the fields of interest for s.
func (p *parser) object(s scope, ev *Event) bool {
	p.space()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return false
	}
	p.i++
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return true
	}
	for {
		p.space()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return false
		}
		p.i++
		p.space()
		if !p.field(s, key, ev) {
			return false
		}
		p.space()
		if p.i >= len(p.b) {
			return false
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// field parses the value of key in scope s.
func (p *parser) field(s scope, key []byte, ev *Event) bool {
	if dst := target(s, key, ev); dst != nil && p.i < len(p.b) && p.b[p.i] == '"' {
		v, ok := p.str()
		*dst = v
		return ok
	}
	if s == topLevel {
		switch string(key) {
		case "requestObject", "responseObject":
			// Whatever their type: a JSON patch is logged as an array.
			return p.body(key, ev)
		}
	}
	if p.i < len(p.b) && p.b[p.i] == '{' && s == topLevel {
		switch string(key) {
		case "user":
			return p.object(userScope, ev)
		case "objectRef":
			return p.object(objectRefScope, ev)
		case "responseStatus":
			return p.object(responseStatusScope, ev)
		case "annotations":
			return p.object(annotationsScope, ev)
		case "impersonatedUser":
			start := p.i
			if !p.skip() {
				return false
			}
			ev.ImpersonatedUser = p.b[start:p.i]
			return true
		}
	}
	if s == responseStatusScope && string(key) == "code" {
		start := p.i
		if !p.skip() {
			return false
		}
		ev.Code = atoi(p.b[start:p.i])
		return true
	}
	return p.skip()
}

// body captures the raw value of requestObject or responseObject, of any
// type; a null body is left empty.
func (p *parser) body(key []byte, ev *Event) bool {
	start := p.i
	if !p.skip() {
		return false
	}
	v := p.b[start:p.i]
	if string(v) == "null" {
		return true
	}
	if key[2] == 'q' {
		ev.RequestObject = v
	} else {
		ev.ResponseObject = v
	}
	return true
}

func target(s scope, key []byte, ev *Event) *[]byte {
	switch s {
	case topLevel:
		switch string(key) {
		case "kind":
			return &ev.Kind
		case "level":
			return &ev.Level
		case "auditID":
			return &ev.AuditID
		case "stage":
			return &ev.Stage
		case "verb":
			return &ev.Verb
		case "requestURI":
			return &ev.RequestURI
		case "stageTimestamp":
			return &ev.StageTimestamp
		case "requestReceivedTimestamp":
			return &ev.RequestReceivedTimestamp
		}
	case userScope:
		if string(key) == "username" {
			return &ev.Username
		}
	case annotationsScope:
		if string(key) == "authorization.k8s.io/decision" {
			return &ev.Decision
		}
	case objectRefScope:
		switch string(key) {
		case "resource":
			return &ev.Resource
		case "subresource":
			return &ev.Subresource
		case "namespace":
			return &ev.Namespace
		case "name":
			return &ev.Name
		case "apiGroup":
			return &ev.APIGroup
		}
	}
	return nil
}

// str parses a string at p.i and returns its raw contents.
func (p *parser) str() ([]byte, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, false
	}
	start := p.i + 1
	var j int
	if p.blocks {
		j = p.quoteFrom(start)
	} else {
		j = stringEnd(p.b, start)
	}
	if j < 0 {
		return nil, false
	}
	p.i = j + 1
	return p.b[start:j], true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// stringEnd returns the index of the quote that ends the string whose
// contents start at b[i], or -1 if it does not end. It looks at eight bytes
// at a time for a quote or a backslash: the strings of audit events are
// mostly short, too short for bytes.IndexByte to pay off, and escapes are
// rare.
func stringEnd(b []byte, i int) int {
	for {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, e := x^(ones*'"'), x^(ones*'\\')
			// The lowest byte flagged is exactly the first zero byte of q
			// or e (higher flags may be borrows).
			if m := ((q - ones) &^ q & highs) | ((e - ones) &^ e & highs); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && b[i] != '"' && b[i] != '\\' {
			i++
		}
		if i >= len(b) {
			return -1
		}
		if b[i] == '"' {
			return i
		}
		i += 2 // a backslash escapes the next byte
	}
}

// quoteFrom returns the index of the first unescaped quote at or after
// b[i], or -1 if there is none: with the opening quote at b[i-1], the
// quote that ends the string. The strings of audit events are mostly a few
// dozen bytes long, so this is mostly a shift of the current block's mask.
func (p *parser) quoteFrom(i int) int {
	for {
		for i-p.base >= 64 {
			if !p.advance() {
				return -1
			}
		}
		if m := p.quotes >> uint(i-p.base); m != 0 {
			return i + bits.TrailingZeros64(m)
		}
		i = p.base + 64
	}
}

// skipContainer skips a nested object or array, tracking depth and strings.
func (p *parser) skipContainer() bool {
	if p.blocks {
		return p.skipBlocks()
	}
	return p.skipStrings()
}

// skipBlocks skips a nested object or array 64 bytes at a time. Request
// and response bodies are most of an event's bytes, and most of their
// strings are a dozen bytes long, too short for a per-string scan to pay
// off. A prefix XOR of a block's quotes marks the bytes inside strings,
// and the brackets outside strings are counted, walked one by one only in
// the block where the depth may return to zero.
func (p *parser) skipBlocks() bool {
	i, depth := p.i, 0
	var inString uint64 // all ones while a string continues into the next block
	for {
		for i-p.base >= 64 {
			if !p.advance() {
				return false
			}
		}
		from := ^uint64(0) << uint(i-p.base)
		quotes, opens, closes := p.quotes&from, p.opens&from, p.closes&from
		inside := prefixXOR(quotes) ^ inString
		inString = uint64(int64(inside) >> 63)
		opens &^= inside
		closes &^= inside
		if nc := bits.OnesCount64(closes); depth > nc {
			depth += bits.OnesCount64(opens) - nc
		} else {
			for m := opens | closes; m != 0; m &= m - 1 {
				k := bits.TrailingZeros64(m)
				if opens>>k&1 != 0 {
					depth++
					continue
				}
				depth--
				if depth == 0 {
					p.i = p.base + k + 1
					return true
				}
			}
		}
		i = p.base + 64
	}
}

// escapedBytes returns the mask of the bytes that the backslashes of a
// block escape, given carry, 1 when the block's first byte is escaped, and
// whether the block's last byte escapes the next block's first. A
// backslash escapes the byte after it, in a string or out (where it is
// invalid JSON anyway), as stringEnd and skipStrings do.
func escapedBytes(backslashes, carry uint64) (escaped, carryOut uint64) {
	escaped = carry
	backslashes &^= carry // an escaped backslash escapes nothing
	for backslashes != 0 {
		k := bits.TrailingZeros64(backslashes)
		if k == 63 {
			return escaped, 1
		}
		escaped |= 2 << k
		backslashes &^= 3 << k
	}
	return escaped, 0
}

// prefixXOR sets bit k to the XOR of bits 0..k of x: with x the quotes,
// the bytes from an opening quote up to its closing quote.
func prefixXOR(x uint64) uint64 {
	x ^= x << 1
	x ^= x << 2
	x ^= x << 4
	x ^= x << 8
	x ^= x << 16
	x ^= x << 32
	return x
}

// skip skips any JSON value at p.i, checking bracket balance.
func (p *parser) skip() bool {
	if p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; c {
	case '"':
		_, ok := p.str()
		return ok
	case '{', '[':
		return p.skipContainer()
	default:
		start := p.i
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return p.i > start
			case '{', '[', '"', ':':
				return false
			}
			p.i++
		}
		return p.i > start
	}
}

// skipStrings skips a nested object or array a byte at a time, jumping
// over strings with stringEnd. A backslash escapes the byte after it,
// inside strings or out (where it is invalid JSON anyway), as in
// skipBlocks.
func (p *parser) skipStrings() bool {
	b, i, depth := p.b, p.i, 0
	for i < len(b) {
		switch b[i] {
		case '"':
			j := stringEnd(b, i+1)
			if j < 0 {
				return false
			}
			i = j
		case '\\':
			i++
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				p.i = i + 1
				return true
			}
		}
		i++
	}
	return false
}

func atoi(b []byte) int {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' || n > 1e6 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// FindAuditID looks for an auditID value in a prefix of a line that may be
// cut anywhere, such as the first bytes of an oversized line.
func FindAuditID(prefix []byte) []byte {
	const key = `"auditID":"`
	i := bytes.Index(prefix, []byte(key))
	if i < 0 {
		return nil
	}
	rest := prefix[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 128 {
		return nil
	}
	return rest[:j]
}

// StringEnd returns the index of the quote that ends the JSON string whose
// contents start at b[i], or -1 if it does not end.
func StringEnd(b []byte, i int) int { return stringEnd(b, i) }

// fields returns the byte-slice fields of ev.
func (ev *Event) fields() [18]*[]byte {
	return [...]*[]byte{&ev.Kind, &ev.Level, &ev.AuditID, &ev.Stage, &ev.Verb, &ev.RequestURI, &ev.StageTimestamp,
		&ev.RequestReceivedTimestamp, &ev.Username, &ev.Resource, &ev.Subresource, &ev.Namespace, &ev.Name,
		&ev.APIGroup, &ev.Decision, &ev.RequestObject, &ev.ResponseObject, &ev.ImpersonatedUser}
}

// Rebase makes the fields of ev that point into from, the line it was
// parsed from, point into to instead: at the offset that at returns for
// their offset in from, with the same length. A field must not span bytes
// that moved apart. Fields that do not point into from are left alone.
func (ev *Event) Rebase(from, to []byte, at func(int) int) {
	for _, f := range ev.fields() {
		if off := Offset(from, *f); off >= 0 {
			o := at(off)
			*f = to[o : o+len(*f)]
		}
	}
}

// Offset returns where field, a sub-slice of line such as a field parsed
// from it, starts in line, or -1 if it is not one.
func Offset(line, field []byte) int {
	off := cap(line) - cap(field)
	if field == nil || off < 0 || off+len(field) > len(line) || (len(field) > 0 && &line[off] != &field[0]) {
		return -1
	}
	return off
}
