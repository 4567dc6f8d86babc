package config

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/units"
	"gopkg.in/yaml.v3"
)

type strictInner struct {
	Depth int            `yaml:"depth"`
	Wait  units.Duration `yaml:"wait"`
}

type strictShared struct {
	Shared string `yaml:"shared"`
}

type strictOpen struct {
	Known string         `yaml:"known"`
	Rest  map[string]any `yaml:",inline"`
}

type strictSection struct {
	strictShared `yaml:",inline"`
	Name         string                 `yaml:"name"`
	Untagged     int                    // yaml's key: untagged
	Ptr          *strictInner           `yaml:"ptr"`
	List         []strictInner          `yaml:"list"`
	ByName       map[string]strictInner `yaml:"byName"`
	Open         strictOpen             `yaml:"open"`
	Skipped      string                 `yaml:"-"`
}

// unknownFields reports exactly the unknown keys yaml's strict decoder
// reports, with the same words and lines, for the shapes sections use:
// nested, inline, pointer, list and map fields, types that decode
// themselves, maps that take any key, and aliases.
func TestUnknownFieldsAsStrictDecoder(t *testing.T) {
	for _, doc := range []string{
		"name: a\nshared: b\nuntagged: 1\n",
		"nam: a\nskipped: x\nUntagged: 1\n",
		"ptr: {depth: 1, wait: 1s, deep: 2}\n",
		"list: [{depth: 1}, {dpth: 2}, {wait: 1s, x: 1}]\n",
		"byName: {a: {depth: 1}, b: {nope: 1}}\n",
		"open: {known: k, anything: 1, else: {x: 1}}\n",
		"strictShared: {shared: s}\n",
		"ptr: &p {depth: 1, bad: 1}\nlist: [*p]\n",
		"name: a\nother: 1\nptr:\n  depth: 1\n  extra:\n    more: 1\n",
	} {
		var want []string
		dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
		dec.KnownFields(true)
		var terr *yaml.TypeError
		if err := dec.Decode(new(strictSection)); errors.As(err, &terr) {
			want = terr.Errors
		} else if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatal(err)
		}
		got := unknownFields(n.Content[0], reflect.TypeFor[*strictSection]())
		if !slices.Equal(got, want) {
			t.Errorf("%q:\nunknownFields: %s\nstrict decoder: %s", doc, strings.Join(got, "; "), strings.Join(want, "; "))
		}
	}
}
