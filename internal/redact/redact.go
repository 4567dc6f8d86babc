// Package redact replaces credential values in audit events before they
// leave the node.
//
// A common audit policy mistake logs Secrets at Request or RequestResponse
// level, which copies every credential into the audit log and from there
// into every system it is shipped to. When an event's requestObject or
// responseObject is a Secret, a SecretList (or any list of Secrets) or a
// TokenRequest, every value under data and stringData, and the token of a
// TokenRequest's status, is replaced by "sha256:<hex>": the SHA-256 of the
// value's bytes (base64-decoded for data), so an investigator can still
// match a known value without the trail holding it. The
// kubectl.kubernetes.io/last-applied-configuration annotation of a Secret,
// which holds a copy of its values, is replaced by its digest too.
//
// Only the redacted objects are re-encoded; every other field of the event
// keeps its bytes and order. Events that carry no such object cost a
// byte scan of the line.
package redact

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
)

// Candidate reports whether line may carry a Secret or TokenRequest body.
// level is the event's level; only Request and RequestResponse events have
// bodies.
func Candidate(line, level []byte) bool {
	if string(level) != "Request" && string(level) != "RequestResponse" {
		return false
	}
	return mentionsSecret(line)
}

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

// Secrets returns line with credential values redacted, and how many
// values it replaced. With nothing to redact it returns line itself and 0.
func Secrets(line []byte) ([]byte, int, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return line, 0, fmt.Errorf("redact: not a JSON object")
	}
	var out bytes.Buffer
	out.Grow(len(line))
	out.WriteByte('{')
	total := 0
	for first := true; dec.More(); first = false {
		t, err := dec.Token()
		if err != nil {
			return line, 0, fmt.Errorf("redact: %w", err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return line, 0, fmt.Errorf("redact: %s: %w", key, err)
		}
		if key == "requestObject" || key == "responseObject" {
			red, n, err := object(raw)
			if err != nil {
				return line, 0, fmt.Errorf("redact: %s: %w", key, err)
			}
			raw, total = red, total+n
		}
		if !first {
			out.WriteByte(',')
		}
		kb, _ := json.Marshal(key)
		out.Write(kb)
		out.WriteByte(':')
		out.Write(raw)
	}
	if total == 0 {
		return line, 0, nil
	}
	out.WriteByte('}')
	return out.Bytes(), total, nil
}

// object redacts one request or response body.
func object(raw json.RawMessage) (json.RawMessage, int, error) {
	if !bytes.Contains(raw, []byte(`"Secret`)) && !bytes.Contains(raw, []byte(`"TokenRequest"`)) {
		return raw, 0, nil
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return raw, 0, err
	}
	n := walk(v)
	if n == 0 {
		return raw, 0, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw, 0, err
	}
	return b, n, nil
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// walk redacts v in place and returns how many values it replaced.
func walk(v any) int {
	switch x := v.(type) {
	case map[string]any:
		switch x["kind"] {
		case "Secret":
			return secret(x)
		case "SecretList":
			// List items carry no kind of their own.
			n := 0
			items, _ := x["items"].([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					n += secret(m)
				}
			}
			return n
		case "TokenRequest":
			if st, ok := x["status"].(map[string]any); ok {
				if tok, ok := st["token"].(string); ok && tok != "" {
					st["token"] = digest([]byte(tok))
					return 1
				}
			}
			return 0
		}
		n := 0
		for _, c := range x {
			n += walk(c)
		}
		return n
	case []any:
		n := 0
		for _, c := range x {
			n += walk(c)
		}
		return n
	}
	return 0
}

// secret redacts one Secret object.
func secret(x map[string]any) int {
	n := hashValues(x["data"], true) + hashValues(x["stringData"], false)
	// kubectl apply keeps the whole object, values included, in an
	// annotation.
	if md, ok := x["metadata"].(map[string]any); ok {
		if ann, ok := md["annotations"].(map[string]any); ok {
			if s, ok := ann[lastApplied].(string); ok {
				ann[lastApplied] = digest([]byte(s))
				n++
			}
		}
	}
	return n
}

// hashValues replaces every string value of the map m. For data the values
// are base64 and the digest is of the decoded bytes.
func hashValues(m any, b64 bool) int {
	mm, ok := m.(map[string]any)
	if !ok {
		return 0
	}
	n := 0
	for k, v := range mm {
		s, ok := v.(string)
		if !ok {
			continue
		}
		val := []byte(s)
		if b64 {
			if d, err := base64.StdEncoding.DecodeString(s); err == nil {
				val = d
			}
		}
		mm[k] = digest(val)
		n++
	}
	return n
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
