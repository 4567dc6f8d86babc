// Package units holds the value types shared by configuration sections:
// durations, byte sizes and environment expansion.
package units

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "1s", "250ms", "8760h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string, after environment expansion.
// Its errors quote the value as written: a variable's value is not shown.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := Expand(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 500ms, 5s, 1h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size written as a number of bytes or with a unit: "512KiB",
// "16MiB", "1GiB", "4MB".
type ByteSize int64

var sizeRE = regexp.MustCompile(`^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$`)

// UnmarshalYAML parses a size, after environment expansion. Its errors
// quote the value as written: a variable's value is not shown.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s, err := Expand(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is %w", n.Line, n.Value, err)
	}
	*b = ByteSize(v)
	return nil
}

// Errors of ParseByteSize; they do not quote the text, which the caller
// knows.
var (
	errNotSize = errors.New("not a size (use e.g. 512KiB, 16MiB, 1GiB)")
	errTooBig  = errors.New("not a size: too large")
)

// ParseByteSize parses "16MiB", "4MB", "1024".
func ParseByteSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, errNotSize
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errTooBig
	}
	unit := strings.TrimSuffix(m[2], "B")
	mult := map[string]int64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[unit]
	return v * mult, nil
}

var envRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${VAR} with the variable's value and ${VAR:-default}
// with the default when VAR is unset or empty; $$ is a literal $. A
// reference to an unset variable without a default is an error.
func Expand(s string) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var missing []string
	out := envRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := envRE.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(sub[1]); ok && v != "" {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		missing = append(missing, sub[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return out, nil
}

// Variables returns the names of the variables s refers to, with ${VAR}
// or ${VAR:-default}, in order.
func Variables(s string) []string {
	var names []string
	for _, m := range envRE.FindAllStringSubmatch(s, -1) {
		if m[1] != "" {
			names = append(names, m[1])
		}
	}
	return names
}
