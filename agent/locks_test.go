package agent

import (
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// No lock of the file tracker or the position table is held while an
// audit file is opened, read or closed: a slow disk must not stall the
// readers, the acknowledgements or /readyz. The registry is driven from
// this goroutine alone, so a lock found taken at a file operation is held
// by the operation's own caller.
func TestNoFileIOUnderLock(t *testing.T) {
	e := newEnv(t)
	at := time.Now().Add(-time.Hour)
	writeBackup(t, e, at, events(0, 10), false)
	writeBackup(t, e, at.Add(time.Minute), events(10, 20), true)
	appendLines(t, e.live, events(20, 30)...)
	f, err := os.OpenFile(e.live, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"kind":"Event"`) // half a line
	f.Close()
	names := []string{"a", "b"}
	reg := newRegistry(e.live, names, 1, &checkpoint.State{}, newMetrics(nil), testLogger(), time.Now)
	ops := make(map[string]int)
	watch := func(reg *registry) {
		testHookFileIO = func(op string) {
			ops[op]++
			if !reg.files.mu.TryLock() {
				t.Errorf("%s with the tracker's lock held", op)
			} else {
				reg.files.mu.Unlock()
			}
			if !reg.pos.mu.TryLock() {
				t.Errorf("%s with the position table's lock held", op)
			} else {
				reg.pos.mu.Unlock()
			}
		}
	}
	watch(reg)
	t.Cleanup(func() { testHookFileIO = nil })

	reg.scan() // reads every candidate; holds the oldest file open
	var files []*entry
	for f := reg.next("a", 0); f != nil; f = reg.next("a", f.ref.Seq) {
		files = append(files, f)
	}
	if len(files) != 3 {
		t.Fatalf("found %d files, want 3", len(files))
	}
	live := files[2]
	h := reg.files.acquire(live) // not held (maxOpen 1): opened for the reader
	if h == nil {
		t.Fatal("the live file cannot be acquired")
	}
	reg.files.release(h)
	appendLines(t, e.live, "")
	reg.scan() // reads the live file's new end
	for _, s := range names {
		// Finishing the first file releases it and holds the next one.
		reg.ack(s, []sinks.Segment{{File: files[0].ref, End: 1, Done: true}})
		reg.ack(s, []sinks.Segment{{File: files[1].ref, End: 1, Done: true}})
		reg.ack(s, []sinks.Segment{{File: live.ref, End: 1}})
	}
	reg.caughtUp() // reads the live file after the cursors

	fresh := newRegistry(e.live, names, 1, &checkpoint.State{}, newMetrics(nil), testLogger(), time.Now)
	watch(fresh)
	fresh.scan()
	fresh.skipExisting() // reads the live file's end
	fresh.files.closeAll()
	reg.files.closeAll()

	for _, op := range []string{"read candidate", "open", "close", "read tail", "read end"} {
		if ops[op] == 0 {
			t.Errorf("no %q seen: the test no longer covers it (saw %v)", op, slices.Sorted(maps.Keys(ops)))
		}
	}
}
