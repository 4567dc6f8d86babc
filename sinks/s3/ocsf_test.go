package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// With format ocsf the objects hold events as OCSF API Activity events and
// the agent's records and other lines as they are; the manifest, the chain,
// the replay check and verify all cover the bytes stored, so a batch
// delivered again is still one object and the archive verifies.
func TestFormatOCSF(t *testing.T) {
	cfg := s3test.ChainConfig(t, "ocsf")
	cfg.Format = "ocsf"
	s := s3test.NewSink(t, cfg)
	evs := sinktest.Events(0, 5, 1)
	b, _ := sinktest.WithAnchors(sinktest.Batch(sinktest.File(1), 0, append(evs, "not json")...), 1)
	for range 2 { // the second is a batch delivered again: recognised, not uploaded
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	a := s3test.NewAttacker(t, cfg)
	keys := a.BySeq()
	if len(keys) != 1 {
		t.Fatalf("%d objects, want 1: %v", len(keys), keys)
	}
	body, _ := a.Get(keys[1])
	m, recs, err := s3sink.ReadObject(keys[1], body)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(recs), "\n"), "\n")
	if m.Format != "ocsf" || len(lines) != 7 {
		t.Fatalf("manifest format %q, %d records, want ocsf and 7", m.Format, len(lines))
	}
	if _, ok := sinks.ParseAnchor([]byte(lines[0])); !ok || lines[6] != "not json" {
		t.Errorf("the agent's record and the unparsed line changed: %q, %q", lines[0], lines[6])
	}
	for i, ev := range evs {
		var got struct {
			ClassUID int `json:"class_uid"`
			API      struct{ Request struct{ UID string } }
		}
		var want struct{ AuditID string }
		json.Unmarshal([]byte(ev), &want)
		if err := json.Unmarshal([]byte(lines[i+1]), &got); err != nil || got.ClassUID != 6003 || got.API.Request.UID != want.AuditID {
			t.Errorf("record %d = %.120s (%v), want OCSF API Activity of %s", i+1, lines[i+1], err, want.AuditID)
		}
	}
	if bytes.Contains(recs, []byte(`"apiVersion":"audit.k8s.io/v1"`)) {
		t.Error("an event was stored as kube-apiserver wrote it")
	}
	if rep := verifyArchive(t, cfg); !rep.OK {
		logFindings(t, rep)
		t.Errorf("verify over OCSF objects: %v", kinds(rep))
	}
}
