package sinks_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/benchcorpus"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// The batch shapes of BenchmarkFloor: what each sink handles at once when
// the agent follows a live log at 5 MB/s with the default settings (S3's
// 4 MiB objects, Elasticsearch's and Kafka's 2 MiB batches, Kafka's split
// over the three partitions of the benchmark topic).
const (
	floorS3Object   = 4 << 20
	floorESBulk     = 2 << 20
	floorKafkaBatch = 700 << 10
)

// BenchmarkFloor measures, per GB of audit log lines, the work that
// shipping every line to S3 (zstd), Elasticsearch and Kafka (zstd) cannot
// avoid, each part alone and done once, the cheapest way this machine
// knows, with the agent's codec settings and batch sizes:
//
//   - read: reading the log from the page cache in 1 MiB reads, which
//     the agent does once for all sinks;
//   - extract: the fields the agent routes on (internal/auditjson);
//   - sha256-line: the SHA-256 of every line, once (Elasticsearch's _id
//     and Kafka's auditrail-id);
//   - sha256-s3-records: the SHA-256 of an S3 object's records;
//   - zstd-s3: an S3 object (4 MiB of lines) through the fastest zstd
//     level with a 256 KiB window, as sinks/s3 compresses it;
//   - sha256-s3-object: the SHA-256 of the compressed object (its
//     checksum for Object Lock);
//   - kafka-records: building a partition's record batch, uncompressed:
//     varint framing, the auditID key, the line, the sink's ten headers;
//   - zstd-kafka: that record batch (700 KiB of lines) through the same
//     zstd settings in one write, the cheapest way to feed the encoder;
//   - es-bulk-body: building the _bulk body (action line and line);
//   - tcp-es, tcp-kafka, tcp-s3: writing the _bulk body, the compressed
//     record batches and the compressed objects to a TCP connection on
//     127.0.0.1, one write per request.
//
// Each part runs on a thread of its own and is timed with that thread's
// CPU time (RUSAGE_THREAD), so that the garbage collector, the reader of
// the TCP connection and the rest of the machine are not in it; the sum of
// the parts is the floor for the three sinks. What it leaves out is not
// free (reading the file, batching, HTTP, the Kafka protocol,
// acknowledgements, state files): it is what an implementation can make
// small.
//
// With AUDITRAIL_BENCH_CORPUS naming an audit log, the lines are its first
// 64 MB, else sinktest events (written to a temporary file for read).
func BenchmarkFloor(b *testing.B) {
	c := newFloorCorpus(b)
	parts := []struct {
		name string
		run  func(*floorCorpus) func(int) int
	}{
		{"read", floorRead},
		{"extract", floorExtract},
		{"sha256-line", floorLineSums},
		{"sha256-s3-records", floorRecordsSum},
		{"zstd-s3", floorZstdS3},
		{"sha256-s3-object", floorObjectSum},
		{"kafka-records", floorKafkaRecords},
		{"zstd-kafka", floorZstdKafka},
		{"es-bulk-body", floorBulkBody},
		{"tcp-es", floorTCPES},
		{"tcp-kafka", floorTCPKafka},
		{"tcp-s3", floorTCPS3},
	}
	for _, p := range parts {
		b.Run(p.name, func(b *testing.B) {
			step := p.run(c)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var bytes int
			cpu := threadCPU()
			for i := 0; b.Loop(); i++ {
				bytes += step(i)
			}
			b.ReportMetric(float64(threadCPU()-cpu)/float64(bytes), "cpu-s/GB")
			b.SetBytes(int64(bytes / b.N))
		})
	}
}

// floorCorpus holds the lines and what each part takes as given from the
// parts before it: the fields, the line sums, the batches.
type floorCorpus struct {
	tb testing.TB
	// file holds the lines, newlines included.
	file   string
	lines  [][]byte
	events []auditjson.Event
	ids    [][]byte // hex line sums
	// s3, es, kafka are the lines of each sink's batches, as index ranges.
	s3, es, kafka [][2]int
	// records is each Kafka batch's records, uncompressed; bulk each ES
	// batch's body; objects each S3 batch compressed.
	records, bulk, objects [][]byte
	zstd                   *zstd.Encoder
}

func newFloorCorpus(tb testing.TB) *floorCorpus {
	data := benchcorpus.Head(tb, 64<<20)
	if data == nil {
		for _, l := range sinktest.Events(0, 20000, 1) {
			data = append(append(data, l...), '\n')
		}
	}
	c := &floorCorpus{tb: tb, file: filepath.Join(tb.TempDir(), "audit.log")}
	if err := os.WriteFile(c.file, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		c.lines = append(c.lines, data[:i:i])
		data = data[i+1:]
	}
	c.events = make([]auditjson.Event, len(c.lines))
	for i, l := range c.lines {
		auditjson.Parse(l, &c.events[i])
		sum := sha256.Sum256(l)
		c.ids = append(c.ids, hex.AppendEncode(nil, sum[:]))
	}
	c.s3, c.es, c.kafka = c.cut(floorS3Object), c.cut(floorESBulk), c.cut(floorKafkaBatch)
	for i := range c.kafka {
		c.records = append(c.records, c.appendRecords(nil, i))
	}
	for i := range c.es {
		c.bulk = append(c.bulk, c.appendBulk(nil, i))
	}
	var err error
	c.zstd, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(256<<10), zstd.WithEncoderCRC(false))
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range c.s3 {
		var raw []byte
		for _, l := range c.lines[r[0]:r[1]] {
			raw = append(append(raw, l...), '\n')
		}
		c.objects = append(c.objects, c.zstd.EncodeAll(raw, nil))
	}
	return c
}

// cut splits the lines into batches of about size bytes.
func (c *floorCorpus) cut(size int) [][2]int {
	var out [][2]int
	start, n := 0, 0
	for i, l := range c.lines {
		n += len(l) + 1
		if n >= size {
			out = append(out, [2]int{start, i + 1})
			start, n = i+1, 0
		}
	}
	if len(out) == 0 {
		out = append(out, [2]int{0, len(c.lines)})
	}
	return out
}

func (c *floorCorpus) size(r [2]int) int {
	n := 0
	for _, l := range c.lines[r[0]:r[1]] {
		n += len(l)
	}
	return n
}

func floorRead(c *floorCorpus) func(int) int {
	f, err := os.Open(c.file)
	if err != nil {
		c.tb.Fatal(err)
	}
	c.tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		c.tb.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	chunks := int(st.Size()) / len(buf)
	if chunks == 0 {
		c.tb.Fatal("the corpus is shorter than one read")
	}
	return func(i int) int {
		n, err := f.ReadAt(buf, int64(i%chunks)*int64(len(buf)))
		if err != nil {
			c.tb.Fatal(err)
		}
		return n
	}
}

func floorExtract(c *floorCorpus) func(int) int {
	var ev auditjson.Event
	return func(i int) int {
		r := c.es[i%len(c.es)]
		for _, l := range c.lines[r[0]:r[1]] {
			auditjson.Parse(l, &ev)
		}
		return c.size(r)
	}
}

func floorLineSums(c *floorCorpus) func(int) int {
	return func(i int) int {
		r := c.es[i%len(c.es)]
		for _, l := range c.lines[r[0]:r[1]] {
			sha256.Sum256(l)
		}
		return c.size(r)
	}
}

func floorRecordsSum(c *floorCorpus) func(int) int {
	h := sha256.New()
	nl := []byte{'\n'}
	var sum [sha256.Size]byte
	return func(i int) int {
		r := c.s3[i%len(c.s3)]
		h.Reset()
		for _, l := range c.lines[r[0]:r[1]] {
			h.Write(l)
			h.Write(nl)
		}
		h.Sum(sum[:0])
		return c.size(r)
	}
}

func floorZstdS3(c *floorCorpus) func(int) int {
	var out bytes.Buffer
	nl := []byte{'\n'}
	manifest := bytes.Repeat([]byte{'m'}, 600)
	return func(i int) int {
		r := c.s3[i%len(c.s3)]
		out.Reset()
		c.zstd.Reset(&out)
		c.zstd.Write(manifest)
		c.zstd.Write(nl)
		for _, l := range c.lines[r[0]:r[1]] {
			c.zstd.Write(l)
			c.zstd.Write(nl)
		}
		if err := c.zstd.Close(); err != nil {
			c.tb.Fatal(err)
		}
		return c.size(r)
	}
}

func floorObjectSum(c *floorCorpus) func(int) int {
	return func(i int) int {
		sha256.Sum256(c.objects[i%len(c.objects)])
		return c.size(c.s3[i%len(c.s3)])
	}
}

func floorTCPS3(c *floorCorpus) func(int) int {
	conn := floorConn(c.tb)
	return func(i int) int {
		if _, err := conn.Write(c.objects[i%len(c.objects)]); err != nil {
			c.tb.Fatal(err)
		}
		return c.size(c.s3[i%len(c.s3)])
	}
}

func floorKafkaRecords(c *floorCorpus) func(int) int {
	var buf []byte
	return func(i int) int {
		buf = c.appendRecords(buf[:0], i%len(c.kafka))
		return c.size(c.kafka[i%len(c.kafka)])
	}
}

func floorZstdKafka(c *floorCorpus) func(int) int {
	var out bytes.Buffer
	return func(i int) int {
		out.Reset()
		c.zstd.Reset(&out)
		c.zstd.Write(c.records[i%len(c.records)])
		if err := c.zstd.Close(); err != nil {
			c.tb.Fatal(err)
		}
		return c.size(c.kafka[i%len(c.kafka)])
	}
}

func floorBulkBody(c *floorCorpus) func(int) int {
	var buf []byte
	return func(i int) int {
		buf = c.appendBulk(buf[:0], i%len(c.es))
		return c.size(c.es[i%len(c.es)])
	}
}

func floorTCPES(c *floorCorpus) func(int) int {
	conn := floorConn(c.tb)
	return func(i int) int {
		if _, err := conn.Write(c.bulk[i%len(c.bulk)]); err != nil {
			c.tb.Fatal(err)
		}
		return c.size(c.es[i%len(c.es)])
	}
}

func floorTCPKafka(c *floorCorpus) func(int) int {
	var compressed [][]byte
	for _, r := range c.records {
		compressed = append(compressed, c.zstd.EncodeAll(r, nil))
	}
	conn := floorConn(c.tb)
	return func(i int) int {
		if _, err := conn.Write(compressed[i%len(compressed)]); err != nil {
			c.tb.Fatal(err)
		}
		return c.size(c.kafka[i%len(c.kafka)])
	}
}

// floorConn returns a TCP connection to a reader on 127.0.0.1 that
// discards what it reads; both are closed with tb.
func floorConn(tb testing.TB) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(io.Discard, conn)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// appendRecords appends the records of Kafka batch k in the record batch
// format (v2), uncompressed, with the headers the sink sends.
func (c *floorCorpus) appendRecords(dst []byte, k int) []byte {
	r := c.kafka[k]
	var rec []byte
	for i := r[0]; i < r[1]; i++ {
		ev := &c.events[i]
		rec = append(rec[:0], 0)                      // attributes
		rec = binary.AppendVarint(rec, 0)             // timestamp delta
		rec = binary.AppendVarint(rec, int64(i-r[0])) // offset delta
		rec = appendVarBytes(rec, ev.AuditID)
		rec = appendVarBytes(rec, c.lines[i])
		n := len(rec)
		rec = append(rec, 0) // header count, set below
		var src [32]byte
		headers := [...][2][]byte{
			{[]byte("auditrail-id"), c.ids[i]},
			{[]byte("auditrail-source"), strconv.AppendInt(append(src[:0], "1-1-2a@"...), int64(i)*1400, 10)},
			{[]byte("stage"), ev.Stage}, {[]byte("verb"), ev.Verb}, {[]byte("resource"), ev.Resource},
			{[]byte("namespace"), ev.Namespace}, {[]byte("user"), ev.Username},
			{[]byte("cluster"), []byte("prod")}, {[]byte("node"), []byte("master-1")}, {[]byte("agent-version"), []byte("v1")},
		}
		count := 0
		for _, h := range headers {
			if len(h[1]) > 0 {
				rec = appendVarBytes(appendVarBytes(rec, h[0]), h[1])
				count++
			}
		}
		rec[n] = byte(count << 1) // varint of a count below 64
		dst = binary.AppendVarint(dst, int64(len(rec)))
		dst = append(dst, rec...)
	}
	return dst
}

func appendVarBytes(dst, b []byte) []byte {
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

// appendBulk appends the _bulk body of Elasticsearch batch k.
func (c *floorCorpus) appendBulk(dst []byte, k int) []byte {
	r := c.es[k]
	for i := r[0]; i < r[1]; i++ {
		dst = append(dst, `{"create":{"_index":"k8s-audit-2026.11.30","_id":"`...)
		dst = append(dst, c.ids[i]...)
		dst = append(dst, "\"}}\n"...)
		dst = append(dst, c.lines[i]...)
		dst = append(dst, '\n')
	}
	return dst
}

// threadCPU returns the user and system CPU time of the calling thread.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
