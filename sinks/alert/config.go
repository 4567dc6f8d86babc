package alert

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/tlsconfig"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks/kafka"
)

// Config is the alerts section: which rules run and where their alerts
// go.
type Config struct {
	// Builtin turns the built-in rules on (default true); Disable turns
	// single ones off by id.
	Builtin *bool    `yaml:"builtin"`
	Disable []string `yaml:"disable"`
	// Rules are the user's own rules.
	Rules []rules.Spec `yaml:"rules"`
	// TagRecords adds the ids of the rules an event matched to its
	// Elasticsearch document and Kafka message (default true).
	TagRecords *bool `yaml:"tagRecords"`
	// RateLimit bounds the alerts of one rule and user per destination;
	// what it holds back is counted and reported in the next alert of the
	// rule and user.
	RateLimit RateLimit `yaml:"rateLimit"`
	// FlushInterval is how long matching events may wait before they are
	// evaluated; alerts leave within it of the line being read.
	FlushInterval units.Duration `yaml:"flushInterval"`
	// Cluster and Node name the source in every alert.
	Cluster string `yaml:"cluster"`
	Node    string `yaml:"node"`
	// Destinations each read the audit log at their own cursor: one that
	// is down delays neither the others nor the sinks.
	Destinations []Destination `yaml:"destinations"`
}

// RateLimit is a token bucket per rule and user: Burst alerts at once,
// refilled at Burst per Interval.
type RateLimit struct {
	Burst    int            `yaml:"burst"`
	Interval units.Duration `yaml:"interval"`
}

// Destination is one receiver of alerts.
type Destination struct {
	Name string `yaml:"name"`
	// Type is webhook, slack or kafka.
	Type string `yaml:"type"`
	// URL of the webhook or Slack-compatible incoming webhook. It is a
	// secret for Slack and never logged.
	URL string `yaml:"url"`
	// Secret signs webhook bodies with HMAC-SHA256 (see README).
	Secret string `yaml:"secret"`
	// Headers are added to every webhook request, e.g. Authorization.
	Headers map[string]string `yaml:"headers"`
	Timeout units.Duration    `yaml:"timeout"`
	TLS     *tlsconfig.Config `yaml:"tls"`
	// AllowInsecure accepts a secret, headers or a Slack URL over http://,
	// where anyone on the path reads them. Every insecure setting is
	// logged at start, allowed or not.
	AllowInsecure bool `yaml:"allowInsecure"`
	// Kafka is the producer configuration for type kafka, as for the
	// Kafka sink.
	Kafka *kafka.Config `yaml:"kafka"`
}

// MinSecretBytes is the shortest webhook secret accepted: 256 bits, as
// long as the HMAC-SHA256 key it becomes, e.g. openssl rand -hex 16 or more.
const MinSecretBytes = 32

// Insecure describes the destination's settings that expose alerts or
// credentials, or let anyone forge alerts, each with its key below the
// destination.
func (d *Destination) Insecure() []string {
	var out []string
	if d.Type == "kafka" {
		if d.Kafka != nil {
			for _, s := range d.Kafka.Insecure() {
				out = append(out, "kafka."+s)
			}
		}
		return out
	}
	if u, err := url.Parse(d.URL); err == nil && u.Scheme == "http" {
		out = append(out, "url: http://, alerts in cleartext")
	}
	if d.Type == "webhook" && d.Secret == "" {
		out = append(out, "secret: not set, the receiver cannot tell our alerts from forged ones")
	}
	if d.TLS != nil && d.TLS.InsecureSkipVerify {
		out = append(out, "tls.insecureSkipVerify: the receiver's certificate is not verified")
	}
	return out
}

// Insecure describes the destinations' settings that expose alerts or
// credentials, or let anyone forge alerts, each with its key below the
// section.
func (c *Config) Insecure() []string {
	var out []string
	for i := range c.Destinations {
		for _, s := range c.Destinations[i].Insecure() {
			out = append(out, fmt.Sprintf("destinations[%d].%s", i, s))
		}
	}
	return out
}

// CheckNames checks that no destination reads the log under the name of
// a sink, as isSink reports it: they would share a cursor. key is the
// section's YAML path.
func (c *Config) CheckNames(key string, isSink func(name string) bool) error {
	var errs []error
	for i, d := range c.Destinations {
		if isSink(SinkName(d.Name)) {
			errs = append(errs, fmt.Errorf("%s.destinations[%d].name %q: its cursor name %q is a sink's name", key, i, d.Name, SinkName(d.Name)))
		}
	}
	return errors.Join(errs...)
}

// DestinationTypes are the alert destinations this build knows.
var DestinationTypes = []string{"webhook", "slack", "kafka"}

// SinkName is the name under which a destination reads the log, in
// checkpoints and metrics.
func SinkName(dest string) string { return "alert-" + dest }

// Enabled reports whether alerts are delivered anywhere.
func (c *Config) Enabled() bool { return len(c.Destinations) > 0 }

// ApplyDefaults fills empty fields.
func (c *Config) ApplyDefaults() {
	if c.Builtin == nil {
		t := true
		c.Builtin = &t
	}
	if c.TagRecords == nil {
		t := true
		c.TagRecords = &t
	}
	if c.RateLimit.Burst == 0 {
		c.RateLimit.Burst = 10
	}
	if c.RateLimit.Interval == 0 {
		c.RateLimit.Interval = units.Duration(time.Minute)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = units.Duration(200 * time.Millisecond)
	}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		if d.Name == "" {
			d.Name = d.Type
		}
		if d.Timeout == 0 {
			d.Timeout = units.Duration(5 * time.Second)
		}
		if d.Kafka != nil {
			d.Kafka.ApplyDefaults()
		}
	}
}

// RuleSet compiles the configured rules.
func (c *Config) RuleSet() (*rules.Set, error) {
	return rules.NewSet(c.Builtin == nil || *c.Builtin, c.Disable, c.Rules)
}

// Validate checks the section. prefix is its YAML path.
func (c *Config) Validate(prefix string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+format, a...)) }
	if _, err := c.RuleSet(); err != nil {
		for _, e := range unjoin(err) {
			add("%v", e)
		}
	}
	if c.RateLimit.Burst < 1 || c.RateLimit.Interval <= 0 {
		add("rateLimit: burst must be at least 1 and interval positive")
	}
	if c.FlushInterval <= 0 || time.Duration(c.FlushInterval) > time.Second {
		add("flushInterval must be positive and at most 1s")
	}
	names := map[string]bool{}
	for i := range c.Destinations {
		d := &c.Destinations[i]
		dk := fmt.Sprintf("destinations[%d]", i)
		if names[d.Name] {
			add("%s.name %q is used by another destination", dk, d.Name)
		}
		names[d.Name] = true
		if strings.ContainsAny(d.Name, "/\\ ") {
			add("%s.name %q must not contain slashes or spaces", dk, d.Name)
		}
		switch d.Type {
		case "webhook", "slack":
			u, err := url.Parse(d.URL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add("%s.url must be an http or https URL", dk)
			} else if u.Scheme == "http" && !d.AllowInsecure && (d.Type == "slack" || d.Secret != "" || len(d.Headers) > 0 || u.User != nil) {
				add("%s.url is http:// and a secret or headers are set (a Slack URL is one): use https:// or set allowInsecure: true", dk)
			}
			if d.Type == "webhook" && d.Secret != "" && len(d.Secret) < MinSecretBytes {
				add("%s.secret must be at least %d bytes", dk, MinSecretBytes)
			}
			if d.Kafka != nil {
				add("%s.kafka is only valid for type kafka", dk)
			}
			if d.Type == "slack" && d.Secret != "" {
				add("%s.secret is only valid for type webhook: Slack authenticates by the URL", dk)
			}
			if d.TLS != nil {
				if err := d.TLS.Validate(prefix + "." + dk + ".tls"); err != nil {
					errs = append(errs, err)
				}
			}
		case "kafka":
			if d.Kafka == nil {
				add("%s.kafka section is required for type kafka", dk)
			} else if err := d.Kafka.Validate(prefix + "." + dk + ".kafka"); err != nil {
				errs = append(errs, err)
			}
			if d.URL != "" || d.Secret != "" || len(d.Headers) > 0 {
				add("%s: url, secret and headers are only valid for webhook and slack", dk)
			}
		default:
			add("%s.type must be one of %s, got %q", dk, strings.Join(DestinationTypes, ", "), d.Type)
		}
		if d.Timeout <= 0 {
			add("%s.timeout must be positive", dk)
		}
	}
	return errors.Join(errs...)
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
