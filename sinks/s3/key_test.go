package s3

import (
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

func TestKeyLayout(t *testing.T) {
	cfg := Config{Prefix: "/audit/", Cluster: "prod", Node: "master-1", Compression: "zstd"}
	enc, _ := newEncoder("zstd")
	s := &Sink{cfg: cfg, enc: enc}
	f1, f2 := sinktest.File(1), sinktest.File(2)
	b := sinktest.Batch(f1, 4096, sinktest.Event(1, "ResponseComplete", 800))
	first := s.firstEventTime(b)
	if want := time.Date(2026, 11, 21, 10, 0, 1, 1000, time.UTC); !first.Equal(want) {
		t.Fatalf("first event time = %v, want %v", first, want)
	}
	got := s.key(b, first)
	want := "audit/cluster=prod/node=master-1/dt=2026-11-21/hour=10/20261121T100001.000001Z_2049-1001-0123456789abcdef_00000000000000004096-00000000000000004897.ndjson.zst"
	if got != want {
		t.Errorf("key\n got %s\nwant %s", got, want)
	}
	b.Segments = append(b.Segments, sinks.Segment{File: f2, Start: 0, End: 100})
	if got := s.key(b, first); !strings.HasSuffix(got, "_2049-1001-0123456789abcdef_00000000000000004096-2049-1002-0123456789abcdef_00000000000000000100.ndjson.zst") {
		t.Errorf("key spanning two files = %s", got)
	}
}
