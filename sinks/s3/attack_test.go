package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// attacker is root on the node: it holds the sink's credentials
// (PutObject, PutObjectRetention, GetObject) and its state directory, and
// knows the on-bucket format.
type attacker struct {
	t      *testing.T
	c      *s3.Client
	cfg    Config
	bucket string
}

func newAttacker(t *testing.T, cfg Config) *attacker {
	t.Helper()
	c, err := NewClient(context.Background(), cfg)
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
		seq, _ := strconv.ParseInt(h.Metadata[MetaSeq], 10, 64)
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
func (a *attacker) forge(meta map[string]string, m Manifest, recs []byte, prev string) ([]byte, map[string]string) {
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
	out[MetaSHA256], out[MetaRecordsSHA256], out["records"] = hex.EncodeToString(bsum[:]), m.RecordsSHA256, strconv.Itoa(m.Records)
	out[MetaPrev] = prev
	return body, out
}

// dropFirstLine removes the first record of recs: the incriminating event.
func dropFirstLine(recs []byte) []byte {
	_, rest, _ := bytes.Cut(recs, []byte{'\n'})
	return rest
}

// Root on the node places an object at the key of a batch the agent is
// about to send again (a restart re-reads it), with the records-sha256
// metadata of the real batch and the records without the incriminating
// line. The sink must not take it for its own, and verify must name it.
func TestPreplacedObjectDoesNotSwallowBatch(t *testing.T) {
	cfg := chainConfig(t, "preplaced")
	off := writeBatches(t, newSink(t, cfg), 0, 2)
	b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 20, uint64(off))...)
	// The attacker computes what the sink will send: key, chain place,
	// records digest (it can read the log and the state file).
	probe := newSink(t, cfg)
	first := probe.firstEventTime(b)
	key := probe.key(b, first)
	meta := probe.metadata(b, first)
	probe.chain.next(meta)
	var real bytes.Buffer
	for _, r := range b.Records {
		real.Write(r.Line)
		real.WriteByte('\n')
	}
	realSum := sha256.Sum256(real.Bytes())
	meta[MetaRecordsSHA256] = hex.EncodeToString(realSum[:])
	a := newAttacker(t, cfg)
	body, fmeta := a.forge(meta, newManifest(meta), dropFirstLine(real.Bytes()), meta[MetaPrev])
	fmeta[MetaRecordsSHA256] = hex.EncodeToString(realSum[:]) // what the old replay check compared
	if err := a.put(key, body, fmeta); err != nil {
		t.Fatal(err)
	}

	s := newSink(t, cfg)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Every line of the batch is in the archive, in an object of the chain.
	found := false
	for k, body := range objects(t, srvClient(t, cfg), cfg.Bucket) {
		if m, recs, err := ReadObject(k, body); err == nil && bytes.Equal(recs, real.Bytes()) && m.Chain == "master-1/s3" {
			found = true
		}
	}
	if !found {
		t.Errorf("the batch's records are in no object: the forged object swallowed it")
	}
	rep := verify(t, cfg)
	logFindings(t, rep)
	if k := kinds(rep); rep.OK || k["key-collision"] != 1 || k["manifest-mismatch"] != 1 {
		t.Errorf("findings %v, want key-collision and manifest-mismatch", k)
	}
}

func srvClient(t *testing.T, cfg Config) *s3.Client {
	t.Helper()
	c, err := NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MinIO, like S3, refuses a conditional PUT over an existing key with 412:
// the sink rests on it.
func TestStoreHonoursIfNoneMatch(t *testing.T) {
	cfg := chainConfig(t, "conditional")
	c := srvClient(t, cfg)
	ctx := context.Background()
	put := func(body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String("k"),
			Body: bytes.NewReader([]byte(body)), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	err := put("second")
	if !preconditionFailed(err) {
		t.Fatalf("second conditional PUT: %v, want 412", err)
	}
	body, _ := newAttacker(t, cfg).get("k")
	if string(body) != "first" {
		t.Errorf("content %q after a refused PUT", body)
	}
}
