package verify

import (
	"context"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/elasticsearch"
	"github.com/auditrail/auditrail/sinks/file"
	"github.com/auditrail/auditrail/sinks/kafka"
)

// AnchorSource is a destination the agent published its chain heads to
// (sinks.AnchorRecord), for Options.Anchors. Exactly one field is set.
type AnchorSource struct {
	Kafka         *kafka.Config
	Elasticsearch *elasticsearch.Config
	// Dir is a file sink's directory.
	Dir string
}

// Read reads back the anchor records the source holds, with the reader of
// its sink.
func (a AnchorSource) Read(ctx context.Context) ([]sinks.AnchorRecord, error) {
	switch {
	case a.Kafka != nil:
		return kafka.ReadAnchors(ctx, *a.Kafka)
	case a.Elasticsearch != nil:
		return elasticsearch.ReadAnchors(ctx, *a.Elasticsearch)
	}
	return file.ReadAnchors(a.Dir)
}
