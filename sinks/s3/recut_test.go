package s3_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// The batch in doubt at a crash, cut again exactly after the restart (the
// agent's journal), whatever the crash left of the upload: one object at
// its key, one version, the chain unbroken. A batch of only agent records
// is named by its cut time, which the batch cut again keeps, not by the
// time of the second attempt.
func TestBatchCutAgainIsOneObject(t *testing.T) {
	cut := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	hb := `{"kind":"AuditrailHeartbeat","apiVersion":"auditrail.io/v1","sink":"s3"}`
	for _, tc := range []struct {
		name  string
		crash string // what the chain state says after the crash
	}{{"uploaded, state not advanced", "pending"}, {"uploaded and advanced", "advanced"}, {"not uploaded", "not uploaded"}} {
		for _, notice := range []bool{false, true} {
			name := tc.name
			if notice {
				name += ", heartbeat only"
			}
			t.Run(name, func(t *testing.T) {
				cfg := s3test.ChainConfig(t, "recut")
				off := s3test.WriteBatches(t, s3test.NewSink(t, cfg), 0, 2)
				b := sinktest.Batch(sinktest.File(1), off, sinktest.Events(int(off), 30, 7)...)
				if notice {
					b = &sinks.Batch{Records: []sinks.Record{{Line: []byte(hb), Kind: sinks.KindHeartbeat,
						File: &sinks.FileRef{ID: "heartbeat-20261130T030000.000000000Z-0a0b0c0d0e0f"}}}, Bytes: len(hb)}
				}
				b.Cut = cut
				before := s3test.ChainState(t, cfg)
				s := s3test.NewSink(t, cfg)
				if tc.crash != "not uploaded" {
					if err := s.Write(context.Background(), b); err != nil {
						t.Fatal(err)
					}
				}
				if tc.crash != "advanced" {
					// What a SIGKILL between the intent and the state's
					// commit of the outcome leaves.
					var st s3sink.ChainState
					json.Unmarshal(before, &st)
					key := s.BatchKey(b)
					st.Pending = &s3sink.PendingObject{Key: key, Seq: 3, SHA256: "unknown"}
					if tc.crash == "pending" {
						st.Pending.SHA256 = s.Chain().SHA256
					}
					rolled, _ := json.Marshal(st)
					s3test.SetChainState(t, cfg, rolled)
				}
				time.Sleep(10 * time.Millisecond) // now moves on
				if err := s3test.NewSink(t, cfg).Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				out, err := s.Client().ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(cfg.Bucket)})
				if err != nil {
					t.Fatal(err)
				}
				keys := map[string]int{}
				for _, v := range out.Versions {
					keys[*v.Key]++
				}
				if len(out.Versions) != 3 || len(keys) != 3 {
					t.Errorf("%d versions under %d keys, want 3 objects, one version each: %v", len(out.Versions), len(keys), keys)
				}
				rep := verifyArchive(t, cfg)
				if !rep.OK || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 3 {
					t.Errorf("epochs %+v findings %+v", rep.Epochs, rep.Findings)
				}
			})
		}
	}
}
