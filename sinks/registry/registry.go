// Package registry is the table of sink types: the one place that names
// them. A sink type is its folder under sinks/ (the sink, its Config with
// ApplyDefaults and Validate) and one entry in Types; the configuration
// (internal/config) decodes a sink's section into the type the entry
// gives, and the command builds sinks with the entry's New.
//
// The table lives here, not in internal/config, so that the configuration
// imports no sink, and not in the command, so that whatever parses a
// configuration (the command, its tests, the end-to-end tests) parses it
// with the same table.
package registry

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/alert"
	"github.com/auditrail/auditrail/sinks/discard"
	"github.com/auditrail/auditrail/sinks/elasticsearch"
	"github.com/auditrail/auditrail/sinks/file"
	"github.com/auditrail/auditrail/sinks/kafka"
	"github.com/auditrail/auditrail/sinks/s3"
	"github.com/prometheus/client_golang/prometheus"
)

// Type is one sink type: what the configuration knows of it (name,
// section, batch defaults) and how to build one.
type Type struct {
	config.SinkType
	// New builds a sink called name from its section, which is nil for a
	// type without one.
	New func(ctx context.Context, name string, sec config.Section, env Env) (sinks.Sink, error)
	// TagRecords: the type's records carry the ids of the alert rules
	// their event matched, when alerts.tagRecords is on.
	TagRecords bool
	// LineSums: the type keys events by the SHA-256 of their line
	// (sinks.AppendID), so the agent hashes the lines its sinks share
	// once for all of them (agent.SinkOptions.LineSums). Only a cost: a
	// type that keys by line without saying so gets the same keys.
	LineSums bool
	// ReadAnchors reads back the anchor records a sink of the type wrote
	// (auditrail verify --anchors); nil for a type that keeps none.
	ReadAnchors func(ctx context.Context, sec config.Section) ([]sinks.AnchorRecord, error)
}

// Env is what the agent gives every sink besides its section.
type Env struct {
	// StateDir is the agent's state directory.
	StateDir string
	// CheckpointInterval is how long the agent may take to record a batch
	// a sink acknowledged.
	CheckpointInterval time.Duration
	// Version is the agent's.
	Version    string
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// Types are the sink types this build knows, in the order the
// configuration's errors list them.
var Types = []Type{
	{
		SinkType: config.SinkType{Name: "file", NewSection: section[file.Config], SectionOptional: true},
		New: typed(func(_ context.Context, name string, c file.Config, _ Env) (sinks.Sink, error) {
			return sink(file.New(name, c))
		}),
		ReadAnchors: anchors(func(_ context.Context, c file.Config) ([]sinks.AnchorRecord, error) {
			return file.ReadAnchors(c.Directory)
		}),
	},
	{
		// S3 makes few large objects.
		SinkType: config.SinkType{Name: "s3", NewSection: section[s3.Config],
			Batch: config.BatchConfig{MaxEvents: 1 << 20, MaxBytes: 4 << 20, FlushInterval: units.Duration(5 * time.Second)}},
		New: typed(func(ctx context.Context, name string, c s3.Config, env Env) (sinks.Sink, error) {
			c.StateDir = env.StateDir
			return sink(s3.New(ctx, name, c, env.Log, env.Registerer))
		}),
	},
	{
		SinkType: config.SinkType{Name: "elasticsearch", NewSection: section[elasticsearch.Config]},
		New: typed(func(ctx context.Context, name string, c elasticsearch.Config, env Env) (sinks.Sink, error) {
			c.AgentVersion = env.Version
			return sink(elasticsearch.New(ctx, name, c, env.Log, env.Registerer))
		}),
		TagRecords:  true,
		LineSums:    true,
		ReadAnchors: anchors(elasticsearch.ReadAnchors),
	},
	{
		SinkType: config.SinkType{Name: "kafka", NewSection: section[kafka.Config]},
		New: typed(func(ctx context.Context, name string, c kafka.Config, env Env) (sinks.Sink, error) {
			c.AgentVersion = env.Version
			c.StateDir, c.AckLag = env.StateDir, env.CheckpointInterval
			return sink(kafka.New(ctx, name, c, env.Log, env.Registerer))
		}),
		TagRecords:  true,
		LineSums:    true,
		ReadAnchors: anchors(kafka.ReadAnchors),
	},
	{
		SinkType: config.SinkType{Name: "discard"},
		New: func(_ context.Context, name string, _ config.Section, _ Env) (sinks.Sink, error) {
			return discard.New(name), nil
		},
	},
}

// Schema returns the configuration's view of Types and the alerts
// section, for config.Parse.
func Schema() config.Schema {
	out := make([]config.SinkType, len(Types))
	for i, t := range Types {
		out[i] = t.SinkType
	}
	return config.Schema{SinkTypes: out, NewAlerts: func() config.AlertsSection { return &alert.Config{} }}
}

// Alerts returns the configuration's alerts section.
func Alerts(c *config.Config) *alert.Config { return c.Alerts.AlertsSection.(*alert.Config) }

// Lookup returns the type called name.
func Lookup(name string) (Type, bool) {
	i := slices.IndexFunc(Types, func(t Type) bool { return t.Name == name })
	if i < 0 {
		return Type{}, false
	}
	return Types[i], true
}

// AlertDelivery returns how an alert destination (alerts.destinations)
// reads the log: its batches, retries and one batch at a time, as a
// sink's settings.
func AlertDelivery(a *alert.Config) config.Sink {
	redact := true
	return config.Sink{
		Batch: config.BatchConfig{MaxEvents: 5000, MaxBytes: 4 << 20, FlushInterval: a.FlushInterval},
		Retry: config.RetryConfig{InitialInterval: units.Duration(100 * time.Millisecond), MaxInterval: units.Duration(10 * time.Second)},
		// One batch at a time: its alerts must be delivered before the
		// next batch is evaluated.
		MaxInFlight:   1,
		RedactSecrets: &redact,
	}
}

// section returns a new empty section of type C.
func section[C any, P interface {
	*C
	config.Section
}]() config.Section {
	return P(new(C))
}

// typed adapts a constructor that takes its section by value.
func typed[C any](f func(context.Context, string, C, Env) (sinks.Sink, error)) func(context.Context, string, config.Section, Env) (sinks.Sink, error) {
	return func(ctx context.Context, name string, sec config.Section, env Env) (sinks.Sink, error) {
		return f(ctx, name, *any(sec).(*C), env)
	}
}

// anchors adapts an anchor reader that takes its section by value.
func anchors[C any](f func(context.Context, C) ([]sinks.AnchorRecord, error)) func(context.Context, config.Section) ([]sinks.AnchorRecord, error) {
	return func(ctx context.Context, sec config.Section) ([]sinks.AnchorRecord, error) {
		return f(ctx, *any(sec).(*C))
	}
}

// sink returns s as a sinks.Sink, nil (not a nil *S) on error.
func sink[S sinks.Sink](s S, err error) (sinks.Sink, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}
