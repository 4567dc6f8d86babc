package s3_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// A batch delivered again finds its own object at its key (412): the
// content decides that it is the same batch, and the chain follows that
// object when the state had not recorded it, whether the upload was
// single or multipart.
func TestReplayIsSettledByContent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		multipart bool
	}{{"single", false}, {"multipart", true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s3test.ChainConfig(t, "replay-"+tc.name)
			var b *sinks.Batch
			if tc.multipart {
				cfg.Compression = "none"
				cfg.PartSize, cfg.MultipartThreshold = 5<<20, 5<<20
				var ls []string
				for i := 0; len(ls)*4000 < 6<<20; i++ {
					ls = append(ls, sinktest.Event(i, "ResponseComplete", 4000))
				}
				b = sinktest.Batch(sinktest.File(1), 0, ls...)
			} else {
				b = sinktest.Batch(sinktest.File(1), 0, lines(0)...)
			}
			first := s3test.NewSink(t, cfg)
			if err := first.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			// The state lost the upload (rolled back to the epoch's start,
			// without a pending record): the replay alone must put the
			// chain back.
			var st s3sink.ChainState
			raw := s3test.ChainState(t, cfg)
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatalf("chain state: %v %s", err, raw)
			}
			again := s3test.NewSink(t, cfg)
			again.SetChain(s3sink.ChainState{Epoch: st.Epoch}, s3sink.StartNoState)
			if err := again.Write(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			if v := again.Skipped(); v != 1 {
				t.Errorf("skipped = %v, want 1", v)
			}
			if again.Chain().Seq != 1 || again.Chain().SHA256 != st.SHA256 {
				t.Errorf("chain after the replay: %+v, want seq 1 and %s", again.Chain(), st.SHA256)
			}
			next := sinktest.Batch(sinktest.File(1), b.Segments[0].End, lines(9000)...)
			if err := again.Write(context.Background(), next); err != nil {
				t.Fatal(err)
			}
			vs, err := srvClient(t, cfg).ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(cfg.Bucket)})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs.Versions) != 2 {
				t.Errorf("%d versions, want 2", len(vs.Versions))
			}
			rep := verifyArchive(t, cfg)
			if !rep.OK || len(rep.Epochs) != 1 || rep.Epochs[0].LastSeq != 2 {
				t.Errorf("epochs %+v findings %+v", rep.Epochs, rep.Findings)
			}
		})
	}
}
