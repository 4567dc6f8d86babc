package kafka

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditrail/auditrail/internal/benchcorpus"
	"github.com/auditrail/auditrail/sinks"
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
	cpu := cpuTime()
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
	// CPU time, not wall time: the machine is shared.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/float64(batch.Bytes), "cpu-s/GB")
}

// BenchmarkWrite measures one 1000-event batch written to a three-broker
// kfake cluster in the same process, per op: latency (ns/op), the CPU of
// the whole process (cpu-ns/op, brokers included), and the intent's cost:
// snapshots of the end offsets (ListOffsets) and intent files written
// (each two fsyncs) per batch. "window" is the sink as configured by the
// agent; "per-batch" moves the intent before every batch (keep 0), the
// design that fsyncs and lists offsets once per batch.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name string
		keep time.Duration
	}{{"window", 0}, {"per-batch", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := benchSink(b)
			if bc.keep < 0 {
				s.keep = 0
			}
			lines := sinktest.Events(0, 1000, 1)
			var off int64
			batch := func() *sinks.Batch {
				x := sinktest.Batch(sinktest.File(1), off, lines...)
				off = x.Segments[0].End
				return x
			}
			if err := s.Write(context.Background(), batch()); err != nil { // connections, metadata, first intent
				b.Fatal(err)
			}
			intents, snaps := testutil.ToFloat64(s.intents), testutil.ToFloat64(s.listOffsets)
			cpu := cpuTime()
			b.ResetTimer()
			for range b.N {
				if err := s.Write(context.Background(), batch()); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric((testutil.ToFloat64(s.intents)-intents)/float64(b.N), "intents/op")
			b.ReportMetric((testutil.ToFloat64(s.listOffsets)-snaps)/float64(b.N), "snapshots/op")
		})
	}
}

// benchSink returns a sink as the agent configures it, on a three-broker
// cluster of its own; both are closed with b.
func benchSink(b *testing.B) (*Sink, *kfake.Cluster) {
	c := cluster(b)
	cfg := Config{Brokers: c.ListenAddrs(), Topic: topic, Cluster: "prod", Node: "master-1", AgentVersion: "v1",
		StateDir: b.TempDir(), AckLag: time.Second}
	cfg.ApplyDefaults()
	s, err := New(context.Background(), "kafka", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	return s, c
}

// BenchmarkReadBack measures the read-back after a restart: a window of
// 20,000 records on three partitions, read and matched by a new sink
// writing the last 1000 again.
func BenchmarkReadBack(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, topic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Brokers: c.ListenAddrs(), Topic: topic, StateDir: b.TempDir()}
	cfg.ApplyDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(context.Background(), "kafka", cfg, log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	var last *sinks.Batch
	var off int64
	for i := range 20 {
		last = sinktest.Batch(sinktest.File(1), off, sinktest.Events(i*1000, 1000, 1)...)
		off = last.Segments[0].End
		if err := s.Write(context.Background(), last); err != nil {
			b.Fatal(err)
		}
	}
	s.Close(context.Background())
	cpu := cpuTime()
	b.ResetTimer()
	for range b.N {
		r, err := New(context.Background(), "kafka", cfg, log, prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Write(context.Background(), last); err != nil {
			b.Fatal(err)
		}
		if v := testutil.ToFloat64(r.skipped); v != 1000 {
			b.Fatalf("skipped %v, want 1000", v)
		}
		b.ReportMetric(testutil.ToFloat64(r.readRecords), "records-read")
		r.Close(context.Background())
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSaveIntent measures writing the intent alone: a temporary file,
// fsync, rename, fsync of the directory.
func BenchmarkSaveIntent(b *testing.B) {
	path := intentPath(b.TempDir(), "kafka")
	in := &intent{Version: intentVersion, Topic: topic, Start: snapshot{At: time.Now(), Offsets: map[int32]int64{0: 1 << 40, 1: 1 << 40, 2: 1 << 40}}}
	for b.Loop() {
		if err := saveIntent(path, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProducers compares the sink's producer (kafka-go's Writer,
// through Write: messages, intent, produce) with franz-go's kgo producer
// sending the same messages (key, value and headers as the sink makes
// them; acks from all in-sync replicas, zstd at the fastest level, the
// Java client's murmur2 partitioning, idempotent), 1000 records per batch
// to a three-broker kfake cluster in the same process. cpu-s/GB is the CPU
// of the whole process, brokers included, per GB of lines. With
// AUDITRAIL_BENCH_CORPUS set, the records are the corpus's first lines.
func BenchmarkProducers(b *testing.B) {
	lines := benchcorpus.Lines(b, 1000)
	if lines == nil {
		lines = sinktest.Events(0, 1000, 1)
	}
	for _, name := range []string{"kafka-go", "franz-go"} {
		b.Run(name, func(b *testing.B) {
			s, c := benchSink(b)
			var off int64
			batch := func() *sinks.Batch {
				x := sinktest.Batch(sinktest.File(1), off, lines...)
				off = x.Segments[0].End
				return x
			}
			write := s.Write
			if name == "franz-go" {
				write = franzWriter(b, c.ListenAddrs(), s)
			}
			if err := write(context.Background(), batch()); err != nil { // connections, metadata
				b.Fatal(err)
			}
			var bytes int
			cpu := cpuTime()
			b.ResetTimer()
			for range b.N {
				x := batch()
				bytes += x.Bytes
				if err := write(context.Background(), x); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu)/float64(bytes), "cpu-s/GB")
		})
	}
}

// franzWriter returns a Write that sends the messages s makes of a batch
// with a kgo producer and waits for every acknowledgement.
func franzWriter(b *testing.B, brokers []string, s *Sink) func(context.Context, *sinks.Batch) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	var recs []*kgo.Record
	return func(ctx context.Context, x *sinks.Batch) error {
		s.keys, s.headers, recs = s.keys[:0], s.headers[:0], recs[:0]
		for i := range x.Records {
			m := s.message(&x.Records[i])
			r := &kgo.Record{Key: m.Key, Value: m.Value, Headers: make([]kgo.RecordHeader, len(m.Headers))}
			for j, h := range m.Headers {
				r.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
			recs = append(recs, r)
		}
		return cl.ProduceSync(ctx, recs...).FirstErr()
	}
}
