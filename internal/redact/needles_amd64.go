//go:build amd64 && !purego

package redact

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

// filterAVX2 looks for bytes that may start "Secret" or "TokenRequest",
// 32 at a time: an S with a t five bytes on, or a T with a t eleven bytes
// on. It returns the mask of the first 32 bytes at b[at:] with such a
// byte, or a zero mask and where it stopped: the last 42 bytes of b are
// left to the caller.
//
//go:noescape
func filterAVX2(b []byte) (mask uint32, at int)
