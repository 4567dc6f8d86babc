package s3test

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
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks/s3"
)

// Attacker is root on the node: it holds the sink's credentials
// (PutObject, PutObjectRetention, GetObject) and its state directory, and
// knows the on-bucket format.
type Attacker struct {
	t      testing.TB
	c      *awss3.Client
	cfg    s3.Config
	bucket string
}

// NewAttacker returns an attacker on the bucket and state directory of
// cfg, with cfg's credentials.
func NewAttacker(t testing.TB, cfg s3.Config) *Attacker {
	t.Helper()
	c, err := s3.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Attacker{t: t, c: c, cfg: cfg, bucket: cfg.Bucket}
}

// BySeq returns the current keys of the chain, by sequence number.
func (a *Attacker) BySeq() map[int64]string {
	a.t.Helper()
	ctx := context.Background()
	out := map[int64]string{}
	list, err := a.c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	if err != nil {
		a.t.Fatal(err)
	}
	for _, o := range list.Contents {
		h, err := a.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(a.bucket), Key: o.Key})
		if err != nil {
			a.t.Fatal(err)
		}
		seq, _ := strconv.ParseInt(h.Metadata[s3.MetaSeq], 10, 64)
		out[seq] = aws.ToString(o.Key)
	}
	return out
}

// Get returns the current body and metadata at key.
func (a *Attacker) Get(key string) ([]byte, map[string]string) {
	a.t.Helper()
	out, err := a.c.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key)})
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

// Put uploads body at key as the sink would, locked, without a condition.
func (a *Attacker) Put(key string, body []byte, meta map[string]string) error {
	until := time.Now().Add(48 * time.Hour)
	_, err := a.c.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(key),
		Body: bytes.NewReader(body), Metadata: meta,
		ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: &until})
	return err
}

// Forge returns an object whose records are recs, linked after prev
// (empty for none), with chain metadata taken from meta and the manifest
// and metadata rewritten to match: what the sink would have uploaded had
// the records been recs.
func (a *Attacker) Forge(meta map[string]string, m s3.Manifest, recs []byte, prev string) ([]byte, map[string]string) {
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
	out[s3.MetaSHA256], out[s3.MetaRecordsSHA256], out["records"] = hex.EncodeToString(bsum[:]), m.RecordsSHA256, strconv.Itoa(m.Records)
	out[s3.MetaPrev] = prev
	return body, out
}

// DropFirstLine removes the first record of recs: the incriminating event.
func DropFirstLine(recs []byte) []byte {
	_, rest, _ := bytes.Cut(recs, []byte{'\n'})
	return rest
}

// RewriteSuffix rewrites objects from..last of the chain without their
// first record, re-links them, puts them at their own keys and updates
// the sink's chain state to the new head.
func (a *Attacker) RewriteSuffix(from int64) {
	a.t.Helper()
	keys := a.BySeq()
	body, _ := a.Get(keys[from-1])
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
		body, meta := a.Get(keys[seq])
		m, recs, err := s3.ReadObject(keys[seq], body)
		if err != nil {
			a.t.Fatal(err)
		}
		nb, nmeta := a.Forge(meta, m, DropFirstLine(recs), prev)
		if err := a.Put(keys[seq], nb, nmeta); err != nil {
			a.t.Fatal(err)
		}
		prev = nmeta[s3.MetaSHA256]
		st.Epoch, st.Seq, st.SHA256, st.Key = m.Epoch, seq, prev, keys[seq]
	}
	b, _ := json.Marshal(st)
	SetChainState(a.t, a.cfg, b)
}

// DeleteTail puts a delete marker on the chain's last objects, from seq
// on: they disappear from the listing of current objects.
func (a *Attacker) DeleteTail(from int64) {
	a.t.Helper()
	keys := a.BySeq()
	for seq := from; keys[seq] != ""; seq++ {
		if _, err := a.c.DeleteObject(context.Background(), &awss3.DeleteObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(keys[seq])}); err != nil {
			a.t.Fatal(err)
		}
	}
}

// PurgeSuffix removes every version of the chain's objects from seq on,
// bypassing Governance retention: what credentials with
// s3:BypassGovernanceRetention can do, or anyone once retention ran out.
// Nothing of the original suffix is left for verify to find.
func (a *Attacker) PurgeSuffix(from int64) {
	a.t.Helper()
	ctx := context.Background()
	keys := a.BySeq()
	for seq := from; keys[seq] != ""; seq++ {
		vs, err := a.c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(a.bucket), Prefix: aws.String(keys[seq])})
		if err != nil {
			a.t.Fatal(err)
		}
		for _, v := range vs.Versions {
			if _, err := a.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(a.bucket), Key: v.Key, VersionId: v.VersionId,
				BypassGovernanceRetention: aws.Bool(true)}); err != nil {
				a.t.Fatal(err)
			}
		}
	}
}
