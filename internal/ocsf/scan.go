package ocsf

import "github.com/auditrail/auditrail/internal/auditjson"

// members iterates over the members of a JSON object that is known to be
// valid, returning raw keys (without quotes) and raw values.
type members struct {
	b []byte
	i int
}

// newMembers starts at obj, a whole raw object.
func newMembers(obj []byte) members {
	m := members{b: obj}
	m.space()
	if m.i < len(m.b) && m.b[m.i] == '{' {
		m.i++
	} else {
		m.i = len(m.b)
	}
	return m
}

func (m *members) space() {
	for m.i < len(m.b) && (m.b[m.i] == ' ' || m.b[m.i] == '\t' || m.b[m.i] == '\n' || m.b[m.i] == '\r') {
		m.i++
	}
}

// next returns the next member, or ok false after the last.
func (m *members) next() (key, val []byte, ok bool) {
	if key, ok = m.nextKey(); !ok {
		return nil, nil, false
	}
	return key, m.value(), true
}

// nextKey returns the next member's key, leaving m at its value.
func (m *members) nextKey() (key []byte, ok bool) {
	m.space()
	if m.i < len(m.b) && m.b[m.i] == ',' {
		m.i++
		m.space()
	}
	if m.i >= len(m.b) || m.b[m.i] != '"' {
		return nil, false
	}
	j := auditjson.StringEnd(m.b, m.i+1)
	if j < 0 {
		return nil, false
	}
	key = m.b[m.i+1 : j]
	m.i = j + 1
	m.space()
	m.i++ // ':'
	m.space()
	return key, true
}

// value returns the value m is at.
func (m *members) value() []byte {
	start := m.i
	m.i = valueEnd(m.b, m.i)
	return m.b[start:m.i]
}

// valueAt returns the value m is at when it is v, a value found in the
// same bytes before (a body auditjson parsed), without scanning it again.
func (m *members) valueAt(v []byte) []byte {
	if len(v) == 0 || auditjson.Offset(m.b, v) != m.i {
		return m.value()
	}
	m.i += len(v)
	return v
}

// elements iterates over the raw elements of a valid JSON array.
type elements struct {
	b []byte
	i int
}

func newElements(arr []byte) elements {
	e := elements{b: arr}
	if len(arr) > 0 && arr[0] == '[' {
		e.i = 1
	} else {
		e.i = len(arr)
	}
	return e
}

func (e *elements) next() ([]byte, bool) {
	m := members{b: e.b, i: e.i}
	m.space()
	if m.i < len(m.b) && m.b[m.i] == ',' {
		m.i++
		m.space()
	}
	if m.i >= len(m.b) || m.b[m.i] == ']' {
		return nil, false
	}
	start := m.i
	e.i = valueEnd(m.b, m.i)
	return e.b[start:e.i], true
}

// valueEnd returns the index just past the valid JSON value at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return auditjson.StringEnd(b, i+1) + 1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = auditjson.StringEnd(b, i+1)
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// str returns the contents of a raw JSON string value, and false for any
// other value.
func str(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}
