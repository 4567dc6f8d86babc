//go:build !amd64 || purego

package redact

const hasAVX2 = false

func filterAVX2(b []byte) (mask uint32, at int) { return 0, 0 }
