package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go/compress"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// BenchmarkMessages measures turning a 5000-event batch into Kafka
// messages: key, headers and the oversize check.
func BenchmarkMessages(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Brokers: c.ListenAddrs(), Topic: topic, Cluster: "prod", Node: "master-1", AgentVersion: "v1"}
	cfg.ApplyDefaults()
	s, err := New(context.Background(), "kafka", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	batch := sinktest.Batch(sinktest.File(1), 0, sinktest.Events(0, 5000, 1)...)
	b.SetBytes(int64(batch.Bytes))
	b.ReportAllocs()
	for b.Loop() {
		s.msgs, s.keys, s.headers = s.msgs[:0], s.keys[:0], s.headers[:0] // as Write does
		for i := range batch.Records {
			s.msgs = append(s.msgs, s.message(&batch.Records[i]))
		}
	}
}

// BenchmarkZstdCodec measures compressing a 1 MiB producer batch with the
// codec the sink installs.
func BenchmarkZstdCodec(b *testing.B) {
	useZstdCodec()
	codec := compress.Zstd.Codec()
	var raw bytes.Buffer
	for _, l := range sinktest.Events(0, 400, 1) {
		raw.WriteString(l)
	}
	var out bytes.Buffer
	b.SetBytes(int64(raw.Len()))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		w := codec.NewWriter(&out)
		w.Write(raw.Bytes())
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(raw.Len())/float64(out.Len()), "ratio")
}
