package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// Root on the node places an object at the key of a batch the agent is
// about to send again (a restart re-reads it), with the records-sha256
// metadata of the real batch and the records without the incriminating
// line. The sink must not take it for its own, and verify must name it.
func TestPreplacedObjectDoesNotSwallowBatch(t *testing.T) {
	cfg := s3test.ChainConfig(t, "preplaced")
	off := s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 2)
	b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 20, uint64(off))...)
	// The attacker computes what the sink will send: key, chain place,
	// records digest (it can read the log and the state file).
	probe := s3test.NewSink(t, cfg)
	key, meta := probe.NextObject(b)
	var real bytes.Buffer
	for _, r := range b.Records {
		real.Write(r.Line)
		real.WriteByte('\n')
	}
	realSum := sha256.Sum256(real.Bytes())
	meta[s3sink.MetaRecordsSHA256] = hex.EncodeToString(realSum[:])
	a := s3test.NewAttacker(t, cfg)
	body, fmeta := a.Forge(meta, s3sink.NewManifest(meta), s3test.DropFirstLine(real.Bytes()), meta[s3sink.MetaPrev])
	fmeta[s3sink.MetaRecordsSHA256] = hex.EncodeToString(realSum[:]) // what the old replay check compared
	if err := a.Put(key, body, fmeta); err != nil {
		t.Fatal(err)
	}

	s := s3test.NewSink(t, cfg)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Every line of the batch is in the archive, in an object of the chain.
	found := false
	for k, body := range objects(t, srvClient(t, cfg), cfg.Bucket) {
		if m, recs, err := s3sink.ReadObject(k, body); err == nil && bytes.Equal(recs, real.Bytes()) && m.Chain == "master-1/s3" {
			found = true
		}
	}
	if !found {
		t.Errorf("the batch's records are in no object: the forged object swallowed it")
	}
	rep := verifyArchive(t, cfg)
	logFindings(t, rep)
	if k := kinds(rep); rep.OK || k["key-collision"] != 1 || k["manifest-mismatch"] != 1 {
		t.Errorf("findings %v, want key-collision and manifest-mismatch", k)
	}
}

// MinIO, like S3, refuses a conditional PUT over an existing key with 412:
// the sink rests on it.
func TestStoreHonoursIfNoneMatch(t *testing.T) {
	cfg := s3test.ChainConfig(t, "conditional")
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
	if !s3sink.PreconditionFailed(err) {
		t.Fatalf("second conditional PUT: %v, want 412", err)
	}
	body, _ := s3test.NewAttacker(t, cfg).Get("k")
	if string(body) != "first" {
		t.Errorf("content %q after a refused PUT", body)
	}
}
