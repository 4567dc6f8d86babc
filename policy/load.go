package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/apis/audit/install"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/apis/audit/validation"
)

// decoders are kube-apiserver's strict and lenient decoders of audit
// policies, built on first use: the agent itself never needs them.
var decoders = sync.OnceValues(func() (strict, lenient runtime.Decoder) {
	scheme := runtime.NewScheme()
	install.Install(scheme)
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDecoder(),
		serializer.NewCodecFactory(scheme).UniversalDecoder(auditv1.SchemeGroupVersion)
})

// ErrNotPolicy is returned for a file that is not an audit policy at all:
// not YAML, or another kind or apiVersion.
var ErrNotPolicy = errors.New("policy: not an audit.k8s.io/v1 Policy")

// decode decodes data as kube-apiserver does (LoadPolicyFromBytes):
// strictly, and when only strictness fails, leniently, which
// kube-apiserver accepts with a warning; strictErr is that failure.
func decode(data []byte) (p *audit.Policy, strictErr, err error) {
	strict, lenient := decoders()
	p = &audit.Policy{}
	_, gvk, err := strict.Decode(data, nil, p)
	if err != nil {
		if !runtime.IsStrictDecodingError(err) {
			return nil, nil, fmt.Errorf("%w: %v", ErrNotPolicy, err)
		}
		strictErr = err
		p = &audit.Policy{}
		if _, gvk, err = lenient.Decode(data, nil, p); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrNotPolicy, err)
		}
	}
	if gv := (schema.GroupVersion{Group: gvk.Group, Version: gvk.Version}); gv != auditv1.SchemeGroupVersion {
		return nil, nil, fmt.Errorf("%w: apiVersion %s", ErrNotPolicy, gv)
	}
	return p, strictErr, nil
}

// validate returns what kube-apiserver's validation finds, as the field
// paths it names and their messages.
func validate(p *audit.Policy) []fieldError {
	var out []fieldError
	for _, e := range validation.ValidatePolicy(p) {
		out = append(out, fieldError{path: e.Field, msg: e.Error()})
	}
	if len(p.Rules) == 0 {
		out = append(out, fieldError{path: "rules", msg: "rules: the policy has no rules (kube-apiserver refuses it)"})
	}
	return out
}

type fieldError struct{ path, msg string }

// lines maps field paths of the policy ("rules[2].level") to the line they
// are on in the file.
type lines struct{ root *yaml.Node }

func parseLines(data []byte) lines {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return lines{}
	}
	return lines{root: doc.Content[0]}
}

// of returns the line of the deepest node on path that is in the file, or
// 1 when not even the first is.
func (l lines) of(path string) int {
	n, line := l.root, 1
	if n == nil {
		return line
	}
	for _, seg := range strings.Split(path, ".") {
		key, idx := seg, -1
		if i := strings.IndexByte(seg, '['); i >= 0 && strings.HasSuffix(seg, "]") {
			key = seg[:i]
			if v, err := strconv.Atoi(seg[i+1 : len(seg)-1]); err == nil {
				idx = v
			}
		}
		kn, vn := mapEntry(n, key)
		if kn == nil {
			return line
		}
		n, line = vn, kn.Line
		if idx < 0 {
			continue
		}
		if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
			return line
		}
		n = n.Content[idx]
		line = n.Line
	}
	return line
}

func mapEntry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}
