// Package config loads and validates the agent's YAML configuration.
//
// Decoding is strict: an unknown key is an error that names it. ${VAR} and
// ${VAR:-default} are expanded in string values after parsing, so secrets
// can come from the environment without being able to change the YAML's
// structure. Every section is validated and all errors are reported
// together, each quoting its key.
package config

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/units"
	"gopkg.in/yaml.v3"
)

// Default is the embedded configuration used when no file is given: follow
// kube-apiserver's usual audit log path into a local file sink.
//
//go:embed default.yaml
var Default []byte

// Config is the whole configuration.
type Config struct {
	// AuditLogPath is kube-apiserver's --audit-log-path.
	AuditLogPath string `yaml:"auditLogPath"`
	// StateDir holds checkpoints and dead-letter files.
	StateDir           string         `yaml:"stateDir"`
	MaxLineBytes       units.ByteSize `yaml:"maxLineBytes"`
	PollInterval       units.Duration `yaml:"pollInterval"`
	CheckpointInterval units.Duration `yaml:"checkpointInterval"`
	// HeartbeatInterval is how long a sink may go without a record before
	// it is sent a heartbeat record.
	HeartbeatInterval units.Duration `yaml:"heartbeatInterval"`
	DrainTimeout      units.Duration `yaml:"drainTimeout"`
	MaxOpenFiles      int            `yaml:"maxOpenFiles"`
	// StartAt is where to start when there is no checkpoint: beginning or
	// end.
	StartAt string     `yaml:"startAt"`
	Log     LogConfig  `yaml:"log"`
	HTTP    HTTPConfig `yaml:"http"`
	Sinks   []Sink     `yaml:"sinks"`
	// Alerts configures detection rules and where their alerts go.
	Alerts Alerts `yaml:"alerts"`

	// vars names the environment variables the configuration refers to.
	vars []string
	// schema is what the configuration was parsed with.
	schema Schema
}

// LogConfig configures the agent's own logs.
type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// HTTPConfig configures the metrics and health listener.
type HTTPConfig struct {
	// Address to listen on for /metrics, /healthz and /readyz, e.g.
	// "127.0.0.1:9808" or "${POD_IP}:9808". Empty disables the listener.
	// An address without a host (":9808") listens on every interface,
	// which on the host network means every address of the node; the
	// agent warns about it at start.
	Address string `yaml:"address"`
	// Pprof serves Go's runtime profiles under /debug/pprof/ on a listener
	// of its own at PprofAddress, never on Address. Off by default:
	// profiles cost CPU while they are taken and show the process's memory.
	Pprof bool `yaml:"pprof"`
	// PprofAddress is a loopback address (default 127.0.0.1:6060).
	PprofAddress string `yaml:"pprofAddress"`
}

// validate checks the listeners' addresses.
func (h *HTTPConfig) validate(add func(string, ...any)) {
	if h.Address != "" {
		if _, _, err := net.SplitHostPort(h.Address); err != nil {
			add("http.address must be host:port, e.g. 127.0.0.1:9808, got %q", h.Address)
		}
	}
	if h.Pprof && !isLoopback(h.PprofAddress) {
		add("http.pprofAddress must be a loopback address (127.0.0.1 or [::1]) with a port, got %q", h.PprofAddress)
	}
}

// Insecure lists the settings that expose events or credentials to the
// network, or let anyone forge alerts, each as "key: why". Validation
// refuses credentials in cleartext unless the section sets allowInsecure;
// the agent logs every entry at start, allowed or not.
func (c *Config) Insecure() []string {
	var out []string
	if listensEverywhere(c.HTTP.Address) {
		out = append(out, "http.address: no host, listens on every interface (on the host network, every address of the node)")
	}
	prefixed := func(key string, l []string) {
		for _, s := range l {
			out = append(out, key+"."+s)
		}
	}
	for i, s := range c.Sinks {
		if in, ok := s.Section.(interface{ Insecure() []string }); ok {
			prefixed(fmt.Sprintf("sinks[%d].%s", i, s.Type), in.Insecure())
		}
	}
	if in, ok := c.Alerts.AlertsSection.(interface{ Insecure() []string }); ok {
		prefixed("alerts", in.Insecure())
	}
	return out
}

// isLoopback reports whether addr is host:port with a loopback host.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listensEverywhere reports whether addr has no host or an unspecified one
// (0.0.0.0, ::): a listener on every interface.
func listensEverywhere(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// Load reads the file at path, or the embedded default if path is empty,
// with schema (sinks/registry.Schema).
func Load(path string, schema Schema) (*Config, error) {
	if path == "" {
		return Parse(Default, schema)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b, schema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes, expands, defaults and validates a configuration. A sink's
// type must be one of schema's, and its section decodes into the type's;
// the alerts section decodes into schema's.
func Parse(b []byte, schema Schema) (*Config, error) { return ParseWith(b, schema, nil) }

// ParseWith is Parse with a hook that may override values (command-line
// flags) after decoding and before defaults and validation. Its errors
// show no value taken from the environment (see Unexpand).
func ParseWith(b []byte, schema Schema, override func(*Config) error) (*Config, error) {
	vars := units.Variables(string(b))
	c, err := parse(b, schema, override)
	if err != nil {
		return nil, unexpand(vars, err)
	}
	c.vars = vars
	return c, nil
}

// Unexpand returns err with every value the configuration took from the
// environment written back as the reference to its variable, ${NAME}:
// such a value may be a secret (a password, a token, a URL that holds
// one), and an error that quotes a key's value reaches the logs. Use it on
// errors that may quote configured values.
func (c *Config) Unexpand(err error) error { return unexpand(c.vars, err) }

// unexpand replaces the values of vars in err's text by their references.
func unexpand(vars []string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if out := envReplacer(vars).Replace(msg); out != msg {
		return errors.New(out)
	}
	return err
}

// envReplacer replaces the values of vars, raw or escaped as %q escapes
// them, by ${NAME}. Every value is replaced, however short: that may
// garble a message whose words a value matches, but shows no part of a
// secret.
func envReplacer(vars []string) *strings.Replacer {
	var pairs [][2]string
	for _, name := range vars {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			continue // ${NAME:-default} took the default, written in the file
		}
		ref := "${" + name + "}"
		pairs = append(pairs, [2]string{v, ref})
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			pairs = append(pairs, [2]string{q[1 : len(q)-1], ref})
		}
	}
	// The longest first, so that a value holding another is replaced whole.
	sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i][0]) > len(pairs[j][0]) })
	args := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		args = append(args, p[0], p[1])
	}
	return strings.NewReplacer(args...)
}

func parse(b []byte, schema Schema, override func(*Config) error) (*Config, error) {
	c := &Config{schema: schema}
	if schema.NewAlerts != nil {
		c.Alerts.AlertsSection = schema.NewAlerts()
	}
	if err := c.decode(b); err != nil {
		return nil, err
	}
	if err := expandStrings(reflect.ValueOf(c).Elem(), ""); err != nil {
		return nil, err
	}
	for i, s := range c.Sinks {
		if s.Section != nil {
			if err := expandStrings(reflect.ValueOf(s.Section), fmt.Sprintf("sinks[%d].%s", i, s.Type)); err != nil {
				return nil, err
			}
		}
	}
	if override != nil {
		if err := override(c); err != nil {
			return nil, err
		}
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode decodes b strictly: every key unknown to the configuration, to
// the table of sink types or to a sink type's section is an error, and
// they are reported together in yaml's words.
func (c *Config) decode(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var terr *yaml.TypeError
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) && !errors.As(err, &terr) {
		return fmt.Errorf("config: %w", err)
	}
	var problems []string
	if terr != nil {
		problems = terr.Errors
	}
	for i := range c.Sinks {
		p, err := c.Sinks[i].decodeSections(c.schema.SinkTypes)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b string) int { return cmp.Compare(problemLine(a), problemLine(b)) })
		return fmt.Errorf("config: %w", &yaml.TypeError{Errors: problems})
	}
	return nil
}

// problemLine returns the line of a problem the decoder reported, "line
// N: ...", or 0.
func problemLine(p string) int {
	var n int
	fmt.Sscanf(p, "line %d:", &n)
	return n
}

// expandStrings expands environment references in every string field,
// naming the key on error.
func expandStrings(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return expandStrings(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		var errs []error
		for i := 0; i < v.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if name == "-" || !t.Field(i).IsExported() {
				continue // not from the file, or a sink's Section (see parse)
			}
			p := name
			if t.Field(i).Anonymous {
				p = path // Alerts' section
			} else if path != "" {
				p = path + "." + name
			}
			errs = append(errs, expandStrings(v.Field(i), p))
		}
		return errors.Join(errs...)
	case reflect.Slice:
		var errs []error
		for i := 0; i < v.Len(); i++ {
			errs = append(errs, expandStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i)))
		}
		return errors.Join(errs...)
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if v.MapIndex(k).Kind() == reflect.String {
				s, err := units.Expand(v.MapIndex(k).String())
				if err != nil {
					return fmt.Errorf("%s.%v: %w", path, k, err)
				}
				v.SetMapIndex(k, reflect.ValueOf(s))
			}
		}
	case reflect.String:
		s, err := units.Expand(v.String())
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		v.SetString(s)
	}
	return nil
}

func (c *Config) applyDefaults() {
	setDefault(&c.StateDir, "/var/lib/auditrail")
	setDefault(&c.MaxLineBytes, 16<<20)
	setDefault(&c.PollInterval, units.Duration(time.Second))
	setDefault(&c.CheckpointInterval, units.Duration(time.Second))
	setDefault(&c.HeartbeatInterval, units.Duration(time.Minute))
	setDefault(&c.DrainTimeout, units.Duration(25*time.Second))
	setDefault(&c.MaxOpenFiles, 64)
	setDefault(&c.StartAt, "beginning")
	setDefault(&c.HTTP.PprofAddress, "127.0.0.1:6060")
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "json")
	if c.Alerts.AlertsSection == nil && c.schema.NewAlerts != nil {
		c.Alerts.AlertsSection = c.schema.NewAlerts() // "alerts:" with nothing below
	}
	if c.Alerts.AlertsSection != nil {
		c.Alerts.ApplyDefaults()
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		setDefault(&s.Name, s.Type)
		typ, _ := c.sinkType(s.Type)
		setDefault(&s.Batch.MaxEvents, cmp.Or(typ.Batch.MaxEvents, defaultBatch.MaxEvents))
		setDefault(&s.Batch.MaxBytes, cmp.Or(typ.Batch.MaxBytes, defaultBatch.MaxBytes))
		setDefault(&s.Batch.FlushInterval, cmp.Or(typ.Batch.FlushInterval, defaultBatch.FlushInterval))
		setDefault(&s.Retry.InitialInterval, units.Duration(100*time.Millisecond))
		setDefault(&s.Retry.MaxInterval, units.Duration(30*time.Second))
		// maxInFlight defaults to 0: the reader fills the next batch while
		// the writer writes one and hands it over directly, which keeps
		// the writer busy, as the reader fills batches faster than any
		// sink takes them.
		if s.RedactSecrets == nil {
			t := true
			s.RedactSecrets = &t
		}
		if s.Section == nil && typ.SectionOptional {
			s.Section = typ.NewSection()
		}
		if s.Section != nil {
			s.Section.ApplyDefaults()
			if r, ok := s.Section.(interface{ ResolvePaths(stateDir string) }); ok {
				r.ResolvePaths(c.StateDir)
			}
		}
	}
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// validate checks every section and reports all problems together.
func (c *Config) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.AuditLogPath == "" {
		add("auditLogPath is required (kube-apiserver's --audit-log-path)")
	} else if !filepath.IsAbs(c.AuditLogPath) {
		add("auditLogPath must be an absolute path, got %q", c.AuditLogPath)
	}
	if c.MaxLineBytes < 4<<10 {
		add("maxLineBytes must be at least 4KiB")
	}
	for _, d := range []struct {
		key string
		v   units.Duration
	}{{"pollInterval", c.PollInterval}, {"checkpointInterval", c.CheckpointInterval}, {"drainTimeout", c.DrainTimeout}} {
		if d.v <= 0 {
			add("%s must be positive", d.key)
		}
	}
	if c.HeartbeatInterval < units.Duration(time.Second) {
		add("heartbeatInterval must be at least 1s")
	}
	if c.MaxOpenFiles < 1 {
		add("maxOpenFiles must be at least 1")
	}
	c.HTTP.validate(add)
	if c.StartAt != "beginning" && c.StartAt != "end" {
		add("startAt must be beginning or end, got %q", c.StartAt)
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		add("log.level must be debug, info, warn or error, got %q", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "json", "text") {
		add("log.format must be json or text, got %q", c.Log.Format)
	}
	if len(c.Sinks) == 0 {
		add("sinks: at least one sink is required")
	}
	names := map[string]bool{}
	for i := range c.Sinks {
		errs = append(errs, c.validateSink(i, names))
	}
	if c.Alerts.AlertsSection != nil {
		errs = append(errs, c.Alerts.Validate("alerts"), c.Alerts.CheckNames("alerts", func(n string) bool { return names[n] }))
	}
	return errors.Join(errs...)
}

func oneOf(s string, opts ...string) bool {
	for _, o := range opts {
		if s == o {
			return true
		}
	}
	return false
}
