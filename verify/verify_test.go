package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
)

func TestChainAcrossRestartsVerifies(t *testing.T) {
	cfg := s3test.ChainConfig(t, "chain")
	off := s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 4)
	// A restart continues the chain from the state file.
	s3test.WriteBatches(t, s3test.NewSink(t, cfg), off, 3)
	rep := verify(t, cfg, Options{RequireLock: true, MinRetention: 24 * time.Hour})
	if !rep.OK || rep.Objects != 7 || len(rep.Epochs) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	e := rep.Epochs[0]
	if e.Chain != "master-1/s3" || e.FirstSeq != 1 || e.LastSeq != 7 || e.Start != s3sink.StartNoState {
		t.Errorf("epoch: %+v", e)
	}
	// A policy longer than the retention set is reported for every object.
	rep = verify(t, cfg, Options{MinRetention: 48 * time.Hour})
	if k := kinds(rep); k["short-retention"] != 7 || len(k) != 1 {
		t.Errorf("findings with a 48h policy: %v", k)
	}
}

func TestVerifyNamesEveryTampering(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("open", false)
	cfg := s3test.Config(srv, "open")
	cfg.ObjectLock = s3sink.ObjectLockConfig{Required: aws.Bool(false)}
	cfg.StateDir = t.TempDir()
	off := s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 8)
	if rep := verify(t, cfg, Options{}); !rep.OK {
		t.Fatalf("untouched archive: %+v", rep.Findings)
	}
	if rep := verify(t, cfg, Options{RequireLock: true}); kinds(rep)["unlocked"] != 8 {
		t.Errorf("unlocked objects with a lock required: %v", kinds(rep))
	}
	ctx := context.Background()
	c := srv.Client()
	bySeq := map[string]string{}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("open")})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("open"), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		bySeq[h.Metadata[s3sink.MetaSeq]] = aws.ToString(o.Key)
	}
	get := func(key string) ([]byte, map[string]string) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("open"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return b, out.Metadata
	}
	put := func(key string, body []byte, meta map[string]string) {
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("open"), Key: aws.String(key),
			Body: bytes.NewReader(body), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	// Object 3 deleted.
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("open"), Key: aws.String(bySeq["3"])}); err != nil {
		t.Fatal(err)
	}
	// Object 5 altered: other content under the same metadata.
	body5, meta5 := get(bySeq["5"])
	put(bySeq["5"], append(body5[:len(body5):len(body5)], 0), meta5)
	// Objects 6 and 7 reordered: each key gets the other's content and
	// metadata.
	body6, meta6 := get(bySeq["6"])
	body7, meta7 := get(bySeq["7"])
	put(bySeq["6"], body7, meta7)
	put(bySeq["7"], body6, meta6)
	// The state directory lost: the next object starts a new epoch.
	s3test.RemoveChainState(t, cfg)
	s3test.WriteBatches(t, s3test.NewSink(t, cfg), off, 1)

	rep := verify(t, cfg, Options{})
	k := kinds(rep)
	if rep.OK || k["missing"] != 1 || k["checksum-mismatch"] < 1 || k["misplaced"] != 2 || k["chain-restart"] != 1 || k["broken-link"] < 1 {
		t.Errorf("findings %v:", k)
		for _, f := range rep.Findings {
			t.Logf("%+v", f)
		}
	}
	for _, f := range rep.Findings {
		if f.Kind == "missing" && (f.Seq != 3 || !strings.Contains(f.Detail, "objects 3 to 3")) {
			t.Errorf("missing: %+v", f)
		}
		if f.Kind == "checksum-mismatch" && f.Key != bySeq["5"] {
			t.Errorf("checksum mismatch on %s, only %s was altered", f.Key, bySeq["5"])
		}
	}
	// Restricted to a node that does not exist, nothing is checked.
	if rep := verify(t, cfg, Options{Node: "master-2"}); rep.Objects != 0 || !rep.OK {
		t.Errorf("other node: %+v", rep)
	}
}

// Verify reads the agent's records in the archive and names what they
// report: audit data lost on the node, tampering, downtime, and stretches
// with no upload at all.
func TestVerifyReportsAgentRecordsAndTimeGaps(t *testing.T) {
	cfg := s3test.ChainConfig(t, "marked")
	s := s3test.NewSink(t, cfg)
	write := func(b *sinks.Batch) int64 {
		t.Helper()
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		return b.Segments[0].End
	}
	const (
		firstStart = `{"kind":"AuditrailAgentStarted","apiVersion":"auditrail.io/v1","startedAt":"2026-11-21T10:00:00Z","state":"none"}`
		truncated  = `{"kind":"AuditrailGap","apiVersion":"auditrail.io/v1","reason":"truncated","sink":"s3","detectedAt":"2026-11-21T10:05:00Z","file":{"id":"2049-1001-0123456789abcdef","path":"/var/log/kubernetes/audit/audit.log"},"bytes":{"from":4096,"to":9000,"toKnown":false},"time":{"after":"2026-11-21T10:04:59Z"}}`
		restart    = `{"kind":"AuditrailAgentStarted","apiVersion":"auditrail.io/v1","startedAt":"2026-11-21T10:20:00Z","state":"resumed","previousRunUntil":"2026-11-21T10:06:00Z","downtimeSeconds":840}`
		deleted    = `{"kind":"AuditrailTamper","apiVersion":"auditrail.io/v1","reason":"deleted","detectedAt":"2026-11-21T10:20:01Z","detail":"the live audit log disappeared","file":{"id":"2049-1001-0123456789abcdef","path":"/var/log/kubernetes/audit/audit.log"}}`
	)
	// The first start's no-state record: made when the chain was born.
	noState := `{"kind":"AuditrailTamper","apiVersion":"auditrail.io/v1","reason":"no-state","detectedAt":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","detail":"no checkpoint"}`
	off := write(s3test.MarkedBatch(0, map[sinks.Kind]string{sinks.KindHeartbeat: firstStart, sinks.KindTamper: noState}, 10))
	off = write(s3test.MarkedBatch(off, map[sinks.Kind]string{sinks.KindGap: truncated}, 10))
	time.Sleep(2500 * time.Millisecond) // S3 times have a resolution of one second
	// The chain is live: its end is compared with the time of its last
	// upload, not with whenever this slow, loaded run gets to verify it.
	live := time.Now()
	write(s3test.MarkedBatch(off, map[sinks.Kind]string{sinks.KindHeartbeat: restart, sinks.KindTamper: deleted}, 10))

	rep := verify(t, cfg, Options{RequireLock: true, MaxGap: time.Second, Now: live})
	k := kinds(rep)
	if rep.OK || len(k) != 4 || k["source-gap"] != 1 || k["tamper"] != 1 || k["agent-stopped"] != 1 || k["time-gap"] != 1 {
		t.Errorf("findings %v", k)
	}
	for _, f := range rep.Findings {
		var want string
		switch f.Kind {
		case "source-gap":
			want = "bytes 4096 to at least 9000 of /var/log/kubernetes/audit/audit.log (truncated"
		case "tamper":
			want = "deleted, detected 2026-11-21T10:20:01Z: the live audit log disappeared (/var/log/kubernetes/audit/audit.log)"
		case "agent-stopped":
			want = "not running for 14m0s, from 2026-11-21T10:06:00Z to 2026-11-21T10:20:00Z"
		case "time-gap":
			want = "not even a heartbeat"
		}
		if !strings.Contains(f.Detail, want) || f.Chain != "master-1/s3" {
			t.Errorf("%s finding %+v, want detail with %q", f.Kind, f, want)
		}
	}
	if m := rep.Marked; m["AuditrailAgentStarted"] != 2 || m["AuditrailTamper"] != 2 || m["AuditrailGap"] != 1 {
		t.Errorf("marked records counted: %v", m)
	}
	// Without a gap limit the downtime and the pause are not findings;
	// the records about the node still are.
	if k := kinds(verify(t, cfg, Options{})); len(k) != 2 || k["source-gap"] != 1 || k["tamper"] != 1 {
		t.Errorf("findings without a gap limit: %v", k)
	}
}

// Root on the node rewrites history with the sink's own credentials:
// a new version over a locked object, or a delete marker over it. Verify
// reads the oldest version of every key, so the original chain still
// verifies, and names every key that has more than one version.
func TestVerifyReportsShadowedVersions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		attack func(a *s3test.Attacker)
		want   map[string]int
	}{
		{"rewrite a suffix of the chain and its state", func(a *s3test.Attacker) { a.RewriteSuffix(4) }, map[string]int{"overwritten": 3}},
		{"delete markers on the tail", func(a *s3test.Attacker) { a.DeleteTail(5) }, map[string]int{"deleted": 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s3test.ChainConfig(t, "shadow")
			s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 6)
			tc.attack(s3test.NewAttacker(t, cfg))
			rep := verify(t, cfg, Options{RequireLock: true})
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
			cfg := s3test.ChainConfig(t, "stopped")
			old := s3test.NewSink(t, cfg)
			s3test.WriteBatches(t, old, 0, 3)
			if tc.closeOld {
				if err := old.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if tc.renameNode {
				time.Sleep(4 * time.Second) // S3 times have a resolution of one second
				renamed := cfg
				renamed.Node = "master-9"
				s3test.WriteBatches(t, s3test.NewSink(t, renamed), 0, 2)
			}
			time.Sleep(tc.wait)
			rep := verify(t, cfg, Options{RequireLock: true, MaxGap: maxGap})
			logFindings(t, rep)
			if k := kinds(rep); !equalCounts(k, tc.wantFindings) {
				t.Errorf("findings %v, want %v", k, tc.wantFindings)
			}
		})
	}
}

// A decompression bomb uploaded (and locked) with the node's credentials
// must not stop verification: verify stops reading it at the bound,
// reports it and checks the rest of the archive.
func TestVerifySurvivesDecompressionBombs(t *testing.T) {
	const unpacked = 256 << 20
	for _, ext := range []string{".ndjson.zst", ".ndjson.gz"} {
		t.Run(ext, func(t *testing.T) {
			cfg := s3test.ChainConfig(t, "bomb")
			s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 3)
			a := s3test.NewAttacker(t, cfg)
			key := "audit/cluster=prod-eu/node=master-1/dt=2026-11-21/hour=10/20261121T100000.000000Z_bomb_00000000000000000000-00000000000000000000" + ext
			if err := a.Put(key, s3test.Bomb(t, ext, unpacked), nil); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rep := verify(t, cfg, Options{RequireLock: true, MaxObjectBytes: 1 << 20})
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

// Root on the node, with credentials that can bypass Governance
// retention, removes the chain's last objects entirely and uploads a
// rewritten, re-linked suffix with the chain state to match: the archive
// alone verifies clean. The heads the agent published to its other sinks
// as each object was uploaded do not match it, and verify --anchors says
// which objects were rewritten.
func TestAnchorsRevealARewrittenArchive(t *testing.T) {
	cfg := s3test.ChainConfig(t, "anchored")
	s := s3test.NewSink(t, cfg)
	var anchors []sinks.AnchorRecord
	off := int64(0)
	for range 6 {
		off = s3test.WriteBatches(t, s, off, 1)
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
	if rep := verify(t, cfg, Options{RequireLock: true, Anchors: anchors}); !rep.OK || rep.Anchors != 6 || rep.Epochs[0].AnchoredSeq != 6 {
		logFindings(t, rep)
		t.Fatalf("untouched archive: ok %v, %d anchors, epochs %+v", rep.OK, rep.Anchors, rep.Epochs)
	}

	keys := s3test.NewAttacker(t, cfg).BySeq()
	type object struct {
		body []byte
		meta map[string]string
	}
	originals := map[int64]object{}
	a := s3test.NewAttacker(t, cfg)
	for seq := int64(4); seq <= 6; seq++ {
		body, meta := a.Get(keys[seq])
		originals[seq] = object{body, meta}
	}
	a.PurgeSuffix(4)
	// Re-upload the suffix rewritten, as rewriteSuffix does, from the
	// originals the attacker kept.
	body, _ := a.Get(keys[3])
	sum := sha256.Sum256(body)
	prev := hex.EncodeToString(sum[:])
	for seq := int64(4); seq <= 6; seq++ {
		m, recs, err := s3sink.ReadObject(keys[seq], originals[seq].body)
		if err != nil {
			t.Fatal(err)
		}
		nb, nmeta := a.Forge(originals[seq].meta, m, s3test.DropFirstLine(recs), prev)
		if err := a.Put(keys[seq], nb, nmeta); err != nil {
			t.Fatal(err)
		}
		prev = nmeta[s3sink.MetaSHA256]
	}

	rep := verify(t, cfg, Options{RequireLock: true})
	logFindings(t, rep)
	if !rep.OK {
		t.Fatalf("the rewrite is not one the archive alone reveals; findings %v", kinds(rep))
	}
	rep = verify(t, cfg, Options{RequireLock: true, Anchors: anchors})
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
	rep = verify(t, cfg, Options{RequireLock: true, Anchors: append(anchors[:3:3], forged, gone)})
	logFindings(t, rep)
	if k := kinds(rep); !equalCounts(k, map[string]int{"anchor-conflict": 1, "anchor-missing": 1}) {
		t.Errorf("forged and missing anchors: findings %v", k)
	}
}
