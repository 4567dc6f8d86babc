package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// writeBatches writes n batches of one file through s, continuing at off,
// and returns the offset after them.
func writeBatches(t *testing.T, s *Sink, off int64, n int) int64 {
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

func verify(t *testing.T, cfg Config, opts VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// chainConfig starts MinIO with a locked bucket and returns a sink
// configuration for it, GOVERNANCE retention, with a state directory for
// the chain.
func chainConfig(t *testing.T, bucket string) Config {
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

func TestChainAcrossRestartsVerifies(t *testing.T) {
	cfg := chainConfig(t, "chain")
	off := writeBatches(t, newSink(t, cfg), 0, 4)
	// A restart continues the chain from the state file.
	writeBatches(t, newSink(t, cfg), off, 3)
	rep := verify(t, cfg, VerifyOptions{RequireLock: true, MinRetention: 24 * time.Hour})
	if !rep.OK || rep.Objects != 7 || len(rep.Epochs) != 1 {
		t.Fatalf("report: %+v", rep)
	}
	e := rep.Epochs[0]
	if e.Chain != "master-1/s3" || e.FirstSeq != 1 || e.LastSeq != 7 || e.Start != StartNoState {
		t.Errorf("epoch: %+v", e)
	}
	// A policy longer than the retention set is reported for every object.
	rep = verify(t, cfg, VerifyOptions{MinRetention: 48 * time.Hour})
	if k := kinds(rep); k["short-retention"] != 7 || len(k) != 1 {
		t.Errorf("findings with a 48h policy: %v", k)
	}
}

func TestVerifyNamesEveryTampering(t *testing.T) {
	srv := miniotest.Start(t)
	srv.Bucket("open", false)
	cfg := testConfig(srv, "open")
	cfg.ObjectLock = ObjectLockConfig{Required: aws.Bool(false)}
	cfg.StateDir = t.TempDir()
	off := writeBatches(t, newSink(t, cfg), 0, 8)
	if rep := verify(t, cfg, VerifyOptions{}); !rep.OK {
		t.Fatalf("untouched archive: %+v", rep.Findings)
	}
	if rep := verify(t, cfg, VerifyOptions{RequireLock: true}); kinds(rep)["unlocked"] != 8 {
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
		bySeq[h.Metadata[MetaSeq]] = aws.ToString(o.Key)
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
	if err := os.Remove(filepath.Join(cfg.StateDir, "s3-chain-s3.json")); err != nil {
		t.Fatal(err)
	}
	writeBatches(t, newSink(t, cfg), off, 1)

	rep := verify(t, cfg, VerifyOptions{})
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
	if rep := verify(t, cfg, VerifyOptions{Node: "master-2"}); rep.Objects != 0 || !rep.OK {
		t.Errorf("other node: %+v", rep)
	}
}

// A crash after an upload and before the chain state recorded it must not
// give the next object, whatever its key, the same sequence number.
func TestCrashAfterUploadDoesNotForkTheChain(t *testing.T) {
	cfg := chainConfig(t, "crash")
	state := filepath.Join(cfg.StateDir, "s3-chain-s3.json")
	off := writeBatches(t, newSink(t, cfg), 0, 2)
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 30, 7)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Roll the state back to just before that upload finished: what a
	// SIGKILL between the PUT and the state commit leaves.
	var st chainState
	json.Unmarshal(before, &st)
	st.Pending = &pendingObject{Key: s.chain.st.Key, Seq: 3, SHA256: s.chain.st.SHA256}
	rolled, _ := json.Marshal(st)
	if err := os.WriteFile(state, rolled, 0o600); err != nil {
		t.Fatal(err)
	}
	// After the restart the agent re-reads more than before: another key.
	bigger := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 45, 7)...)
	if err := newSink(t, cfg).Write(context.Background(), bigger); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, cfg, VerifyOptions{RequireLock: true})
	if !rep.OK || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 4 {
		t.Errorf("after a crash between upload and state commit: epochs %+v findings %+v", rep.Epochs, rep.Findings)
	}
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

// Verify reads the agent's records in the archive and names what they
// report: audit data lost on the node, tampering, downtime, and stretches
// with no upload at all.
func TestVerifyReportsAgentRecordsAndTimeGaps(t *testing.T) {
	cfg := chainConfig(t, "marked")
	s := newSink(t, cfg)
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
	off := write(markedBatch(0, map[sinks.Kind]string{sinks.KindHeartbeat: firstStart, sinks.KindTamper: noState}, 10))
	off = write(markedBatch(off, map[sinks.Kind]string{sinks.KindGap: truncated}, 10))
	time.Sleep(2500 * time.Millisecond) // S3 times have a resolution of one second
	write(markedBatch(off, map[sinks.Kind]string{sinks.KindHeartbeat: restart, sinks.KindTamper: deleted}, 10))

	rep := verify(t, cfg, VerifyOptions{RequireLock: true, MaxGap: time.Second})
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
	if k := kinds(verify(t, cfg, VerifyOptions{})); len(k) != 2 || k["source-gap"] != 1 || k["tamper"] != 1 {
		t.Errorf("findings without a gap limit: %v", k)
	}
}

// A SIGKILL between recording the first upload of an epoch and learning
// its outcome leaves a state with no object yet (seq 0) and a pending
// one. That state is whole: the next start continues the epoch, with the
// reason it started for, instead of calling the state unreadable and
// starting another epoch (a chain-restart finding nobody caused).
func TestKilledBeforeFirstUploadKeepsTheEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s3-chain-s3.json")
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	c, err := loadChain(path, "n/s3", now)
	if err != nil {
		t.Fatal(err)
	}
	if c.start != StartNoState {
		t.Fatalf("first start: %q, want %q", c.start, StartNoState)
	}
	meta := map[string]string{}
	c.next(meta)
	if err := c.intend("k1", meta); err != nil {
		t.Fatal(err)
	}
	for _, settle := range []string{"pending", "nothing found at the key"} {
		again, err := loadChain(path, "n/s3", now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if again.st.Epoch != c.st.Epoch || again.start != StartNoState {
			t.Fatalf("%s: restart gives epoch %s (start %q), want %s (start %q)", settle, again.st.Epoch, again.start, c.st.Epoch, StartNoState)
		}
		m := map[string]string{}
		again.next(m)
		if m[MetaSeq] != "1" || m[MetaChainStart] != StartNoState {
			t.Errorf("%s: next object seq %s, chain-start %q; want 1, %q", settle, m[MetaSeq], m[MetaChainStart], StartNoState)
		}
		if err := again.resolve(nil); err != nil {
			t.Fatal(err)
		}
	}
}
