package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditrail/auditrail/internal/benchcorpus"
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

// BenchmarkRecordBatch measures what the producer does to a batch of the
// sink's messages for one partition: kafka-go encodes each record, a few
// bytes at a time, through the compression codec. With
// AUDITRAIL_BENCH_CORPUS set to an audit log, the records are its first
// 700 lines (a 1 MB batch at the corpus's mean size), else sinktest events.
func BenchmarkRecordBatch(b *testing.B) {
	useZstdCodec()
	lines := benchcorpus.Lines(b, 700)
	if lines == nil {
		lines = sinktest.Events(0, 700, 1)
	}
	s := &Sink{cluster: []byte("prod"), node: []byte("master-1"), version: []byte("v1"), cfg: Config{MaxMessageBytes: 1 << 20}}
	batch := sinktest.Batch(sinktest.File(1), 0, lines...)
	msgs := make([]kafka.Message, len(batch.Records))
	headers := make([][]protocol.Header, len(batch.Records))
	for i := range batch.Records {
		msgs[i] = s.message(&batch.Records[i])
		for _, h := range msgs[i].Headers {
			headers[i] = append(headers[i], protocol.Header{Key: h.Key, Value: h.Value})
		}
	}
	records := make([]protocol.Record, len(msgs))
	var out bytes.Buffer
	b.SetBytes(int64(batch.Bytes))
	b.ReportAllocs()
	for b.Loop() {
		out.Reset()
		for i, m := range msgs {
			records[i] = protocol.Record{Time: time.Unix(1, 0), Key: protocol.NewBytes(m.Key), Value: protocol.NewBytes(m.Value), Headers: headers[i]}
		}
		rs := protocol.RecordSet{Version: 2, Attributes: protocol.Attributes(compress.Zstd), Records: protocol.NewRecordReader(records...)}
		if _, err := rs.WriteTo(&out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch.Bytes)/float64(out.Len()), "ratio")
}
