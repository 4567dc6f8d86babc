//go:build !amd64 || purego

package auditjson

// blockParse is false where masks64 has no vector version: a byte at a
// time is faster than this loop, which the tests compare with it.
const blockParse = false

const hasAVX2 = false

func masks64AVX2(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64) {
	return masks64(b)
}

// masks64 returns bit masks of b's quotes, backslashes, opening brackets ({
// and [) and closing brackets (} and ]) and of its bytes >= 0x80: bit k is
// set for b[k]. nul is non-zero when b holds a NUL.
func masks64(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64) {
	for k, c := range b {
		bit := uint64(1) << k
		switch c {
		case '"':
			quotes |= bit
		case '\\':
			backslashes |= bit
		case '{', '[':
			opens |= bit
		case '}', ']':
			closes |= bit
		case 0:
			nul = 1
		}
		if c >= 0x80 {
			high |= bit
		}
	}
	return
}
