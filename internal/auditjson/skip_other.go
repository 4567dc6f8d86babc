//go:build !amd64 || purego

package auditjson

// skipContainer skips a nested object or array, tracking depth and strings.
func (p *parser) skipContainer() bool { return p.skipStrings() }
