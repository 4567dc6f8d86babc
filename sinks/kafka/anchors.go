package kafka

import (
	"context"
	"errors"
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
	c := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: s.tr}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{cfg.Topic}})
	if err != nil {
		return nil, fmt.Errorf("read anchors: metadata: %w", err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Name != cfg.Topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("read anchors: topic %s: %w", cfg.Topic, codeOnly(t.Error))
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("read anchors: %w", &missingTopic{cfg.Topic})
	}
	offs, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{cfg.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("read anchors: list offsets: %w", err)
	}
	var out []sinks.AnchorRecord
	for _, p := range offs.Topics[cfg.Topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("read anchors: partition %d: %w", p.Partition, codeOnly(p.Error))
		}
		if out, err = readPartitionAnchors(ctx, c, cfg.Topic, p.Partition, p.FirstOffset, p.LastOffset, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readPartitionAnchors fetches offsets [from, to) of one partition.
func readPartitionAnchors(ctx context.Context, c *kafka.Client, topic string, partition int, from, to int64, out []sinks.AnchorRecord) ([]sinks.AnchorRecord, error) {
	for off := from; off < to; {
		res, err := c.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: off, MaxBytes: 16 << 20})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return nil, fmt.Errorf("read anchors: fetch partition %d at %d: %w", partition, off, codeOnly(err))
		}
		next := off
		for {
			r, err := res.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read anchors: partition %d at %d: %w", partition, next, err)
			}
			if r.Offset < off {
				continue
			}
			next = r.Offset + 1
			if !isAnchor(r.Headers) {
				continue
			}
			v, err := io.ReadAll(r.Value)
			if err != nil {
				return nil, fmt.Errorf("read anchors: partition %d at %d: %w", partition, r.Offset, err)
			}
			if a, ok := sinks.ParseAnchor(v); ok {
				out = append(out, a)
			}
		}
		if next == off {
			return nil, fmt.Errorf("read anchors: partition %d: no records at offset %d of %d", partition, off, to)
		}
		off = next
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
