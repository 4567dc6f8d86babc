// Package discard implements a sink that acknowledges every batch without
// storing it. It exists to measure the agent's own cost.
package discard

import (
	"context"

	"github.com/auditrail/auditrail/sinks"
)

var _ sinks.Sink = (*Sink)(nil)

// Sink is the discard sink.
type Sink struct{ name string }

// New returns a discard sink.
func New(name string) *Sink { return &Sink{name: name} }

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// Write acknowledges b at once.
func (s *Sink) Write(context.Context, *sinks.Batch) error { return nil }

// Close implements sinks.Sink.
func (s *Sink) Close(context.Context) error { return nil }
