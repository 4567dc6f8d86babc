package config_test

import (
	"fmt"
	"go/build"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/config"
)

// memo is a sink type's section that records what config did with it.
type memo struct {
	Path      string `yaml:"path"`
	Limit     int    `yaml:"limit"`
	Nested    nested `yaml:"nested"`
	defaulted bool
	validated string
	stateDir  string
}

type nested struct {
	Depth int `yaml:"depth"`
}

func (m *memo) ApplyDefaults() {
	m.defaulted = true
	if m.Limit == 0 {
		m.Limit = 7
	}
}

func (m *memo) Validate(key string) error {
	m.validated = key
	if m.Limit < 0 {
		return fmt.Errorf("%s.limit must not be negative", key)
	}
	return nil
}

func (m *memo) ResolvePaths(stateDir string) { m.stateDir = stateDir }

func (m *memo) Insecure() []string { return []string{"path: memo"} }

// table has a type with a section and one without, and no other.
var table = config.Schema{SinkTypes: []config.SinkType{
	{Name: "memo", NewSection: func() config.Section { return &memo{} },
		Batch: config.BatchConfig{MaxEvents: 3}},
	{Name: "discard"},
}}

// The configuration knows the sink types the table gives, and only those:
// a type it lacks is refused, naming the key, as is that type's section.
func TestSinkTypeUnknownToTheTable(t *testing.T) {
	_, err := config.Parse([]byte("auditLogPath: /a/audit.log\nsinks:\n  - type: kafka\n"), table)
	if err == nil || !strings.Contains(err.Error(), `sinks[0].type must be one of memo, discard, got "kafka"`) {
		t.Errorf("type unknown to the table: error %v", err)
	}
	_, err = config.Parse([]byte("auditLogPath: /a/audit.log\nsinks:\n  - type: memo\n    kafka: {topic: t}\n"), table)
	if err == nil || !strings.Contains(err.Error(), "line 4: field kafka not found in type config.Sink") {
		t.Errorf("section of a type unknown to the table: error %v", err)
	}
}

// A sink's section is decoded strictly into the type the table gives, its
// strings expanded, then defaulted, resolved against the state directory
// and validated under its key; the sink's batch starts from the type's
// defaults.
func TestSinkSectionFromTheTable(t *testing.T) {
	t.Setenv("MEMO_PATH", "p")
	c, err := config.Parse([]byte("auditLogPath: /a/audit.log\nstateDir: /s\nsinks:\n  - type: memo\n    memo: {path: \"${MEMO_PATH}\", nested: {depth: 2}}\n  - type: discard\n"), table)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := c.Sinks[0].Section.(*memo)
	if !ok {
		t.Fatalf("section is %T, want *memo", c.Sinks[0].Section)
	}
	if m.Path != "p" || m.Nested.Depth != 2 || !m.defaulted || m.Limit != 7 || m.validated != "sinks[0].memo" || m.stateDir != "/s" {
		t.Errorf("section = %+v", m)
	}
	if b := c.Sinks[0].Batch; b.MaxEvents != 3 || b.MaxBytes != 2<<20 {
		t.Errorf("memo batch = %+v, want maxEvents from the table and maxBytes from the common defaults", b)
	}
	if c.Sinks[1].Section != nil || c.Sinks[1].Batch.MaxEvents != 5000 {
		t.Errorf("discard: section %v, batch %+v", c.Sinks[1].Section, c.Sinks[1].Batch)
	}
	if got := c.Insecure(); len(got) != 1 || got[0] != "sinks[0].memo.path: memo" {
		t.Errorf("Insecure() = %q", got)
	}
	for yaml, want := range map[string]string{
		"memo: {limit: -1}":         "sinks[0].memo.limit must not be negative",
		"memo: {nested: {deep: 1}}": "line 4: field deep not found in type config_test.nested",
		"memo: {limit: x}":          "line 4: cannot unmarshal !!str `x` into int",
		"discard: {}":               "line 4: field discard not found in type config.Sink",
	} {
		_, err := config.Parse([]byte("auditLogPath: /a/audit.log\nsinks:\n  - type: memo\n    "+yaml+"\n"), table)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", yaml, err, want)
		}
	}
	_, err = config.Parse([]byte("auditLogPath: /a/audit.log\nsinks:\n  - type: memo\n"), table)
	if err == nil || !strings.Contains(err.Error(), "sinks[0].memo section is required for type memo") {
		t.Errorf("no section: error %v", err)
	}
}

// The configuration knows sink types only through the schema: it imports
// no sink package, so a new sink type needs no change here.
func TestConfigImportsNoSink(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "github.com/auditrail/auditrail/sinks" || strings.HasPrefix(imp, "github.com/auditrail/auditrail/sinks/") {
			t.Errorf("internal/config imports %s", imp)
		}
	}
}
