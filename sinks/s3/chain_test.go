package s3_test

import (
	"context"
	"encoding/json"
	"testing"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// A crash after an upload and before the chain state recorded it must not
// give the next object, whatever its key, the same sequence number.
func TestCrashAfterUploadDoesNotForkTheChain(t *testing.T) {
	cfg := s3test.ChainConfig(t, "crash")
	off := s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 2)
	before := s3test.ChainState(t, cfg)
	s := s3test.NewSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 30, 7)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	// Roll the state back to just before that upload finished: what a
	// SIGKILL between the PUT and the state commit leaves.
	var st s3sink.ChainState
	json.Unmarshal(before, &st)
	st.Pending = &s3sink.PendingObject{Key: s.Chain().Key, Seq: 3, SHA256: s.Chain().SHA256}
	rolled, _ := json.Marshal(st)
	s3test.SetChainState(t, cfg, rolled)
	// After the restart the agent re-reads more than before: another key.
	bigger := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 45, 7)...)
	if err := s3test.NewSink(t, cfg).Write(context.Background(), bigger); err != nil {
		t.Fatal(err)
	}
	rep := verifyArchive(t, cfg)
	if !rep.OK || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 4 {
		t.Errorf("after a crash between upload and state commit: epochs %+v findings %+v", rep.Epochs, rep.Findings)
	}
}
