package kafka

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// verify --anchors reads back every anchor the sink produced, from every
// partition, and nothing else: events that mention the anchor kind in
// their bodies are not anchors.
func TestReadAnchors(t *testing.T) {
	c := cluster(t)
	cfg := config(c)
	s := newSink(t, cfg)
	var want []sinks.AnchorRecord
	for i := range 4 {
		lines := sinktest.Events(i*10, 10, uint64(i))
		lines = append(lines, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x","stage":"ResponseComplete","verb":"create","requestObject":{"kind":"AuditrailAnchor","seq":99}}`)
		b, heads := sinktest.WithAnchors(sinktest.Batch(sinktest.File(1), int64(i*1000), lines...), int64(2*i+1), int64(2*i+2))
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		want = append(want, heads...)
	}
	got, err := ReadAnchors(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	bySeq := func(a, b sinks.AnchorRecord) int { return int(a.Seq - b.Seq) }
	slices.SortFunc(got, bySeq) // partitions are read one after the other
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %d anchors %+v\nwant %d %+v", len(got), got, len(want), want)
	}
}
