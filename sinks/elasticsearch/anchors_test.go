package elasticsearch

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// verify --anchors reads back every anchor the sink indexed, in both
// formats, across time-named indices and scroll pages, and nothing else:
// an event that mentions the anchor kind in its body is not an anchor.
func TestReadAnchors(t *testing.T) {
	for _, format := range []string{FormatAuditrail, FormatElasticKubernetes} {
		t.Run(format, func(t *testing.T) {
			tg := newTarget(t)
			cfg := tg.config(tg.index("anchors") + "-{2006.01.02}")
			if format == FormatElasticKubernetes {
				tg.fakeOnly() // the data stream name is not unique to the run
				cfg.Index, cfg.Format = "", format
				cfg.ApplyDefaults()
			}
			s := newSink(t, cfg)
			var want []sinks.AnchorRecord
			seq := int64(0)
			for i := range 12 { // more anchors than a scroll page holds
				lines := sinktest.Events(i*10, 10, uint64(i))
				lines = append(lines, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"x`+string(rune('a'+i))+`","stage":"ResponseComplete","verb":"create","stageTimestamp":"2026-11-30T00:00:00Z","requestObject":{"kind":"AuditrailAnchor","seq":99}}`)
				var heads []int64
				for range 100 {
					seq++
					heads = append(heads, seq)
				}
				b, as := sinktest.WithAnchors(sinktest.Batch(sinktest.File(1), int64(i*1000), lines...), heads...)
				if err := s.Write(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				want = append(want, as...)
			}
			got, err := ReadAnchors(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			slices.SortFunc(got, func(a, b sinks.AnchorRecord) int { return int(a.Seq - b.Seq) })
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back %d anchors, want %d", len(got), len(want))
			}
		})
	}
}
