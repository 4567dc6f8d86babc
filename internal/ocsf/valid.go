package ocsf

import (
	"encoding/binary"
	"math/bits"
)

// valid reports whether b is one valid JSON value, as json.Valid does,
// several times faster: Append copies strings and nested values as they
// are, and its output must be JSON whatever the line. Strings, most of an
// event's bytes, are scanned eight bytes at a time for the quote, the
// backslash and control characters.
func valid(b []byte) bool {
	v := validator{b: b}
	return v.run()
}

type validator struct {
	b []byte
	i int
	// The open containers, '{' or '[': the first 64 in small, the
	// others in deep.
	small [64]byte
	deep  []byte
	depth int
}

func (v *validator) push(c byte) {
	if v.depth < len(v.small) {
		v.small[v.depth] = c
	} else {
		v.deep = append(v.deep[:v.depth-len(v.small)], c)
	}
	v.depth++
}

func (v *validator) top() byte {
	if d := v.depth - 1; d < len(v.small) {
		return v.small[d]
	}
	return v.deep[v.depth-1-len(v.small)]
}

func (v *validator) space() {
	for v.i < len(v.b) {
		switch v.b[v.i] {
		case ' ', '\t', '\n', '\r':
			v.i++
		default:
			return
		}
	}
}

func (v *validator) run() bool {
	for {
		// A value is expected.
		v.space()
		if v.i >= len(v.b) {
			return false
		}
		switch c := v.b[v.i]; {
		case c == '{':
			v.i++
			v.space()
			if v.i < len(v.b) && v.b[v.i] == '}' {
				v.i++
				break
			}
			v.push('{')
			if !v.key() {
				return false
			}
			continue
		case c == '[':
			v.i++
			v.space()
			if v.i < len(v.b) && v.b[v.i] == ']' {
				v.i++
				break
			}
			v.push('[')
			continue
		case c == '"':
			if !v.str() {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if !v.number() {
				return false
			}
		default:
			if !v.literal() {
				return false
			}
		}
		// After a value: close containers or go on to the next member.
		for {
			v.space()
			if v.depth == 0 {
				return v.i == len(v.b)
			}
			if v.i >= len(v.b) {
				return false
			}
			top, c := v.top(), v.b[v.i]
			v.i++
			if c == ',' {
				if top == '{' && !v.key() {
					return false
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				v.depth--
				continue
			}
			return false
		}
	}
}

// key reads an object member's key and colon.
func (v *validator) key() bool {
	v.space()
	if v.i >= len(v.b) || v.b[v.i] != '"' || !v.str() {
		return false
	}
	v.space()
	if v.i >= len(v.b) || v.b[v.i] != ':' {
		return false
	}
	v.i++
	return true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// str reads a string at v.i: no control characters, valid escapes.
func (v *validator) str() bool {
	b, i := v.b, v.i+1
	for {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q, e := x^(ones*'"'), x^(ones*'\\')
			// Zero bytes of q and e, and bytes below 0x20 (x - 0x20 borrows
			// with the high bit clear): the lowest flagged is exact.
			m := ((q - ones) &^ q) | ((e - ones) &^ e) | ((x - ones*0x20) &^ x)
			if m &= highs; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			v.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hex(b[i+2]) || !hex(b[i+3]) || !hex(b[i+4]) || !hex(b[i+5]) {
					return false
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
}

func hex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (v *validator) digits() int {
	start := v.i
	for v.i < len(v.b) && v.b[v.i] >= '0' && v.b[v.i] <= '9' {
		v.i++
	}
	return v.i - start
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (v *validator) number() bool {
	if v.b[v.i] == '-' {
		v.i++
	}
	if v.i < len(v.b) && v.b[v.i] == '0' {
		v.i++
	} else if v.digits() == 0 {
		return false
	}
	if v.i < len(v.b) && v.b[v.i] == '.' {
		v.i++
		if v.digits() == 0 {
			return false
		}
	}
	if v.i < len(v.b) && (v.b[v.i] == 'e' || v.b[v.i] == 'E') {
		v.i++
		if v.i < len(v.b) && (v.b[v.i] == '+' || v.b[v.i] == '-') {
			v.i++
		}
		if v.digits() == 0 {
			return false
		}
	}
	return true
}

func (v *validator) literal() bool {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(v.b)-v.i >= len(lit) && string(v.b[v.i:v.i+len(lit)]) == lit {
			v.i += len(lit)
			return true
		}
	}
	return false
}
