package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// The archives these tests verify are written by the s3 sink into MinIO,
// then altered the way root on the node could, with the sink's own
// credentials and state directory.

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(srv *miniotest.Server, bucket string) s3sink.Config {
	c := s3sink.Config{
		Bucket: bucket, Region: "us-east-1", Endpoint: srv.Endpoint(), ForcePathStyle: true,
		Prefix: "audit", Cluster: "prod-eu", Node: "master-1",
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey,
		ObjectLock: s3sink.ObjectLockConfig{Mode: "COMPLIANCE", Retention: units.Duration(24 * time.Hour)},
	}
	c.ApplyDefaults()
	return c
}

func newSink(t *testing.T, cfg s3sink.Config) *s3sink.Sink {
	t.Helper()
	if err := cfg.Validate("s3"); err != nil {
		t.Fatal(err)
	}
	s, err := s3sink.New(context.Background(), "s3", cfg, quiet(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// writeBatches writes n batches of one file through s, continuing at off,
// and returns the offset after them.
func writeBatches(t *testing.T, s *s3sink.Sink, off int64, n int) int64 {
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

func verify(t *testing.T, cfg s3sink.Config, opts Options) *Report {
	t.Helper()
	rep, err := Archive(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// chainConfig starts MinIO with a locked bucket and returns a sink
// configuration for it, GOVERNANCE retention, with a state directory for
// the chain.
func chainConfig(t *testing.T, bucket string) s3sink.Config {
	t.Helper()
	srv := miniotest.Start(t)
	srv.Bucket(bucket, true)
	cfg := testConfig(srv, bucket)
	cfg.ObjectLock.Mode = "GOVERNANCE"
	cfg.StateDir = t.TempDir()
	return cfg
}

func kinds(rep *Report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Kind]++
	}
	return out
}

// markedBatch returns a batch of agent records (not tied to a byte range)
// followed by events of file 1 from off.
func markedBatch(off int64, recs map[sinks.Kind]string, events int) *sinks.Batch {
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

func logFindings(t *testing.T, rep *Report) {
	t.Helper()
	for _, f := range rep.Findings {
		t.Logf("finding %+v", f)
	}
}

func equalCounts(got, want map[string]int) bool {
	if len(got) != len(want) {
		return false
	}
	for k, n := range want {
		if got[k] != n {
			return false
		}
	}
	return true
}

// attacker is root on the node: it holds the sink's credentials
// (PutObject, PutObjectRetention, GetObject) and its state directory, and
// knows the on-bucket format.
type attacker struct {
	t      *testing.T
	c      *s3.Client
	cfg    s3sink.Config
	bucket string
}

func newAttacker(t *testing.T, cfg s3sink.Config) *attacker {
	t.Helper()
	c, err := s3sink.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &attacker{t: t, c: c, cfg: cfg, bucket: cfg.Bucket}
}

// bySeq returns the current keys of the chain, by sequence number.
func (a *attacker) bySeq() map[int64]string {
	a.t.Helper()
	ctx := context.Background()
	out := map[int64]string{}
	list, err := a.c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	if err != nil {
		a.t.Fatal(err)
	}
	for _, o := range list.Contents {
		h, err := a.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(a.bucket), Key: o.Key})
		if err != nil {
			a.t.Fatal(err)
		}
		seq, _ := strconv.ParseInt(h.Metadata[s3sink.MetaSeq], 10, 64)
		out[seq] = aws.ToString(o.Key)
	}
	return out
}

func (a *attacker) get(key string) ([]byte, map[string]string) {
	a.t.Helper()
	out, err := a.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
	if err != nil {
		a.t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return b, out.Metadata
}

// put uploads body at key as the sink would, locked, without a condition.
func (a *attacker) put(key string, body []byte, meta map[string]string) error {
	until := time.Now().Add(48 * time.Hour)
	_, err := a.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), Metadata: meta,
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: &until})
	return err
}

// forge returns an object whose records are recs, linked after prev
// (empty for none), with chain metadata taken from meta and the manifest
// and metadata rewritten to match: what the sink would have uploaded had
// the records been recs.
func (a *attacker) forge(meta map[string]string, m s3sink.Manifest, recs []byte, prev string) ([]byte, map[string]string) {
	a.t.Helper()
	sum := sha256.Sum256(recs)
	m.RecordsSHA256, m.Prev, m.Records = hex.EncodeToString(sum[:]), prev, bytes.Count(recs, []byte{'\n'})
	line, _ := json.Marshal(m)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(append(append(line, '\n'), recs...))
	zw.Close()
	body := buf.Bytes()
	bsum := sha256.Sum256(body)
	out := map[string]string{}
	for k, v := range meta {
		out[k] = v
	}
	out[s3sink.MetaSHA256], out[s3sink.MetaRecordsSHA256], out["records"] = hex.EncodeToString(bsum[:]), m.RecordsSHA256, strconv.Itoa(m.Records)
	out[s3sink.MetaPrev] = prev
	return body, out
}

// dropFirstLine removes the first record of recs: the incriminating event.
func dropFirstLine(recs []byte) []byte {
	_, rest, _ := bytes.Cut(recs, []byte{'\n'})
	return rest
}

// rewriteSuffix rewrites objects from..last of the chain without their
// first record, re-links them, puts them at their own keys and updates
// the sink's chain state to the new head.
func (a *attacker) rewriteSuffix(from int64) {
	a.t.Helper()
	keys := a.bySeq()
	body, _ := a.get(keys[from-1])
	sum := sha256.Sum256(body)
	prev := hex.EncodeToString(sum[:])
	// The state file as the sink writes it (see package s3): the new head.
	var st struct {
		Epoch  string `json:"epoch"`
		Seq    int64  `json:"seq"`
		SHA256 string `json:"sha256"`
		Key    string `json:"key"`
	}
	for seq := from; keys[seq] != ""; seq++ {
		body, meta := a.get(keys[seq])
		m, recs, err := s3sink.ReadObject(keys[seq], body)
		if err != nil {
			a.t.Fatal(err)
		}
		nb, nmeta := a.forge(meta, m, dropFirstLine(recs), prev)
		if err := a.put(keys[seq], nb, nmeta); err != nil {
			a.t.Fatal(err)
		}
		prev = nmeta[s3sink.MetaSHA256]
		st.Epoch, st.Seq, st.SHA256, st.Key = m.Epoch, seq, prev, keys[seq]
	}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(a.cfg.StateDir, "s3-chain-s3.json"), b, 0o600); err != nil {
		a.t.Fatal(err)
	}
}

// deleteTail puts a delete marker on the chain's last objects, from seq
// on: they disappear from the listing of current objects.
func (a *attacker) deleteTail(from int64) {
	a.t.Helper()
	keys := a.bySeq()
	for seq := from; keys[seq] != ""; seq++ {
		if _, err := a.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(keys[seq])}); err != nil {
			a.t.Fatal(err)
		}
	}
}

// purgeSuffix removes every version of the chain's objects from seq on,
// bypassing Governance retention: what credentials with
// s3:BypassGovernanceRetention can do, or anyone once retention ran out.
// Nothing of the original suffix is left for verify to find.
func (a *attacker) purgeSuffix(from int64) {
	a.t.Helper()
	ctx := context.Background()
	keys := a.bySeq()
	for seq := from; keys[seq] != ""; seq++ {
		vs, err := a.c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(a.bucket), Prefix: aws.String(keys[seq])})
		if err != nil {
			a.t.Fatal(err)
		}
		for _, v := range vs.Versions {
			if _, err := a.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(a.bucket), Key: v.Key, VersionId: v.VersionId,
				BypassGovernanceRetention: aws.Bool(true)}); err != nil {
				a.t.Fatal(err)
			}
		}
	}
}

// bomb returns n zero bytes (a multiple of 1 MiB) compressed as the
// key's extension says: one compressed MiB repeated, as concatenated
// frames or members, which readers decompress one after the other.
func bomb(t *testing.T, ext string, n int64) []byte {
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
