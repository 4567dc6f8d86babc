package kafka

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/auditrail/auditrail/internal/benchcorpus"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// shapeLines is the number of lines in a partition's record batch in
// BenchmarkCodecShapes: about a third of the agent's 2 MiB batch, what
// each of the three partitions of the live benchmark's topic gets per
// flush at 5 MB/s (746 KB on average).
const shapeLines = 530

// BenchmarkCodecShapes says where the Kafka sink's compression cost comes
// from, per GB of lines (cpu-s/GB, CPU time of the process), on record
// batches of shapeLines lines with the sink's keys and headers:
//
//   - lines: the lines alone, each followed by a newline, as the S3 sink
//     compresses them, with the same encoder settings;
//   - records: the record batch as kafka-go encodes it through the sink's
//     codec, a few bytes at a time (what the sink sends);
//   - traversal: the same through a codec that discards what it is given:
//     kafka-go's own cost;
//   - records-collected: the same through a codec that collects the
//     pieces and gives them to the encoder in one write at Close;
//   - records-one-write: the records, uncompressed, in one write;
//   - without-headers, constant-id: the same with no headers, or with a
//     constant auditrail-id of the same length. Neither is sent: they
//     measure what the headers, and the randomness of the line sums, cost.
//
// bytes/line-byte is the size of what is compressed per byte of lines,
// ratio the line bytes per compressed byte. With AUDITRAIL_BENCH_CORPUS
// set, the lines are the corpus's first 10,600, else sinktest events.
func BenchmarkCodecShapes(b *testing.B) {
	useZstdCodec()
	lines := benchcorpus.Lines(b, 20*shapeLines)
	if lines == nil {
		lines = sinktest.Events(0, 20*shapeLines, 1)
	}
	var batches []*shapeBatch
	for i := 0; i+shapeLines <= len(lines); i += shapeLines {
		batches = append(batches, newShapeBatch(b, lines[i:i+shapeLines]))
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(256<<10), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		b.Fatal(err)
	}
	oneWrite := func(raw func(*shapeBatch) []byte) func(*shapeBatch, io.Writer) {
		return func(x *shapeBatch, w io.Writer) {
			enc.Reset(w)
			enc.Write(raw(x))
			if err := enc.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	recordSet := func(x *shapeBatch, w io.Writer) {
		if _, err := x.recordSet(compress.Zstd).WriteTo(w); err != nil {
			b.Fatal(err)
		}
	}
	nl := []byte{'\n'}
	for _, c := range []struct {
		name  string
		codec compress.Codec
		run   func(*shapeBatch, io.Writer)
		raw   func(*shapeBatch) []byte
	}{
		{name: "lines", run: func(x *shapeBatch, w io.Writer) {
			enc.Reset(w)
			for _, l := range x.lines {
				enc.Write(l)
				enc.Write(nl)
			}
			if err := enc.Close(); err != nil {
				b.Fatal(err)
			}
		}, raw: func(x *shapeBatch) []byte { return x.raw }},
		{name: "records", run: recordSet, raw: func(x *shapeBatch) []byte { return x.records }},
		{name: "traversal", codec: discardCodec{}, run: recordSet, raw: func(x *shapeBatch) []byte { return x.records }},
		{name: "records-collected", codec: &collectCodec{enc: enc}, run: recordSet, raw: func(x *shapeBatch) []byte { return x.records }},
		{name: "records-one-write", raw: func(x *shapeBatch) []byte { return x.records }},
		{name: "without-headers", raw: func(x *shapeBatch) []byte { return x.noHeaders }},
		{name: "constant-id", raw: func(x *shapeBatch) []byte { return x.constantID }},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.codec != nil {
				orig := compress.Codecs[compress.Zstd]
				compress.Codecs[compress.Zstd] = c.codec
				defer func() { compress.Codecs[compress.Zstd] = orig }()
			}
			run := c.run
			if run == nil {
				run = oneWrite(c.raw)
			}
			var in, raw int
			var out countingWriter
			cpu := cpuTime()
			for i := 0; b.Loop(); i++ {
				x := batches[i%len(batches)]
				run(x, &out)
				in += x.bytes
				raw += len(c.raw(x))
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(in), "cpu-s/GB")
			b.ReportMetric(float64(raw)/float64(in), "bytes/line-byte")
			if _, ok := c.codec.(discardCodec); !ok {
				b.ReportMetric(float64(in)/float64(out), "ratio")
			}
		})
	}
}

// shapeBatch is one partition's batch in the shapes BenchmarkCodecShapes
// compresses.
type shapeBatch struct {
	lines [][]byte
	bytes int
	// keys, values and headers are the sink's messages; records the
	// record set kafka-go writes of them reuses.
	keys, values [][]byte
	headers      [][]protocol.Header
	recs         []protocol.Record
	// raw holds the lines, each followed by a newline; records, noHeaders
	// and constantID the uncompressed records of the record batch, with
	// the sink's headers, with none, and with a constant auditrail-id.
	raw, records, noHeaders, constantID []byte
}

func newShapeBatch(b *testing.B, lines []string) *shapeBatch {
	s := &Sink{cluster: []byte("prod"), node: []byte("master-1"), version: []byte("v1"), cfg: Config{MaxMessageBytes: 1 << 20}}
	batch := sinktest.Batch(sinktest.File(1), 0, lines...)
	x := &shapeBatch{bytes: batch.Bytes, recs: make([]protocol.Record, len(lines))}
	for i := range batch.Records {
		r := &batch.Records[i]
		m := s.message(r)
		x.lines = append(x.lines, r.Line)
		x.raw = append(append(x.raw, r.Line...), '\n')
		x.keys, x.values = append(x.keys, m.Key), append(x.values, m.Value)
		hs := make([]protocol.Header, len(m.Headers))
		for j, h := range m.Headers {
			hs[j] = protocol.Header{Key: h.Key, Value: h.Value}
		}
		x.headers = append(x.headers, hs)
	}
	uncompressed := func() []byte {
		var out bytes.Buffer
		if _, err := x.recordSet(0).WriteTo(&out); err != nil {
			b.Fatal(err)
		}
		return out.Bytes()[4+61:] // the records, after the size and the batch header
	}
	x.records = uncompressed()
	full := x.headers
	constant := bytes.Repeat([]byte{'0'}, 64)
	x.headers = make([][]protocol.Header, len(full))
	for i, hs := range full {
		x.headers[i] = append([]protocol.Header{{Key: hs[0].Key, Value: constant}}, hs[1:]...)
	}
	x.constantID = uncompressed()
	x.headers = make([][]protocol.Header, len(full))
	x.noHeaders = uncompressed()
	x.headers = full
	return x
}

// recordSet returns the batch as a record set compressed with codec.
func (x *shapeBatch) recordSet(codec compress.Compression) *protocol.RecordSet {
	for i := range x.recs {
		x.recs[i] = protocol.Record{Time: time.Unix(1, 0), Key: protocol.NewBytes(x.keys[i]),
			Value: protocol.NewBytes(x.values[i]), Headers: x.headers[i]}
	}
	return &protocol.RecordSet{Version: 2, Attributes: protocol.Attributes(codec), Records: protocol.NewRecordReader(x.recs...)}
}

type countingWriter int

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}

// discardCodec stands in for zstd and discards what it is given.
type discardCodec struct{}

func (discardCodec) Code() int8                        { return int8(compress.Zstd) }
func (discardCodec) Name() string                      { return "zstd" }
func (discardCodec) NewReader(io.Reader) io.ReadCloser { return nil }
func (discardCodec) NewWriter(io.Writer) io.WriteCloser {
	return nopWriteCloser{}
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

// collectCodec is a zstd codec that collects what it is given and
// compresses it at Close, with one encoder: one writer at a time.
type collectCodec struct {
	enc *zstd.Encoder
	w   io.Writer
	buf []byte
}

func (c *collectCodec) Code() int8                        { return int8(compress.Zstd) }
func (c *collectCodec) Name() string                      { return "zstd" }
func (c *collectCodec) NewReader(io.Reader) io.ReadCloser { return nil }
func (c *collectCodec) NewWriter(w io.Writer) io.WriteCloser {
	c.w, c.buf = w, c.buf[:0]
	return c
}
func (c *collectCodec) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	return len(p), nil
}
func (c *collectCodec) Close() error {
	c.enc.Reset(c.w)
	c.enc.Write(c.buf)
	return c.enc.Close()
}
