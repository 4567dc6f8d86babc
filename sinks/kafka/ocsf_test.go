package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// With format ocsf, event values are OCSF API Activity events; keys and
// the id header stay those of the line as read, so that deduplication
// and partitioning do not depend on the format; lines that are not events
// and the agent's own records are sent as they are.
func TestFormatOCSF(t *testing.T) {
	c := cluster(t)
	cfg := config(c)
	cfg.Format = "ocsf"
	s := newSink(t, cfg)
	ev := sinktest.Event(1, "ResponseComplete", 400)
	b := sinktest.Batch(sinktest.File(1), 0, ev, "not json")
	b, _ = sinktest.WithAnchors(b, 1)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	var want struct{ AuditID, Verb string }
	json.Unmarshal([]byte(ev), &want)
	sum := sha256.Sum256([]byte(ev))
	seen := 0
	for _, r := range consume(t, c, 3) {
		switch {
		case header(r, "auditrail-kind") == sinks.KindAnchor.String():
			seen++
			if !strings.HasPrefix(string(r.Value), `{"kind":"AuditrailAnchor"`) || header(r, "auditrail-format") != "" {
				t.Errorf("anchor record changed: %s", r.Value)
			}
		case string(r.Value) == "not json":
			seen++
		default:
			seen++
			var got struct {
				ClassUID int `json:"class_uid"`
				API      struct {
					Operation string
					Request   struct{ UID string }
				}
			}
			if err := json.Unmarshal(r.Value, &got); err != nil || got.ClassUID != 6003 || got.API.Operation != want.Verb || got.API.Request.UID != want.AuditID {
				t.Errorf("event value = %s (%v), want OCSF API Activity of %s", r.Value, err, ev)
			}
			if header(r, IDHeader) != hex.EncodeToString(sum[:]) || string(r.Key) != want.AuditID || header(r, "auditrail-format") != "ocsf" {
				t.Errorf("event key %q, id %q, format %q: want the line's", r.Key, header(r, IDHeader), header(r, "auditrail-format"))
			}
		}
	}
	if seen != 3 {
		t.Errorf("%d records, want 3", seen)
	}
	bad := config(c)
	bad.Format = "parquet"
	if err := bad.Validate("sinks[1].kafka"); err == nil || !strings.Contains(err.Error(), "sinks[1].kafka.format") {
		t.Errorf("format parquet: %v, want an error naming sinks[1].kafka.format", err)
	}
}
