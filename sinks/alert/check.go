package alert

import (
	"context"

	"github.com/auditrail/auditrail/sinks"
)

var _ sinks.Checker = (*Sink)(nil)

// Check implements sinks.Checker: a Kafka destination's topic must exist;
// webhooks have nothing to check before the first alert.
func (s *Sink) Check(ctx context.Context) error {
	if k, ok := s.dest.(*kafkaDest); ok {
		return k.k.Check(ctx)
	}
	return nil
}
