package e2e

import (
	"path/filepath"
	"testing"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/rules"
)

// BenchmarkEventCost measures, per event of the e2e and benchmark corpus
// mix, what the agent spends on parsing, the redaction check and the
// detection rules, so their cost can be quoted per GB.
func BenchmarkEventCost(b *testing.B) {
	w := NewWriter(WriterConfig{Path: filepath.Join(b.TempDir(), "audit.log"), MaxSizeMB: 100, Seed: 11})
	var lines [][]byte
	size := 0
	for n := 1; n <= 20000; n++ {
		line := encodeEvent(b, w.event(n))
		lines = append(lines, line)
		size += len(line) + 1
	}
	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, f func(line []byte, ev *auditjson.Event)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var ev auditjson.Event
			for b.Loop() {
				for _, l := range lines {
					f(l, &ev)
				}
			}
		})
	}
	var dst []*rules.Rule
	run("parse", func(l []byte, ev *auditjson.Event) { auditjson.Parse(l, ev) })
	run("parse+redaction-check", func(l []byte, ev *auditjson.Event) {
		auditjson.Parse(l, ev)
		redact.Candidate(l, ev)
	})
	run("parse+rules", func(l []byte, ev *auditjson.Event) {
		auditjson.Parse(l, ev)
		dst = set.Match(l, ev, false, dst[:0])
	})
	// The rules alone, on events parsed beforehand.
	evs := make([]auditjson.Event, len(lines))
	for i, l := range lines {
		auditjson.Parse(l, &evs[i])
	}
	b.Run("rules", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for i, l := range lines {
				dst = set.Match(l, &evs[i], false, dst[:0])
			}
		}
	})
}
