package elasticsearch

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/tlsconfig"
	"github.com/auditrail/auditrail/internal/units"
)

// Config configures the Elasticsearch sink.
type Config struct {
	// Addresses of the cluster's nodes, e.g. https://es-1:9200.
	Addresses []string `yaml:"addresses"`
	// Index receives the events: a data stream name (the default,
	// logs-kubernetes.audit-default) or an index name in which a Go time
	// layout in braces is replaced by the event's UTC date, e.g.
	// k8s-audit-{2006.01.02}.
	Index string `yaml:"index"`
	// DeadLetterIndex receives, wrapped, the records Elasticsearch rejects
	// for good (mapping errors): the raw line as a string and the error.
	DeadLetterIndex string `yaml:"deadLetterIndex"`
	// InstallTemplate installs an index template with a mapping for audit
	// events, matching Index, at start.
	InstallTemplate bool `yaml:"installTemplate"`
	// Compression gzips request bodies.
	Compression bool `yaml:"compression"`
	// Username and Password for basic authentication, APIKey (the base64
	// form), or BearerToken (a service account token). Use ${ENV}
	// references rather than literal secrets.
	Username    string           `yaml:"username"`
	Password    string           `yaml:"password"`
	APIKey      string           `yaml:"apiKey"`
	BearerToken string           `yaml:"bearerToken"`
	TLS         tlsconfig.Config `yaml:"tls"`
	// AllowInsecure accepts credentials over http://, where anyone on the
	// path reads them and the events. Every insecure setting is logged at
	// start, allowed or not.
	AllowInsecure bool `yaml:"allowInsecure"`
	// RequestTimeout bounds one bulk request.
	RequestTimeout units.Duration `yaml:"requestTimeout"`
	// Cluster and Node are added to every document under "auditrail",
	// with the agent's version, so the SIEM can tell sources apart.
	Cluster string `yaml:"cluster"`
	Node    string `yaml:"node"`
	// AgentVersion is set by the agent, not the configuration.
	AgentVersion string `yaml:"-"`
	// ItemRetry paces items rejected with 429 or 5xx, which are retried
	// alone, within the same write: while some items get through, the
	// wait between rounds is ItemRetryInitial times the fraction rejected;
	// rounds that get nothing through back off, doubling to ItemRetryMax.
	ItemRetryInitial units.Duration `yaml:"itemRetryInitial"`
	ItemRetryMax     units.Duration `yaml:"itemRetryMax"`
	// MaxInFlightRequests bounds the bulk requests a write has in flight
	// at once: a batch is split into that many requests (of at least 64
	// items), and items rejected with 429 wait out their pacing while
	// the other requests go on. 1 sends one request at a time.
	MaxInFlightRequests int `yaml:"maxInFlightRequests"`
	// Format is the layout of the documents: auditrail (the event as
	// written, with @timestamp and the auditrail field) or
	// elastic-kubernetes (the Elastic Kubernetes integration's, in the
	// data stream logs-kubernetes.audit_logs-<DataStreamNamespace>, which
	// Elastic Security's Kubernetes rules query).
	Format string `yaml:"format"`
	// DataStreamNamespace is the namespace part of the data stream with
	// format elastic-kubernetes: default unless set.
	DataStreamNamespace string `yaml:"dataStreamNamespace"`
}

// Defaults.
const (
	DefaultIndex           = "logs-kubernetes.audit-default"
	DefaultDeadLetterIndex = "auditrail-dead-letter"
	// DefaultMaxInFlightRequests keeps a busy cluster's partial
	// rejections from slowing the sink by more than half; more requests
	// at once cost the node CPU and the cluster bulk threads.
	DefaultMaxInFlightRequests = 4
	maxMaxInFlightRequests     = 32
)

// ApplyDefaults fills empty fields.
func (c *Config) ApplyDefaults() {
	if c.Format == "" {
		c.Format = FormatAuditrail
	}
	if c.Format == FormatElasticKubernetes && c.DataStreamNamespace == "" {
		c.DataStreamNamespace = "default"
	}
	if c.Index == "" && c.Format == FormatElasticKubernetes {
		c.Index = c.elasticIndex()
	}
	if c.Index == "" {
		c.Index = DefaultIndex
	}
	if c.DeadLetterIndex == "" {
		c.DeadLetterIndex = DefaultDeadLetterIndex
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = units.Duration(time.Minute)
	}
	if c.ItemRetryInitial == 0 {
		c.ItemRetryInitial = units.Duration(100 * time.Millisecond)
	}
	if c.ItemRetryMax == 0 {
		c.ItemRetryMax = units.Duration(2 * time.Second)
	}
	if c.MaxInFlightRequests == 0 {
		c.MaxInFlightRequests = DefaultMaxInFlightRequests
	}
}

// elasticIndex is the data stream of format elastic-kubernetes.
func (c *Config) elasticIndex() string {
	return "logs-" + elasticDataset + "-" + c.DataStreamNamespace
}

// hasCredentials reports whether requests to u carry credentials.
func (c *Config) hasCredentials(u *url.URL) bool {
	return c.Username != "" || c.APIKey != "" || c.BearerToken != "" || u.User != nil
}

// Insecure describes the settings that expose the events or credentials,
// each with its key below the section.
func (c *Config) Insecure() []string {
	var out []string
	for i, a := range c.Addresses {
		if u, err := url.Parse(a); err == nil && u.Scheme == "http" {
			what := "events in cleartext"
			if c.hasCredentials(u) {
				what = "events and credentials in cleartext"
			}
			out = append(out, fmt.Sprintf("addresses[%d]: http://, %s", i, what))
		}
	}
	if c.TLS.InsecureSkipVerify {
		out = append(out, "tls.insecureSkipVerify: the server's certificate is not verified")
	}
	return out
}

// Validate checks the config. prefix is the YAML path of the section.
func (c *Config) Validate(prefix string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+format, a...)) }
	if len(c.Addresses) == 0 {
		add("addresses: at least one address is required")
	}
	for i, a := range c.Addresses {
		// Not quoted: an address may hold a password.
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("addresses[%d] must start with http:// or https:// and be a URL with a host", i)
		} else if u.Scheme == "http" && c.hasCredentials(u) && !c.AllowInsecure {
			add("addresses[%d] is http:// and credentials are set: use https:// or set allowInsecure: true", i)
		}
	}
	for _, ix := range []struct{ k, v string }{{"index", c.Index}, {"deadLetterIndex", c.DeadLetterIndex}} {
		if ix.v != strings.ToLower(ix.v) || strings.ContainsAny(ix.v, " \"*\\/,|<>?#") {
			add("%s %q is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#)", ix.k, ix.v)
		}
		if strings.Count(ix.v, "{") != strings.Count(ix.v, "}") {
			add("%s %q has unbalanced braces", ix.k, ix.v)
		}
	}
	n := 0
	for _, set := range []bool{c.Username != "", c.APIKey != "", c.BearerToken != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		add("use only one of username/password, apiKey and bearerToken")
	}
	if c.Password != "" && c.Username == "" {
		add("password needs username")
	}
	if c.RequestTimeout <= 0 {
		add("requestTimeout must be positive")
	}
	if c.ItemRetryInitial <= 0 || c.ItemRetryMax < c.ItemRetryInitial {
		add("itemRetryInitial must be positive and not above itemRetryMax")
	}
	switch c.Format {
	case FormatAuditrail:
		if c.DataStreamNamespace != "" {
			add("dataStreamNamespace is only valid with format: %s", FormatElasticKubernetes)
		}
	case FormatElasticKubernetes:
		// Elasticsearch's rules for a data stream's namespace.
		ns := c.DataStreamNamespace
		if ns != strings.ToLower(ns) || len(ns) > 100 || strings.ContainsAny(ns, "-\\/*?\"<>| ,#:") {
			add("dataStreamNamespace %q must be lowercase, at most 100 bytes, without - \\ / * ? \" < > | , # : or spaces", ns)
		}
		if c.Index != c.elasticIndex() {
			add("index %q: leave it unset with format: %s, which writes to %s (set dataStreamNamespace)", c.Index, FormatElasticKubernetes, c.elasticIndex())
		}
	default:
		add("format %q must be %s or %s", c.Format, FormatAuditrail, FormatElasticKubernetes)
	}
	if c.MaxInFlightRequests < 1 || c.MaxInFlightRequests > maxMaxInFlightRequests {
		add("maxInFlightRequests must be between 1 and %d, not %d", maxMaxInFlightRequests, c.MaxInFlightRequests)
	}
	errs = append(errs, c.TLS.Validate(prefix+".tls"))
	return errors.Join(errs...)
}
