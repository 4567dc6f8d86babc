package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/auditrail/auditrail/sinks"
)

// ReadAnchors returns the anchor records (sinks.AnchorRecord) in the
// sink's topic, every partition from its first offset to its end: the
// chain heads of the agent's S3 sinks, for `auditrail verify --anchors`.
// It reads the records the sink marked with the anchor kind header.
func ReadAnchors(ctx context.Context, cfg Config) ([]sinks.AnchorRecord, error) {
	s, err := New(ctx, "anchors", cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	defer s.Close(ctx)
	first, last, err := s.offsets(ctx)
	if err != nil {
		return nil, fmt.Errorf("read anchors: %w", err)
	}
	if len(last) == 0 {
		return nil, fmt.Errorf("read anchors: %w", &missingTopic{cfg.Topic})
	}
	var out []sinks.AnchorRecord
	for p, end := range last {
		err := s.scanPartition(ctx, p, first[p], end, func(r kafka.Record) error {
			if !isAnchor(r.Headers) || r.Value == nil {
				return nil
			}
			v, err := io.ReadAll(r.Value)
			if err != nil {
				return err
			}
			if a, ok := sinks.ParseAnchor(v); ok {
				out = append(out, a)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read anchors: %w", err)
		}
	}
	return out, nil
}

func isAnchor(hs []kafka.Header) bool {
	for _, h := range hs {
		if h.Key == "auditrail-kind" {
			return string(h.Value) == sinks.KindAnchor.String()
		}
	}
	return false
}
