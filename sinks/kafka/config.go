package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/tlsconfig"
	"github.com/auditrail/auditrail/internal/units"
)

// Config configures the Kafka sink.
type Config struct {
	// Brokers to bootstrap from, host:port.
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Compression: zstd (default), lz4, snappy, gzip or none.
	Compression string `yaml:"compression"`
	// Cluster and Node are sent as headers on every message.
	Cluster string `yaml:"cluster"`
	Node    string `yaml:"node"`
	// AgentVersion is set by the agent, not the configuration; it is sent
	// as the agent-version header.
	AgentVersion string `yaml:"-"`
	// MaxMessageBytes is the largest message the topic accepts (the
	// broker's message.max.bytes). A longer line is replaced by a stub that
	// names it (auditID, size, SHA-256, source position); the whole line
	// stays in the S3 and file sinks.
	MaxMessageBytes units.ByteSize `yaml:"maxMessageBytes"`
	// AutoCreateTopic lets the brokers create the topic on first use (if
	// they allow it). Off by default: a missing topic is a startup error.
	AutoCreateTopic bool `yaml:"autoCreateTopic"`
	// TLS turns on TLS; its fields are as for every sink.
	TLS *tlsconfig.Config `yaml:"tls"`
	// SASL authentication.
	SASL SASLConfig `yaml:"sasl"`
	// AllowInsecure accepts SASL without TLS, which sends PLAIN passwords
	// as they are and exposes SCRAM exchanges and every record. Every
	// insecure setting is logged at start, allowed or not.
	AllowInsecure bool `yaml:"allowInsecure"`
	// Format of the audit events in message values: "audit" (default), as
	// kube-apiserver wrote them, or "ocsf", as OCSF API Activity events
	// (internal/ocsf). Keys and headers are the same in both.
	Format string `yaml:"format"`
	// RequestTimeout bounds one produce attempt.
	RequestTimeout units.Duration `yaml:"requestTimeout"`
	// StateDir is where the sink keeps its intent (see doc.go); set by the
	// agent, not the configuration. Empty: nothing is kept, and a batch
	// written again after a restart may be duplicated.
	StateDir string `yaml:"-"`
	// AckLag is how long the agent may take to record a batch the sink
	// acknowledged (its checkpoint interval); set by the agent. The sink
	// can find again, after a crash, every batch acknowledged within
	// 2*AckLag+5s.
	AckLag time.Duration `yaml:"-"`
}

// SASLConfig selects a SASL mechanism.
type SASLConfig struct {
	// Mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM; empty
	// for none.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
	// Region for AWS_MSK_IAM; credentials come from the standard AWS
	// chain.
	Region string `yaml:"region"`
}

// ApplyDefaults fills empty fields.
func (c *Config) ApplyDefaults() {
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 1 << 20
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = units.Duration(30 * time.Second)
	}
	c.SASL.Mechanism = strings.ToUpper(c.SASL.Mechanism)
}

// Insecure describes the settings that expose the records or credentials,
// each with its key below the section.
func (c *Config) Insecure() []string {
	var out []string
	switch {
	case c.TLS == nil && c.SASL.Mechanism != "":
		out = append(out, "tls: not set, records and SASL "+c.SASL.Mechanism+" in cleartext")
	case c.TLS == nil:
		out = append(out, "tls: not set, records in cleartext")
	case c.TLS.InsecureSkipVerify:
		out = append(out, "tls.insecureSkipVerify: the brokers' certificates are not verified")
	}
	return out
}

// Validate checks the config. prefix is the YAML path of the section.
func (c *Config) Validate(prefix string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+format, a...)) }
	if len(c.Brokers) == 0 {
		add("brokers: at least one broker is required")
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") || strings.Contains(b, "://") {
			add("brokers[%d] must be host:port, got %q", i, b)
		}
	}
	if c.Topic == "" {
		add("topic is required")
	}
	switch c.Compression {
	case "zstd", "lz4", "snappy", "gzip", "none":
	default:
		add("compression must be zstd, lz4, snappy, gzip or none, got %q", c.Compression)
	}
	if c.Format != "" && c.Format != "audit" && c.Format != "ocsf" {
		add("format must be audit or ocsf, got %q", c.Format)
	}
	if c.MaxMessageBytes < 16<<10 {
		add("maxMessageBytes must be at least 16KiB")
	}
	if c.RequestTimeout <= 0 {
		add("requestTimeout must be positive")
	}
	switch c.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASL.Username == "" || c.SASL.Password == "" {
			add("sasl.username and sasl.password are required for %s", c.SASL.Mechanism)
		}
	case "AWS_MSK_IAM":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			add("sasl.username and sasl.password are not used with AWS_MSK_IAM (credentials come from the AWS chain)")
		}
	default:
		add("sasl.mechanism must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM, got %q", c.SASL.Mechanism)
	}
	if c.SASL.Mechanism != "" && c.TLS == nil && !c.AllowInsecure {
		add("sasl: %s without tls sends credentials in cleartext: set tls or allowInsecure: true", c.SASL.Mechanism)
	}
	if c.TLS != nil {
		errs = append(errs, c.TLS.Validate(prefix+".tls"))
	}
	return errors.Join(errs...)
}
