package s3

import (
	"context"
	"encoding/json"
	"testing"
)

// VerifyArchive runs package verify over cfg's archive, requiring Object
// Lock, and returns its report as JSON (what `auditrail verify --json`
// prints). Package verify imports this one, so these tests reach it
// through verifier_ext_test.go (package s3_test), which sets it.
var VerifyArchive func(ctx context.Context, cfg Config) ([]byte, error)

// report is what the sink's tests read of a verify report.
type report struct {
	OK     bool `json:"ok"`
	Epochs []struct {
		Chain   string `json:"chain"`
		Epoch   string `json:"epoch"`
		LastSeq int64  `json:"lastSeq"`
	} `json:"epochs"`
	Findings []struct {
		Kind   string `json:"kind"`
		Key    string `json:"key"`
		Detail string `json:"detail"`
	} `json:"findings"`
}

// verify checks cfg's archive with the verifier, requiring Object Lock.
func verify(t *testing.T, cfg Config) *report {
	t.Helper()
	out, err := VerifyArchive(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

func kinds(rep *report) map[string]int {
	out := map[string]int{}
	for _, f := range rep.Findings {
		out[f.Kind]++
	}
	return out
}

func logFindings(t *testing.T, rep *report) {
	t.Helper()
	for _, f := range rep.Findings {
		t.Logf("finding %+v", f)
	}
}
