//go:build amd64 && !purego

package auditjson

import "math/bits"

// skipContainer skips a nested object or array, tracking depth and strings.
// Request and response bodies are most of an event's bytes, and most of
// their strings are a dozen bytes long, too short for a per-string scan to
// pay off. So it looks at 64 bytes at a time: masks64 marks their quotes,
// backslashes and brackets; the bytes after backslashes are unmarked; a
// prefix XOR of the quotes marks the bytes inside strings; and the
// brackets outside strings are counted, walked one by one only in the
// block where the depth may return to zero.
func (p *parser) skipContainer() bool {
	b, i, depth := p.b, p.i, 0
	var inString uint64 // all ones while a string continues into the next block
	var escaped uint64  // 1 when a backslash ended the previous block
	var pad [64]byte
	for i < len(b) {
		var blk *[64]byte
		if len(b)-i >= 64 {
			blk = (*[64]byte)(b[i : i+64])
		} else {
			n := copy(pad[:], b[i:])
			for k := n; k < 64; k++ {
				pad[k] = ' '
			}
			blk = &pad
		}
		quotes, backslashes, opens, closes := masks64(blk)
		if backslashes|escaped != 0 {
			var esc uint64
			esc, escaped = escapedBytes(backslashes, escaped)
			quotes &^= esc
			opens &^= esc
			closes &^= esc
		}
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
					p.i = i + k + 1
					return true
				}
			}
		}
		i += 64
	}
	return false
}

// escapedBytes returns the mask of the bytes that the backslashes of a
// block escape, given carry, 1 when the block's first byte is escaped, and
// whether the block's last byte escapes the next block's first.
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

// masks64 returns bit masks of b's quotes, backslashes, opening brackets ({
// and [) and closing brackets (} and ]): bit k is set for b[k]. SSE2, which
// every amd64 processor has, compares 16 bytes at a time.
//
//go:noescape
func masks64(b *[64]byte) (quotes, backslashes, opens, closes uint64)
