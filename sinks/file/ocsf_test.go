package file

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// With format ocsf, events are written as OCSF API Activity events, one
// per line; lines that are not events, and the agent's own records, are
// written as they are, so that nothing is lost.
func TestFormatOCSF(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Directory, cfg.Format = dir, "ocsf"
	s, err := New("f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := sinktest.Event(1, "ResponseComplete", 400)
	b := sinktest.Batch(sinktest.File(1), 0, ev, "not json")
	b.Records = append(b.Records, sinks.Record{Line: []byte(`{"kind":"AuditrailHeartbeat","apiVersion":"auditrail.io/v1"}`), Kind: sinks.KindHeartbeat})
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	_, content := readAll(t, dir)
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), content)
	}
	var got struct {
		ClassUID int `json:"class_uid"`
		API      struct {
			Operation string
			Request   struct{ UID string }
		}
	}
	var want struct{ AuditID, Verb string }
	json.Unmarshal([]byte(ev), &want)
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil || got.ClassUID != 6003 ||
		got.API.Operation != want.Verb || got.API.Request.UID != want.AuditID {
		t.Errorf("event line = %s (%v), want OCSF API Activity of %s", lines[0], err, ev)
	}
	if lines[1] != "not json" || !strings.Contains(lines[2], "AuditrailHeartbeat") {
		t.Errorf("other records changed: %q", lines[1:])
	}
}

func TestFormatValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Directory, cfg.Format = "/x", "parquet"
	if err := cfg.Validate("sinks[0].file"); err == nil || !strings.Contains(err.Error(), "sinks[0].file.format") {
		t.Errorf("format parquet: %v, want an error naming sinks[0].file.format", err)
	}
}
