package s3

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

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
	rep := verify(t, cfg)
	if !rep.OK || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 4 {
		t.Errorf("after a crash between upload and state commit: epochs %+v findings %+v", rep.Epochs, rep.Findings)
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
