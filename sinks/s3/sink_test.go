package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// lines returns events of several sizes and stages, and lines that are not
// events at all: the S3 copy must keep every byte of them.
func lines(n int) []string {
	out := sinktest.Events(n, 200, uint64(n))
	return append(out, "not json at all", "{\"truncated\":", "bad utf8 \xff\xfe here", "nul \x00 byte", `{"kind":"Event","x":"ünïcødé"}`)
}

func ndjson(ls []string) []byte {
	return []byte(strings.Join(ls, "\n") + "\n")
}

// decode returns an object's records and checks its manifest.
func decode(t *testing.T, key string, body []byte) []byte {
	t.Helper()
	m, recs, err := s3sink.ReadObject(key, body)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq < 1 || m.Chain == "" || m.Epoch == "" || m.Records != bytes.Count(recs, []byte{'\n'}) {
		t.Errorf("%s: manifest %+v for %d lines", key, m, bytes.Count(recs, []byte{'\n'}))
	}
	return recs
}

// objects returns every object under the bucket, by key, decoded.
func objects(t *testing.T, c *s3.Client, bucket string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			res, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			out[*o.Key] = body
		}
	}
	return out
}

func TestRoundTripWithObjectLock(t *testing.T) {
	srv := miniotest.Start(t)
	for _, comp := range []string{"zstd", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			bucket := "locked-" + comp
			srv.Bucket(bucket, true)
			cfg := s3test.Config(srv, bucket)
			cfg.Compression = comp
			s := s3test.NewSink(t, cfg)
			ctx := context.Background()
			want := map[string][]byte{}
			before := time.Now()
			for i := 0; i < 3; i++ {
				ls := lines(i * 1000)
				b := sinktest.Batch(sinktest.File(uint64(i+1)), 0, ls...)
				if err := s.Write(ctx, b); err != nil {
					t.Fatal(err)
				}
				want[s.BatchKey(b)] = ndjson(ls)
			}
			after := time.Now()
			c := srv.Client()
			got := objects(t, c, bucket)
			if len(got) != len(want) {
				t.Fatalf("%d objects, want %d: %v", len(got), len(want), keys(got))
			}
			for key, body := range got {
				if !bytes.Equal(decode(t, key, body), want[key]) {
					t.Errorf("%s: content differs from the original lines", key)
				}
				assertLocked(t, c, bucket, key, body, "COMPLIANCE", before.Add(24*time.Hour), after.Add(24*time.Hour))
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// assertLocked checks the object's checksum, retention and that its
// version cannot be deleted.
func assertLocked(t *testing.T, c *s3.Client, bucket, key string, body []byte, mode string, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if h.ChecksumSHA256 == nil || !strings.HasPrefix(*h.ChecksumSHA256, base64.StdEncoding.EncodeToString(sum[:])) && !strings.Contains(*h.ChecksumSHA256, "-") {
		t.Errorf("%s: checksum %v, want SHA-256 of the body", key, aws.ToString(h.ChecksumSHA256))
	}
	if h.Metadata["sha256"] == "" {
		t.Errorf("%s: no sha256 metadata", key)
	}
	if string(h.ObjectLockMode) != mode {
		t.Errorf("%s: lock mode %q, want %s", key, h.ObjectLockMode, mode)
	}
	if h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(from.Add(-time.Second)) || h.ObjectLockRetainUntilDate.After(to.Add(2*time.Second)) {
		t.Errorf("%s: retain until %v, want between %v and %v", key, h.ObjectLockRetainUntilDate, from, to)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: h.VersionId})
	if err == nil {
		t.Errorf("%s: deleting a locked version succeeded", key)
	}
}

func TestRefusesBucketWithoutObjectLock(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("plain", false)
	cfg := s3test.Config(srv, "plain")
	err := s3test.NewSink(t, cfg).Check(context.Background())
	if !sinks.IsMisconfigured(err) || !strings.Contains(err.Error(), "Object Lock") && !strings.Contains(err.Error(), "versioning") {
		t.Fatalf("Check of a bucket without Object Lock: err = %v, want it misconfigured", err)
	}
	if strings.Contains(err.Error(), miniotest.SecretKey) {
		t.Errorf("error shows the secret key: %v", err)
	}
	err = s3test.NewSink(t, s3test.Config(srv, "missing")).Check(context.Background())
	if !sinks.IsMisconfigured(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Check of a missing bucket: err = %v, want it misconfigured", err)
	}

	// Without the requirement, the same bucket works (with no retention).
	cfg.ObjectLock = s3sink.ObjectLockConfig{Required: aws.Bool(false)}
	s := s3test.NewSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), 0, lines(0)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(objects(t, srv.Client(), "plain")); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

// A batch delivered again after a restart is recognised by its key and the
// digest of its records and not uploaded a second time.
func TestReplayIsNotUploadedTwice(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("replay", true)
	cfg := s3test.Config(srv, "replay")
	cfg.ObjectLock.Mode = "GOVERNANCE"
	b := sinktest.Batch(sinktest.File(1), 0, lines(0)...)
	if err := s3test.NewSink(t, cfg).Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	again := s3test.NewSink(t, cfg)
	if err := again.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if v := again.Skipped(); v != 1 {
		t.Errorf("skipped = %v, want 1", v)
	}
	vs, err := srv.Client().ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String("replay")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != 1 {
		t.Fatalf("%d versions, want 1", len(vs.Versions))
	}
	// The next batch is uploaded normally.
	b2 := sinktest.Batch(sinktest.File(1), b.Segments[0].End, lines(5000)...)
	if err := again.Write(context.Background(), b2); err != nil {
		t.Fatal(err)
	}
	if v := again.Objects(); v != 1 {
		t.Errorf("objects = %v, want 1", v)
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("big", true)
	cfg := s3test.Config(srv, "big")
	cfg.Compression = "none"
	cfg.PartSize, cfg.MultipartThreshold = 5<<20, 5<<20
	cfg.ObjectLock.LegalHold = true
	s := s3test.NewSink(t, cfg)
	var ls []string
	for i := 0; len(ls)*4000 < 12<<20; i++ {
		ls = append(ls, sinktest.Event(i, "ResponseComplete", 4000))
	}
	b := sinktest.Batch(sinktest.File(1), 0, ls...)
	before := time.Now()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if v := s.Parts(); v != 3 {
		t.Errorf("parts = %v, want 3", v)
	}
	c := srv.Client()
	got := objects(t, c, "big")
	for key, body := range got {
		if recs := decode(t, key, body); !bytes.Equal(recs, ndjson(ls)) {
			t.Errorf("%s: content differs (%d bytes, want %d)", key, len(recs), len(ndjson(ls)))
		}
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("big"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if h.ObjectLockLegalHoldStatus != types.ObjectLockLegalHoldStatusOn {
			t.Errorf("legal hold = %q, want ON", h.ObjectLockLegalHoldStatus)
		}
		if string(h.ObjectLockMode) != "COMPLIANCE" || h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(before.Add(24*time.Hour-time.Second)) {
			t.Errorf("retention = %s until %v", h.ObjectLockMode, h.ObjectLockRetainUntilDate)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d objects, want 1", len(got))
	}
}

// S3 unreachable when the agent starts: the sink starts anyway (the other
// sinks must not wait), checks the bucket before its first upload, and
// delivers once S3 is back.
func TestUnreachableAtStart(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("later", true)
	srv.Stop()
	cfg := s3test.Config(srv, "later")
	s := s3test.NewSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), 0, lines(0)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Write(ctx, b); err == nil {
		t.Fatal("Write succeeded with S3 down")
	}
	srv.Restart()
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if n := len(objects(t, srv.Client(), "later")); n != 1 {
		t.Fatalf("%d objects, want 1", n)
	}
}

// A batch of only agent records (a heartbeat) covers no source range: it
// is named after its record, and its metadata and manifest say what it
// holds.
func TestNoticeOnlyBatch(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("notices", true)
	s := s3test.NewSink(t, s3test.Config(srv, "notices"))
	hb := `{"kind":"AuditrailHeartbeat","apiVersion":"auditrail.io/v1","sink":"s3","at":"2026-11-21T10:00:00Z"}`
	b := &sinks.Batch{Records: []sinks.Record{{Line: []byte(hb), Kind: sinks.KindHeartbeat,
		File: &sinks.FileRef{ID: "heartbeat-20261121T100000.000000000Z-0a0b0c0d0e0f"}}}, Bytes: len(hb)}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	got := objects(t, srv.Client(), "notices")
	if len(got) != 1 {
		t.Fatalf("%d objects, want 1", len(got))
	}
	for key, body := range got {
		if !strings.Contains(key, "_heartbeat-20261121T100000.000000000Z-0a0b0c0d0e0f_00000000000000000000-00000000000000000000.ndjson.zst") {
			t.Errorf("key %s", key)
		}
		h, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("notices"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if h.Metadata[s3sink.MetaMarked] != "heartbeat" {
			t.Errorf("marked = %q, want heartbeat", h.Metadata[s3sink.MetaMarked])
		}
		m, recs, err := s3sink.ReadObject(key, body)
		if err != nil || m.Marked != "heartbeat" || string(recs) != hb+"\n" {
			t.Errorf("manifest %+v, records %q, err %v", m, recs, err)
		}
	}
}

// An S3 endpoint that accepts connections and never answers must not hold
// up the agent's start: New does no network I/O, and Check gives up when
// its context ends, with an error that is not a misconfiguration.
func TestFrozenEndpointDelaysOnlyCheck(t *testing.T) {
	frozen := sinktest.NewFrozen(t)
	cfg := s3sink.Config{Bucket: "b", Region: "us-east-1", Endpoint: "http://" + frozen.Addr(), ForcePathStyle: true,
		AccessKeyID: "k", SecretAccessKey: "s", ObjectLock: s3sink.ObjectLockConfig{Mode: "COMPLIANCE", Retention: units.Duration(time.Hour)}}
	cfg.ApplyDefaults()
	frozen.AssertOnlyCheckWaits(t, s3test.NewSink(t, cfg))
}

// The same byte range read again after a restart may carry other agent
// records: a start record, or a gap detected again at another time. Each
// such batch has a key of its own, so that neither is taken for someone
// else's object at the other's key; a batch of the same records keeps
// its key.
func TestNoticesTagTheKey(t *testing.T) {
	gap := func(at string) map[sinks.Kind]string {
		return map[sinks.Kind]string{sinks.KindGap: `{"kind":"AuditrailGap","apiVersion":"auditrail.io/v1","reason":"pruned","detectedAt":"` + at + `"}`}
	}
	key := func(b *sinks.Batch) string { return s3sink.KeyOf(s3sink.Config{Node: "n"}, b) }
	plain := key(s3test.MarkedBatch(100, nil, 5))
	for _, tc := range []struct {
		name string
		a, b map[sinks.Kind]string
		same bool
	}{
		{"same gap record", gap("2026-11-21T10:00:00Z"), gap("2026-11-21T10:00:00Z"), true},
		{"gap detected again", gap("2026-11-21T10:00:00Z"), gap("2026-11-21T10:05:00Z"), false},
		{"gap and none", gap("2026-11-21T10:00:00Z"), nil, false},
	} {
		ka, kb := key(s3test.MarkedBatch(100, tc.a, 5)), key(s3test.MarkedBatch(100, tc.b, 5))
		if (ka == kb) != tc.same {
			t.Errorf("%s: keys %s and %s, same = %v", tc.name, ka, kb, ka == kb)
		}
		if tc.a != nil && ka == plain {
			t.Errorf("%s: key %s is the key of the batch without agent records", tc.name, ka)
		}
	}
}
