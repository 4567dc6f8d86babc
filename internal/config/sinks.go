package config

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/units"
	"gopkg.in/yaml.v3"
)

// Sink is one destination.
type Sink struct {
	Name        string      `yaml:"name"`
	Type        string      `yaml:"type"`
	Batch       BatchConfig `yaml:"batch"`
	Retry       RetryConfig `yaml:"retry"`
	MaxInFlight int         `yaml:"maxInFlight"`
	// RedactSecrets replaces the values of Secrets and TokenRequests in
	// event bodies by their SHA-256 (default true). Set it to false for a
	// sink that must keep the original bytes, such as a locked archive.
	RedactSecrets *bool `yaml:"redactSecrets"`
	// Drop lists rules whose events this sink does not receive, e.g.
	// controllers' lease reads for Elasticsearch while S3 keeps all.
	Drop []DropRule `yaml:"drop"`
	// Section is the type's own section, under the key named by Type,
	// decoded into what the type's NewSection returns; nil for a type
	// without one.
	Section Section `yaml:"-"`

	// extra holds the key and value nodes of the entry's other keys until
	// decodeSections decodes them.
	extra []*yaml.Node
	// misplaced names the sections of other types than Type.
	misplaced []string
	// problems are the decoder's, for decodeSections to return.
	problems []string
}

// Section is a sink type's own section. The sink's package owns its
// struct, defaults and validation; config decodes it strictly, expands
// its strings, then calls ApplyDefaults and Validate.
//
// A section may also have these methods, called when present:
//
//	ResolvePaths(stateDir string) // after ApplyDefaults: make relative paths relative to stateDir
//	Insecure() []string           // the settings that expose events or credentials, as "key: why", keys below the section
type Section interface {
	ApplyDefaults()
	// Validate checks the section; key is its YAML path, which every
	// error quotes.
	Validate(key string) error
}

// Schema is what other packages own of the configuration: the sink types
// and the alerts section. sinks/registry.Schema returns the agent's.
type Schema struct {
	SinkTypes []SinkType
	// NewAlerts returns an empty alerts section to decode into; nil
	// refuses an alerts section.
	NewAlerts func() AlertsSection
}

// AlertsSection is the alerts section, which sinks/alert owns. It may
// have an Insecure method, as a Section may.
type AlertsSection interface {
	Section
	// CheckNames checks that no destination reads the log under a name
	// that isSink reports as a sink's; key is the section's.
	CheckNames(key string, isSink func(name string) bool) error
}

// Alerts holds the alerts section.
type Alerts struct{ AlertsSection }

// UnmarshalYAML decodes into the section the schema gave, with the
// strict decoder.
func (a *Alerts) UnmarshalYAML(unmarshal func(any) error) error {
	if a.AlertsSection == nil {
		return errors.New("alerts: this configuration takes no alerts section")
	}
	return unmarshal(a.AlertsSection)
}

// SinkType is what the configuration knows of a sink type: its entry in
// the table of sink types (sinks/registry), without the constructor.
type SinkType struct {
	// Name is the value of a sink's type and the key of its section.
	Name string
	// NewSection returns an empty section to decode into; nil for a type
	// that takes no section.
	NewSection func() Section
	// SectionOptional lets a sink of the type leave its section out: it
	// starts from an empty one. Otherwise the section is required.
	SectionOptional bool
	// Batch holds the type's batch defaults; a zero field takes
	// defaultBatch's (5000 events, 2MiB, 1s).
	Batch BatchConfig
}

// defaultBatch bounds the batches of a sink type that sets no defaults of
// its own: many small requests.
var defaultBatch = BatchConfig{MaxEvents: 5000, MaxBytes: 2 << 20, FlushInterval: units.Duration(time.Second)}

// DropRule matches events by glob patterns (path.Match) on verb,
// resource (or resource/subresource), namespace and user; every non-empty
// list must match.
type DropRule struct {
	Name       string   `yaml:"name"`
	Verbs      []string `yaml:"verbs"`
	Resources  []string `yaml:"resources"`
	Namespaces []string `yaml:"namespaces"`
	Users      []string `yaml:"users"`
}

// BatchConfig bounds a sink's batches.
type BatchConfig struct {
	MaxEvents     int            `yaml:"maxEvents"`
	MaxBytes      units.ByteSize `yaml:"maxBytes"`
	FlushInterval units.Duration `yaml:"flushInterval"`
}

// RetryConfig shapes the backoff between failed writes.
type RetryConfig struct {
	InitialInterval units.Duration `yaml:"initialInterval"`
	MaxInterval     units.Duration `yaml:"maxInterval"`
}

// plainSink is Sink without its UnmarshalYAML.
type plainSink Sink

// UnmarshalYAML decodes the fields every sink has, strictly, and keeps
// the entry's other keys for decodeSections, which knows the sink types.
// It takes the unmarshal function, rather than a node, so that the
// decoder stays strict for the fields it decodes.
func (s *Sink) UnmarshalYAML(unmarshal func(any) error) error {
	var n node
	if err := unmarshal(&n); err != nil {
		return err
	}
	var raw struct {
		Common plainSink            `yaml:",inline"`
		Other  map[string]yaml.Node `yaml:",inline"`
	}
	err := unmarshal(&raw)
	var terr *yaml.TypeError
	if errors.As(err, &terr) {
		// Kept for decode to report with the others: returned, it
		// would drop the entry, and the problems of its sections.
		raw.Common.problems, err = terr.Errors, nil
	}
	*s = Sink(raw.Common)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if v, ok := raw.Other[k.Value]; ok {
			s.extra = append(s.extra, k, &v)
			delete(raw.Other, k.Value)
		}
	}
	for k, v := range raw.Other { // keys merged in with <<
		s.extra = append(s.extra, &yaml.Node{Kind: yaml.ScalarNode, Value: k, Line: v.Line}, &v)
	}
	return err
}

// node is the YAML node it is decoded from.
type node struct{ *yaml.Node }

// UnmarshalYAML keeps n.
func (d *node) UnmarshalYAML(n *yaml.Node) error {
	d.Node = n
	return nil
}

// decodeSections decodes the sink's other keys: the section of its type
// into s.Section, those of other types to be refused by validation. It
// returns what the strict decoder would have reported, in its words: keys
// that are no type's, and unknown keys or bad values within sections.
func (s *Sink) decodeSections(types []SinkType) ([]string, error) {
	problems := s.problems
	for i := 0; i+1 < len(s.extra); i += 2 {
		k, v := s.extra[i], s.extra[i+1]
		t, ok := lookup(types, k.Value)
		if !ok || t.NewSection == nil {
			problems = append(problems, fmt.Sprintf("line %d: field %s not found in type %T", k.Line, k.Value, *s))
			continue
		}
		if v.Tag == "!!null" {
			continue // "s3:" with nothing below is no section
		}
		sec := t.NewSection()
		var terr *yaml.TypeError
		if err := v.Decode(sec); errors.As(err, &terr) {
			problems = append(problems, terr.Errors...)
		} else if err != nil {
			return nil, err
		}
		problems = append(problems, unknownFields(v, reflect.TypeOf(sec))...)
		if k.Value == s.Type {
			s.Section = sec
		} else {
			s.misplaced = append(s.misplaced, k.Value)
		}
	}
	s.extra, s.problems = nil, nil
	return problems, nil
}

var (
	unmarshalerType         = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshalerType = reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]()
)

// unknownFields reports the keys of n that no field of t takes, as yaml's
// strict decoder does: Node.Decode, which decodes a sink's section, is
// not strict (go-yaml/yaml#460).
func unknownFields(n *yaml.Node, t reflect.Type) []string {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || pt.Implements(obsoleteUnmarshalerType) {
		return nil
	}
	var out []string
	switch t.Kind() {
	case reflect.Pointer:
		return unknownFields(n, t.Elem())
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				out = append(out, unknownFields(c, t.Elem())...)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				out = append(out, unknownFields(n.Content[i], t.Elem())...)
			}
		}
	case reflect.Struct:
		fields, open := yamlFields(t)
		if n.Kind != yaml.MappingNode || open {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if ft, ok := fields[k.Value]; ok {
				out = append(out, unknownFields(n.Content[i+1], ft)...)
			} else if k.Value != "<<" {
				out = append(out, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
			}
		}
	}
	return out
}

// yamlFields returns the types of t's fields by YAML key, as yaml names
// them, and whether t takes any key (an inline map).
func yamlFields(t reflect.Type) (map[string]reflect.Type, bool) {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			if f.Type.Kind() == reflect.Map {
				return nil, true
			}
			inner, open := yamlFields(f.Type)
			if open {
				return nil, true
			}
			for k, v := range inner {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, false
}

// lookup returns the sink type called name.
func lookup(types []SinkType, name string) (SinkType, bool) {
	i := slices.IndexFunc(types, func(t SinkType) bool { return t.Name == name })
	if i < 0 {
		return SinkType{}, false
	}
	return types[i], true
}

// sinkType returns the sink type called name in the table the
// configuration was parsed with.
func (c *Config) sinkType(name string) (SinkType, bool) { return lookup(c.schema.SinkTypes, name) }

// validateSink checks sinks[i]; names holds the names of the sinks
// before it.
func (c *Config) validateSink(i int, names map[string]bool) error {
	s := &c.Sinks[i]
	key := fmt.Sprintf("sinks[%d]", i)
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(key+"."+format, a...)) }
	typ, known := c.sinkType(s.Type)
	if !known {
		var all []string
		for _, t := range c.schema.SinkTypes {
			all = append(all, t.Name)
		}
		add("type must be one of %s, got %q", strings.Join(all, ", "), s.Type)
	}
	if names[s.Name] {
		add("name %q is used by another sink", s.Name)
	}
	names[s.Name] = true
	if strings.ContainsAny(s.Name, "/\\ ") {
		add("name %q must not contain slashes or spaces", s.Name)
	}
	if s.Batch.MaxEvents < 1 {
		add("batch.maxEvents must be positive")
	}
	if s.Batch.MaxBytes < 1 {
		add("batch.maxBytes must be positive")
	}
	if s.Batch.FlushInterval <= 0 {
		add("batch.flushInterval must be positive")
	}
	if s.Retry.InitialInterval <= 0 || s.Retry.MaxInterval < s.Retry.InitialInterval {
		add("retry.initialInterval must be positive and not above retry.maxInterval")
	}
	if s.MaxInFlight < 0 {
		add("maxInFlight must not be negative")
	}
	validateDrop(s.Drop, add)
	for _, m := range s.misplaced {
		add("%s is only valid for type %s", m, m)
	}
	switch {
	case s.Section != nil:
		errs = append(errs, s.Section.Validate(key+"."+s.Type))
	case known && typ.NewSection != nil:
		add("%s section is required for type %s", s.Type, s.Type)
	}
	return errors.Join(errs...)
}

// validateDrop checks a sink's drop rules.
func validateDrop(drop []DropRule, add func(string, ...any)) {
	rules := map[string]bool{}
	for i, r := range drop {
		rk := fmt.Sprintf("drop[%d]", i)
		if r.Name == "" {
			add("%s.name is required", rk)
		} else if rules[r.Name] {
			add("%s.name %q is used by another rule", rk, r.Name)
		}
		rules[r.Name] = true
		if len(r.Verbs)+len(r.Resources)+len(r.Namespaces)+len(r.Users) == 0 {
			add("%s (%s) matches every event; give it verbs, resources, namespaces or users", rk, r.Name)
		}
		for field, pats := range map[string][]string{"verbs": r.Verbs, "resources": r.Resources, "namespaces": r.Namespaces, "users": r.Users} {
			for j, p := range pats {
				if _, err := path.Match(p, ""); err != nil {
					add("%s.%s[%d] (rule %s): bad pattern %q", rk, field, j, r.Name, p)
				}
			}
		}
	}
}
