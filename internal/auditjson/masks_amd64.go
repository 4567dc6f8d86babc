//go:build amd64 && !purego

package auditjson

import "golang.org/x/sys/cpu"

// blockParse: Parse looks at 64-byte blocks with masks64.
const blockParse = true

var hasAVX2 = cpu.X86.HasAVX2

// masks64 returns bit masks of b's quotes, backslashes, opening brackets ({
// and [) and closing brackets (} and ]) and of its bytes >= 0x80: bit k is
// set for b[k]. nul is non-zero when b holds a NUL. SSE2, which every amd64
// processor has, compares 16 bytes at a time.
//
//go:noescape
func masks64(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64)

// masks64AVX2 is masks64 comparing 32 bytes at a time.
//
//go:noescape
func masks64AVX2(b *[64]byte) (quotes, backslashes, opens, closes, high, nul uint64)
