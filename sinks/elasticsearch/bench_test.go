package elasticsearch

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// BenchmarkBulkBody measures building the _bulk body of a 5000-event
// batch: action lines with ids, @timestamp and agent fields spliced into
// each event.
func BenchmarkBulkBody(b *testing.B) {
	srv := estest.New()
	defer srv.Close()
	cfg := Config{Addresses: []string{srv.URL}, Index: "bench", Cluster: "prod", Node: "master-1", AgentVersion: "v1"}
	cfg.ApplyDefaults()
	s, err := New(context.Background(), "es", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	batch := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 5000, 1)...)
	items := make([]item, len(batch.Records))
	for i := range batch.Records {
		items[i] = item{rec: &batch.Records[i]}
	}
	var body bytes.Buffer
	b.SetBytes(int64(batch.Bytes))
	b.ReportAllocs()
	for b.Loop() {
		body.Reset()
		for _, it := range items {
			s.appendItem(&body, it)
		}
	}
}
