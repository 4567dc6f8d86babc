//go:build amd64 && !purego

package auditjson

import (
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMasks64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`"\{}[]az :,` + "\x00\x7f\x80\xff\x5b\x7b\x3b")
	var b [64]byte
	for range 20000 {
		for k := range b {
			b[k] = alphabet[r.IntN(len(alphabet))]
		}
		var want [4]uint64
		for k, c := range b {
			for m, set := range []string{`"`, `\`, `{[`, `}]`} {
				if strings.IndexByte(set, c) >= 0 {
					want[m] |= 1 << k
				}
			}
		}
		q, e, o, c := masks64(&b)
		if got := [4]uint64{q, e, o, c}; got != want {
			t.Fatalf("masks64(%q) = %x, want %x", b, got, want)
		}
	}
}
