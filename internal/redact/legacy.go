package redact

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
)

// The redaction by kind, for bodies of requests on other resources that
// hold a Secret or a TokenRequest (a resource of an aggregated API that
// embeds one, say): rare, so the body is decoded with encoding/json, and
// only objects whose kind is Secret, SecretList or TokenRequest are
// redacted.

// byKind redacts one body of a request on a resource that is not
// sensitive. It returns raw itself when there is nothing to redact.
func byKind(raw []byte) ([]byte, int, error) {
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
