// Package s3test writes archives with the s3 sink into a real MinIO
// (internal/miniotest) for the tests of the sink and of package verify,
// and alters them the way root on the node could (Attacker).
package s3test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// Quiet returns a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Config returns a sink configuration for bucket on srv, with defaults
// applied and COMPLIANCE retention of a day.
func Config(srv *miniotest.Server, bucket string) s3.Config {
	c := s3.Config{
		Bucket: bucket, Region: "us-east-1", Endpoint: srv.Endpoint(), ForcePathStyle: true,
		Prefix: "audit", Cluster: "prod-eu", Node: "master-1",
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey,
		ObjectLock: s3.ObjectLockConfig{Mode: "COMPLIANCE", Retention: units.Duration(24 * time.Hour)},
	}
	c.ApplyDefaults()
	return c
}

// ChainConfig starts MinIO with a locked bucket and returns a sink
// configuration for it, GOVERNANCE retention, with a state directory for
// the chain.
func ChainConfig(t testing.TB, bucket string) s3.Config {
	t.Helper()
	srv := miniotest.Start(t)
	srv.Bucket(bucket, true)
	cfg := Config(srv, bucket)
	cfg.ObjectLock.Mode = "GOVERNANCE"
	cfg.StateDir = t.TempDir()
	return cfg
}

// NewSink validates cfg and returns a sink named "s3" for it, closed when
// the test ends.
func NewSink(t testing.TB, cfg s3.Config) *s3.Sink {
	t.Helper()
	if err := cfg.Validate("s3"); err != nil {
		t.Fatal(err)
	}
	s, err := s3.New(context.Background(), "s3", cfg, Quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// WriteBatches writes n batches of one file through s, continuing at off,
// and returns the offset after them.
func WriteBatches(t testing.TB, s *s3.Sink, off int64, n int) int64 {
	t.Helper()
	for i := 0; i < n; i++ {
		b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 20, uint64(off))...)
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		off = b.Segments[0].End
	}
	return off
}

// MarkedBatch returns a batch of agent records (not tied to a byte range)
// followed by events of file 1 from off.
func MarkedBatch(off int64, recs map[sinks.Kind]string, events int) *sinks.Batch {
	b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), events, uint64(off))...)
	var head []sinks.Record
	for _, k := range []sinks.Kind{sinks.KindHeartbeat, sinks.KindTamper, sinks.KindGap} {
		if line, ok := recs[k]; ok {
			head = append(head, sinks.Record{Line: []byte(line), Kind: k, File: &sinks.FileRef{ID: k.String() + "-" + strconv.FormatInt(off, 10)}})
			b.Bytes += len(line)
		}
	}
	b.Records = append(head, b.Records...)
	return b
}

// Bomb returns n zero bytes (a multiple of 1 MiB) compressed as the
// key's extension says: one compressed MiB repeated, as concatenated
// frames or members, which readers decompress one after the other.
func Bomb(t testing.TB, ext string, n int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch ext {
	case ".ndjson.zst":
		w, _ = zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	case ".ndjson.gz":
		w, _ = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	}
	if _, err := io.CopyN(w, zeros{}, 1<<20); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return bytes.Repeat(buf.Bytes(), int(n>>20))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
