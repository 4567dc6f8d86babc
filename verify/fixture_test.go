package verify

import (
	"context"
	"testing"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
)

// The archives these tests verify are written by the s3 sink into MinIO
// (package s3test), then altered the way root on the node could, with the
// sink's own credentials and state directory (s3test.Attacker).

func verify(t *testing.T, cfg s3sink.Config, opts Options) *Report {
	t.Helper()
	rep, err := Archive(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func kinds(rep *Report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Kind]++
	}
	return out
}

func logFindings(t *testing.T, rep *Report) {
	t.Helper()
	for _, f := range rep.Findings {
		t.Logf("finding %+v", f)
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
