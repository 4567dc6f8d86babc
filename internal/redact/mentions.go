package redact

import (
	"bytes"
	"math/bits"
)

var (
	needleSecret       = []byte("Secret")
	needleTokenRequest = []byte("TokenRequest")
)

// mentionsSecret reports whether b contains "Secret" or "TokenRequest".
// The needles start with a rare byte: a leading quote would make
// bytes.Contains stop at every string. With AVX2, one pass looks for both.
func mentionsSecret(b []byte) bool {
	if hasAVX2 {
		for i := 0; ; i += 32 {
			mask, at := filterAVX2(b[i:])
			i += at
			if mask == 0 {
				b = b[i:]
				break
			}
			for ; mask != 0; mask &= mask - 1 {
				k := i + bits.TrailingZeros32(mask)
				if bytes.HasPrefix(b[k:], needleSecret) || bytes.HasPrefix(b[k:], needleTokenRequest) {
					return true
				}
			}
		}
	}
	return bytes.Contains(b, needleSecret) || bytes.Contains(b, needleTokenRequest)
}
