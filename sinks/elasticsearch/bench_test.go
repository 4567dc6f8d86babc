package elasticsearch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
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

// BenchmarkWriteRejected measures the events a second the sink delivers
// to the estest server in 1,000-event batches, with every item accepted
// and with half the items, every other one received, answered 429 on
// every attempt: compare the two in one run.
func BenchmarkWriteRejected(b *testing.B) {
	for _, rejected := range []bool{false, true} {
		b.Run(fmt.Sprintf("half429=%v", rejected), func(b *testing.B) {
			srv := estest.New()
			defer srv.Close()
			if rejected {
				var mu sync.Mutex
				n := 0
				srv.FailItems(func(_, _ string) int {
					mu.Lock()
					defer mu.Unlock()
					if n++; n%2 == 0 {
						return 429
					}
					return 0
				})
			}
			cfg := Config{Addresses: []string{srv.URL}, Index: "bench"}
			cfg.ApplyDefaults()
			s, err := New(context.Background(), "es", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			events := 0
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				batch := sinktest.Batch(sinktest.File(1), int64(i)<<32, sinktest.Events(i*1000, 1000, 1)...)
				b.StartTimer()
				if err := s.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
				events += len(batch.Records)
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
