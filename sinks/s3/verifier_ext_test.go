package s3_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/verify"
)

// verifyArchive checks cfg's archive with package verify, requiring
// Object Lock: what `auditrail verify` reports.
func verifyArchive(t *testing.T, cfg s3sink.Config) *verify.Report {
	t.Helper()
	rep, err := verify.Archive(context.Background(), cfg, verify.Options{RequireLock: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func kinds(rep *verify.Report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Kind]++
	}
	return out
}

func logFindings(t *testing.T, rep *verify.Report) {
	t.Helper()
	for _, f := range rep.Findings {
		t.Logf("finding %+v", f)
	}
}

func srvClient(t *testing.T, cfg s3sink.Config) *s3.Client {
	t.Helper()
	c, err := s3sink.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
