package agent

import (
	"testing"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// A cursor only moves forward, and only by an acknowledgement: a late or
// repeated acknowledgement of an earlier range leaves it where it is, and
// a finished file stays finished.
func TestPositionsAckOnlyAdvances(t *testing.T) {
	f1 := &sinks.FileRef{Seq: 1, ID: "f1"}
	f2 := &sinks.FileRef{Seq: 2, ID: "f2"}
	st := &checkpoint.State{Files: []checkpoint.File{{Seq: 1, ID: "f1", Cursors: map[string]checkpoint.Cursor{"a": {Offset: 100}}}}}
	p := newPositions([]string{"a", "b"}, st, newMetrics(nil), testLogger(), &bell{})
	steps := []struct {
		name     string
		sink     string
		segs     []sinks.Segment
		finished bool
		want     map[string]checkpoint.Cursor // of f1
	}{
		{"resumed from the checkpoint", "", nil, false,
			map[string]checkpoint.Cursor{"a": {Offset: 100}}},
		{"ahead", "a", []sinks.Segment{{File: f1, Start: 100, End: 250, LastEventTime: "t1"}}, false,
			map[string]checkpoint.Cursor{"a": {Offset: 250, LastEventTime: "t1"}}},
		{"behind, late", "a", []sinks.Segment{{File: f1, Start: 0, End: 50}}, false,
			map[string]checkpoint.Cursor{"a": {Offset: 250, LastEventTime: "t1"}}},
		{"another sink", "b", []sinks.Segment{{File: f1, Start: 0, End: 80, LastEventTime: "t0"}}, false,
			map[string]checkpoint.Cursor{"a": {Offset: 250, LastEventTime: "t1"}, "b": {Offset: 80, LastEventTime: "t0"}}},
		{"finished by a", "a", []sinks.Segment{{File: f1, Start: 250, End: 300, Done: true}, {File: f2, Start: 0, End: 10}}, true,
			map[string]checkpoint.Cursor{"a": {Offset: 300, LastEventTime: "t1", Done: true}, "b": {Offset: 80, LastEventTime: "t0"}}},
		{"finished again", "a", []sinks.Segment{{File: f1, Start: 300, End: 300, Done: true}}, false,
			map[string]checkpoint.Cursor{"a": {Offset: 300, LastEventTime: "t1", Done: true}, "b": {Offset: 80, LastEventTime: "t0"}}},
	}
	for _, s := range steps {
		if s.segs != nil {
			if got := p.ack(s.sink, s.segs); got != s.finished {
				t.Errorf("%s: ack reported finished=%v, want %v", s.name, got, s.finished)
			}
		}
		for _, sink := range []string{"a", "b"} {
			if got := p.cursor(1, sink); got != s.want[sink] {
				t.Errorf("%s: cursor of %s = %+v, want %+v", s.name, sink, got, s.want[sink])
			}
		}
	}
	if got := p.cursor(2, "a"); got.Offset != 10 || got.Done {
		t.Errorf("cursor of a in a file first acknowledged now = %+v, want offset 10", got)
	}
	if !p.doneBy("a")[1] || p.doneBy("b")[1] || p.finished().all[1] {
		t.Fatalf("done sets after a finished f1: a %v, b %v, all %v", p.doneBy("a"), p.doneBy("b"), p.finished().all)
	}
	if !p.ack("b", []sinks.Segment{{File: f1, Start: 80, End: 300, Done: true}}) || !p.finished().all[1] {
		t.Fatalf("f1 not finished by every sink after b finished it: %v", p.finished().all)
	}
	p.forget([]uint64{1})
	if p.finished().all[1] || p.doneBy("a")[1] || p.cursor(1, "a") != (checkpoint.Cursor{}) {
		t.Fatal("a forgotten file is still in the table")
	}
}

// A snapshot reports a change once per change, and again after markDirty
// (a failed commit).
func TestPositionsSnapshotDirty(t *testing.T) {
	p := newPositions([]string{"a"}, &checkpoint.State{}, newMetrics(nil), testLogger(), &bell{})
	f := &sinks.FileRef{Seq: 1, ID: "f"}
	p.ack("a", []sinks.Segment{{File: f, End: 10}})
	if s := p.snapshot(); !s.dirty || s.rows[1]["a"].Offset != 10 {
		t.Fatalf("first snapshot after an ack: dirty %v, rows %v", s.dirty, s.rows)
	}
	if p.snapshot().dirty {
		t.Fatal("a snapshot without a change since the last one is dirty")
	}
	p.markDirty()
	if !p.snapshot().dirty {
		t.Fatal("a snapshot after markDirty is not dirty")
	}
}
