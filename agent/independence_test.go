package agent

import (
	"os"
	"testing"
	"time"
)

// A sink that stops accepting writes part-way (a Kafka outage) delays no
// other sink: while it is blocked, the live file grows and rotates, the
// backups are compressed, and the chained sink (S3, whose every upload
// queues an anchor for the blocked one) and a plain sink keep receiving
// every event; the blocked sink receives them all once it is back.
func TestSinkBlockedMidwayDelaysItAlone(t *testing.T) {
	e := newEnv(t)
	archive := newChainSink("s3")
	stuck := &recSink{name: "kafka"}
	plain := &recSink{name: "file"}
	e.start(e.options(), archive, stuck, plain)
	appendLines(t, e.live, events(0, 100)...)
	for _, s := range []*recSink{&archive.recSink, stuck, plain} {
		waitEvents(t, s, events(0, 100))
	}

	release := make(chan struct{})
	stuck.mu.Lock()
	stuck.block = release
	stuck.mu.Unlock()
	n, base := 100, time.Now()
	for i := range 6 {
		for range 5 {
			appendLines(t, e.live, events(n, n+20)...)
			n += 20
			for _, s := range []*recSink{&archive.recSink, plain} {
				waitEvents(t, s, events(0, n))
			}
		}
		backup := lumberjackName(e.dir, base.Add(time.Duration(i)*time.Second))
		if err := os.Rename(e.live, backup); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			gzipFile(t, backup)
		}
	}
	appendLines(t, e.live, events(n, n+20)...)
	n += 20
	for _, s := range []*recSink{&archive.recSink, plain} {
		waitEvents(t, s, events(0, n))
	}
	if got := len(stuck.events()); got > 100 {
		t.Fatalf("the blocked sink holds %d events, want the 100 it took before it blocked", got)
	}
	close(release)
	waitEvents(t, stuck, events(0, n))
}
