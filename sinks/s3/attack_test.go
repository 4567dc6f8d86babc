package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks"
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
	c, err := newClient(context.Background(), cfg)
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

// rewriteSuffix rewrites objects from..last of the chain without their
// first record, re-links them, puts them at their own keys and updates
// the sink's chain state to the new head.
func (a *attacker) rewriteSuffix(from int64) {
	a.t.Helper()
	keys := a.bySeq()
	body, _ := a.get(keys[from-1])
	sum := sha256.Sum256(body)
	prev := hex.EncodeToString(sum[:])
	var st chainState
	for seq := from; keys[seq] != ""; seq++ {
		body, meta := a.get(keys[seq])
		m, recs, err := ReadObject(keys[seq], body)
		if err != nil {
			a.t.Fatal(err)
		}
		nb, nmeta := a.forge(meta, m, dropFirstLine(recs), prev)
		if err := a.put(keys[seq], nb, nmeta); err != nil {
			a.t.Fatal(err)
		}
		prev = nmeta[MetaSHA256]
		st = chainState{Epoch: m.Epoch, Seq: seq, SHA256: prev, Key: keys[seq]}
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

func logFindings(t *testing.T, rep *Report) {
	t.Helper()
	for _, f := range rep.Findings {
		t.Logf("finding %+v", f)
	}
}

// Root on the node rewrites history with the sink's own credentials:
// a new version over a locked object, or a delete marker over it. Verify
// reads the oldest version of every key, so the original chain still
// verifies, and names every key that has more than one version.
func TestVerifyReportsShadowedVersions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(a *attacker)
		want   map[string]int
	}{
		{"rewrite a suffix of the chain and its state", func(a *attacker) { a.rewriteSuffix(4) }, map[string]int{"overwritten": 3}},
		{"delete markers on the tail", func(a *attacker) { a.deleteTail(5) }, map[string]int{"deleted": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := chainConfig(t, "shadow")
			writeBatches(t, newSink(t, cfg), 0, 6)
			tc.attack(newAttacker(t, cfg))
			rep := verify(t, cfg, VerifyOptions{RequireLock: true})
			logFindings(t, rep)
			if k := kinds(rep); rep.OK || !equalCounts(k, tc.want) {
				t.Errorf("findings %v, want %v", k, tc.want)
			}
			if rep.Objects != 6 || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 6 {
				t.Errorf("verify did not check the original chain: %d objects, epochs %+v", rep.Objects, rep.Epochs)
			}
		})
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
	rep := verify(t, cfg, VerifyOptions{RequireLock: true})
	logFindings(t, rep)
	if k := kinds(rep); rep.OK || k["key-collision"] != 1 || k["manifest-mismatch"] != 1 {
		t.Errorf("findings %v, want key-collision and manifest-mismatch", k)
	}
}

func srvClient(t *testing.T, cfg Config) *s3.Client {
	t.Helper()
	c, err := newClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A chain that stops is a finding, unless its last object says the sink
// closed it, or it is the live chain and its last upload is recent. A
// node or sink renamed leaves the old chain stopped.
func TestVerifyReportsStoppedChains(t *testing.T) {
	const maxGap = 2500 * time.Millisecond
	for _, tc := range []struct {
		name         string
		closeOld     bool
		renameNode   bool
		wait         time.Duration
		wantFindings map[string]int
	}{
		{"node renamed, old chain open", false, true, 0, map[string]int{"chain-ended": 1}},
		{"node renamed, old chain closed", true, true, 0, map[string]int{}},
		{"live chain, recent upload", false, false, 0, map[string]int{}},
		{"chain that stopped long ago", false, false, 4 * time.Second, map[string]int{"chain-ended": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := chainConfig(t, "stopped")
			old := newSink(t, cfg)
			writeBatches(t, old, 0, 3)
			if tc.closeOld {
				if err := old.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if tc.renameNode {
				time.Sleep(4 * time.Second) // S3 times have a resolution of one second
				renamed := cfg
				renamed.Node = "master-9"
				writeBatches(t, newSink(t, renamed), 0, 2)
			}
			time.Sleep(tc.wait)
			rep := verify(t, cfg, VerifyOptions{RequireLock: true, MaxGap: maxGap})
			logFindings(t, rep)
			if k := kinds(rep); !equalCounts(k, tc.wantFindings) {
				t.Errorf("findings %v, want %v", k, tc.wantFindings)
			}
		})
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

// A decompression bomb uploaded (and locked) with the node's credentials
// must not stop verification: verify stops reading it at the bound,
// reports it and checks the rest of the archive.
func TestVerifySurvivesDecompressionBombs(t *testing.T) {
	const unpacked = 256 << 20
	for _, ext := range []string{".ndjson.zst", ".ndjson.gz"} {
		t.Run(ext, func(t *testing.T) {
			cfg := chainConfig(t, "bomb")
			writeBatches(t, newSink(t, cfg), 0, 3)
			a := newAttacker(t, cfg)
			key := "audit/cluster=prod-eu/node=master-1/dt=2026-11-21/hour=10/20261121T100000.000000Z_bomb_00000000000000000000-00000000000000000000" + ext
			if err := a.put(key, bomb(t, ext, unpacked), nil); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rep := verify(t, cfg, VerifyOptions{RequireLock: true, MaxObjectBytes: 1 << 20})
			runtime.ReadMemStats(&after)
			logFindings(t, rep)
			if k := kinds(rep); k["oversized-object"] != 1 || rep.Objects != 4 || len(rep.Epochs) != 1 || rep.Epochs[0].Objects != 3 {
				t.Errorf("findings %v over %d objects, epochs %+v; want oversized-object and the chain checked", k, rep.Objects, rep.Epochs)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("verify allocated %d MiB for a %d MiB bomb with a 1 MiB bound", alloc>>20, unpacked>>20)
			}
		})
	}
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

// Root on the node, with credentials that can bypass Governance
// retention, removes the chain's last objects entirely and uploads a
// rewritten, re-linked suffix with the chain state to match: the archive
// alone verifies clean. The heads the agent published to its other sinks
// as each object was uploaded do not match it, and verify --anchors says
// which objects were rewritten.
func TestAnchorsRevealARewrittenArchive(t *testing.T) {
	cfg := chainConfig(t, "anchored")
	s := newSink(t, cfg)
	var anchors []sinks.AnchorRecord
	off := int64(0)
	for range 6 {
		off = writeBatches(t, s, off, 1)
		h, ok := s.Head()
		if !ok {
			t.Fatal("no head after an upload")
		}
		h.AnchoredAt = time.Now().UTC().Format(time.RFC3339Nano)
		anchors = append(anchors, h)
	}
	if h := anchors[len(anchors)-1]; h.Seq != 6 || h.Chain != "master-1/s3" || h.Sink != "s3" || h.Kind != sinks.AnchorRecordKind {
		t.Fatalf("head after 6 uploads: %+v", h)
	}
	if rep := verify(t, cfg, VerifyOptions{RequireLock: true, Anchors: anchors}); !rep.OK || rep.Anchors != 6 || rep.Epochs[0].AnchoredSeq != 6 {
		logFindings(t, rep)
		t.Fatalf("untouched archive: ok %v, %d anchors, epochs %+v", rep.OK, rep.Anchors, rep.Epochs)
	}

	keys := newAttacker(t, cfg).bySeq()
	type object struct {
		body []byte
		meta map[string]string
	}
	originals := map[int64]object{}
	a := newAttacker(t, cfg)
	for seq := int64(4); seq <= 6; seq++ {
		body, meta := a.get(keys[seq])
		originals[seq] = object{body, meta}
	}
	a.purgeSuffix(4)
	// Re-upload the suffix rewritten, as rewriteSuffix does, from the
	// originals the attacker kept.
	body, _ := a.get(keys[3])
	sum := sha256.Sum256(body)
	prev := hex.EncodeToString(sum[:])
	for seq := int64(4); seq <= 6; seq++ {
		m, recs, err := ReadObject(keys[seq], originals[seq].body)
		if err != nil {
			t.Fatal(err)
		}
		nb, nmeta := a.forge(originals[seq].meta, m, dropFirstLine(recs), prev)
		if err := a.put(keys[seq], nb, nmeta); err != nil {
			t.Fatal(err)
		}
		prev = nmeta[MetaSHA256]
	}

	rep := verify(t, cfg, VerifyOptions{RequireLock: true})
	logFindings(t, rep)
	if !rep.OK {
		t.Fatalf("the rewrite is not one the archive alone reveals; findings %v", kinds(rep))
	}
	rep = verify(t, cfg, VerifyOptions{RequireLock: true, Anchors: anchors})
	logFindings(t, rep)
	if k := kinds(rep); rep.OK || !equalCounts(k, map[string]int{"anchor-mismatch": 3}) {
		t.Errorf("with anchors: findings %v, want 3 anchor-mismatch", k)
	}
	if got := rep.Epochs[0].AnchoredSeq; got != 3 {
		t.Errorf("anchored up to %d, want 3: the objects before the rewrite", got)
	}

	// An anchor forged with the node's credentials beside a true one is a
	// conflict, whatever the archive holds; one for an object that is not
	// there is a missing object.
	forged := anchors[1]
	forged.SHA256 = strings.Repeat("0", 64)
	gone := anchors[5]
	gone.Seq = 7
	rep = verify(t, cfg, VerifyOptions{RequireLock: true, Anchors: append(anchors[:3:3], forged, gone)})
	logFindings(t, rep)
	if k := kinds(rep); !equalCounts(k, map[string]int{"anchor-conflict": 1, "anchor-missing": 1}) {
		t.Errorf("forged and missing anchors: findings %v", k)
	}
}
