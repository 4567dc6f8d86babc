package file

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// verify --anchors reads back every anchor the sink wrote, across its
// rotated files, and nothing else: an event that mentions the anchor kind
// in its body, or a line too long to be an anchor, is not one.
func TestReadAnchors(t *testing.T) {
	dir := t.TempDir()
	s, err := New("file", Config{Directory: dir, MaxFileBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	var want []sinks.AnchorRecord
	for i := range 4 {
		lines := sinktest.Events(i*10, 10, uint64(i))
		lines = append(lines,
			`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"create","requestObject":{"kind":"AuditrailAnchor","seq":99}}`,
			`{"kind":"AuditrailAnchor","pad":"`+strings.Repeat("x", 100<<10)+`"}`)
		b, heads := sinktest.WithAnchors(sinktest.Batch(sinktest.File(1), int64(i*1000), lines...), int64(2*i+1), int64(2*i+2))
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		want = append(want, heads...)
	}
	if fs, _ := Files(dir); len(fs) < 2 {
		t.Fatalf("%d files, want the anchors spread over several", len(fs))
	}
	got, err := ReadAnchors(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %d anchors %+v\nwant %d %+v", len(got), got, len(want), want)
	}
}
