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
	// bodies, when the event has them.
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
	*ev = Event{}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return ErrCRLF
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return ErrNUL
	}
	if !utf8.Valid(line) {
		return ErrInvalidUTF8
	}
	p := parser{b: line}
	if !p.object(topLevel, ev) {
		return ErrSyntax
	}
	p.space()
	if p.i != len(p.b) {
		return ErrSyntax
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
}

func (p *parser) space() {
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
		case "requestObject", "responseObject", "impersonatedUser":
			start := p.i
			if !p.skip() {
				return false
			}
			switch key[2] {
			case 'q':
				ev.RequestObject = p.b[start:p.i]
			case 's':
				ev.ResponseObject = p.b[start:p.i]
			default:
				ev.ImpersonatedUser = p.b[start:p.i]
			}
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
	j := stringEnd(p.b, start)
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
// over strings with stringEnd; skipContainer uses it where masks64 has no
// vector version. A backslash escapes the byte after it, inside strings or
// out (where it is invalid JSON anyway), as in skipContainer.
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
