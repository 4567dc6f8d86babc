package ocsf

import "strconv"

// enc appends JSON to b, writing the commas between members and elements:
// bit d of first is set while the container at depth d has none yet.
type enc struct {
	b     []byte
	first uint64
	depth uint
}

func (e *enc) open(c byte) {
	e.b = append(e.b, c)
	e.depth++
	e.first |= 1 << e.depth
}

func (e *enc) close(c byte) {
	e.b = append(e.b, c)
	e.first &^= 1 << e.depth
	e.depth--
}

// sep writes the comma before a member or element but the first.
func (e *enc) sep() {
	if e.first&(1<<e.depth) != 0 {
		e.first &^= 1 << e.depth
		return
	}
	e.b = append(e.b, ',')
}

// key starts a member; name must need no escaping.
func (e *enc) key(name string) {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

// rawKey starts a member whose name is raw JSON string contents.
func (e *enc) rawKey(name []byte) {
	e.sep()
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

// str writes raw JSON string contents as a string.
func (e *enc) str(raw []byte) {
	e.b = append(e.b, '"')
	e.b = append(e.b, raw...)
	e.b = append(e.b, '"')
}

// lit writes s, which needs no escaping, as a string.
func (e *enc) lit(s string) {
	e.b = append(e.b, '"')
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

func (e *enc) int(n int64) { e.b = strconv.AppendInt(e.b, n, 10) }

// raw writes a raw JSON value.
func (e *enc) raw(v []byte) { e.b = append(e.b, v...) }

func (e *enc) strField(name string, raw []byte) {
	e.key(name)
	e.str(raw)
}

func (e *enc) litField(name, s string) {
	e.key(name)
	e.lit(s)
}

func (e *enc) intField(name string, n int64) {
	e.key(name)
	e.int(n)
}
