package elasticsearch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// BenchmarkBulkBody measures building the _bulk body of a 5000-event
// batch: action lines with ids, @timestamp and agent fields spliced into
// each event (format auditrail), or each event rebuilt in the Elastic
// Kubernetes integration's layout (format elastic-kubernetes).
func BenchmarkBulkBody(b *testing.B) {
	for _, format := range []string{FormatAuditrail, FormatElasticKubernetes} {
		b.Run("format="+format, func(b *testing.B) {
			srv := estest.New()
			defer srv.Close()
			cfg := Config{Addresses: []string{srv.URL}, Format: format, Cluster: "prod", Node: "master-1", AgentVersion: "v1"}
			if format == FormatAuditrail {
				cfg.Index = "bench"
			}
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
			var scratch []byte
			b.SetBytes(int64(batch.Bytes))
			b.ReportAllocs()
			for b.Loop() {
				body.Reset()
				for _, it := range items {
					scratch = s.appendItem(&body, it, scratch)
				}
			}
		})
	}
}

// BenchmarkWriteRejected measures the events a second the sink delivers
// to the estest server in 1,000-event batches, with every item accepted
// and with half the items, every other one received, answered 429 on
// every attempt, one request at a time and with the default requests in
// flight: compare the two rates of one inflight value in one run
// (docs/benchmarks.md says how).
func BenchmarkWriteRejected(b *testing.B) {
	for _, tc := range []struct {
		inflight int
		rejected bool
	}{{1, false}, {1, true}, {DefaultMaxInFlightRequests, false}, {DefaultMaxInFlightRequests, true}} {
		inflight, rejected := tc.inflight, tc.rejected
		b.Run(fmt.Sprintf("inflight=%d/half429=%v", inflight, rejected), func(b *testing.B) {
			s := benchSink(b, inflight, rejected)
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

// BenchmarkRejectedRatio measures the ratio BenchmarkWriteRejected
// compares, on a busy machine: each iteration writes one 1,000-event batch
// to a server that accepts every item and one to a server that answers
// 429 to every other item it receives, so that both see the same load,
// and reports both rates and their ratio.
func BenchmarkRejectedRatio(b *testing.B) {
	for _, inflight := range []int{1, DefaultMaxInFlightRequests} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			var sinks [2]*Sink
			for i, rejected := range []bool{false, true} {
				sinks[i] = benchSink(b, inflight, rejected)
			}
			var took [2]time.Duration
			events := 0
			for i := 0; b.Loop(); i++ {
				batch := sinktest.Batch(sinktest.File(1), int64(i)<<32, sinktest.Events(i*1000, 1000, 1)...)
				for j, s := range sinks {
					start := time.Now()
					if err := s.Write(context.Background(), batch); err != nil {
						b.Fatal(err)
					}
					took[j] += time.Since(start)
				}
				events += len(batch.Records)
			}
			free, half := float64(events)/took[0].Seconds(), float64(events)/took[1].Seconds()
			b.ReportMetric(free, "free-events/s")
			b.ReportMetric(half, "half429-events/s")
			b.ReportMetric(half/free, "ratio")
		})
	}
}

// benchSink returns a sink with inflight requests to a test server of its
// own, closed with the benchmark, that answers 429 to every other item it
// receives when rejected is set.
func benchSink(b *testing.B, inflight int, rejected bool) *Sink {
	b.Helper()
	srv := estest.New()
	b.Cleanup(srv.Close)
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
	cfg := Config{Addresses: []string{srv.URL}, Index: "bench", MaxInFlightRequests: inflight}
	cfg.ApplyDefaults()
	s, err := New(context.Background(), "es", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return s
}
