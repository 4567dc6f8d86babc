package agent

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// BenchmarkScanContention measures how the directory scans (the watcher's,
// every poll interval and on every notification) and the readiness check
// (/readyz, Once) get in the way of the readers and writers. Each
// iteration is one scan of a directory with the live file and 16 rotated
// ones, half of them compressed, while three readers take read steps
// (look up their file and its state, read 64 KiB, acknowledge) and a
// probe, as fast as it can, checks whether every sink caught up, whose
// answer needs the end of the live file read. It reports the readers'
// steps per scan: the more a scan or the check holds what the readers
// need, the fewer.
// Run it with -mutexprofile to see who holds what the others wait for:
//
//	go test -run '^$' -bench ScanContention -mutexprofile mutex.out ./agent
func BenchmarkScanContention(b *testing.B) {
	reg, names, liveEntry, end := scanBench(b)
	var stop atomic.Bool
	var steps atomic.Int64
	var wg sync.WaitGroup
	for _, s := range names {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for i := int64(0); !stop.Load(); i++ {
				// One read step: the reader's lookups, a read, framing
				// (here a count of the lines), the acknowledgement.
				e := reg.next(s, 0)
				reg.view(e, s)
				h := reg.files.acquire(liveEntry)
				n, _ := h.f.ReadAt(buf, i%4*(16<<10))
				bytes.Count(buf[:n], []byte{'\n'})
				reg.view(liveEntry, s)
				reg.files.release(h)
				reg.ack(s, []sinks.Segment{{File: liveEntry.ref, Start: end, End: end}})
				steps.Add(1)
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			reg.caughtUp()
		}
	})
	b.ResetTimer()
	for b.Loop() {
		reg.scan()
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	b.ReportMetric(float64(steps.Load())/float64(b.N), "steps/scan")
}

func writeLines(b *testing.B, path string, lines []string, tail string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		f.WriteString(l + "\n")
	}
	if _, err := f.WriteString(tail); err != nil {
		b.Fatal(err)
	}
}

func writeGzip(b *testing.B, path string, lines []string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	for _, l := range lines {
		zw.Write([]byte(l + "\n"))
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkScan measures a scan of BenchmarkScanContention's directory
// alone: its own cost, without contention.
func BenchmarkScan(b *testing.B) {
	reg, _, _, _ := scanBench(b)
	for b.Loop() {
		reg.scan()
	}
}

// scanBench makes the registry the scan benchmarks scan, its sinks, the
// live file, and the cursors' offset in it.
func scanBench(b *testing.B) (reg *registry, names []string, liveEntry *entry, end int64) {
	dir := filepath.Join(b.TempDir(), "audit")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	n := 0
	for i := range 16 {
		var lines []string
		for range 2000 {
			lines = append(lines, event(n))
			n++
		}
		name := lumberjackName(dir, at.Add(time.Duration(i)*time.Minute))
		if i%2 == 0 {
			writeGzip(b, name+".gz", lines)
		} else {
			writeLines(b, name, lines, "\n")
		}
	}
	live := filepath.Join(dir, "audit.log")
	var lines []string
	for range 200 {
		lines = append(lines, event(n))
		n++
	}
	// The live file ends with half a line; the cursors stand 60 KiB before
	// its end, which the caught-up check reads.
	writeLines(b, live, lines, `{"kind":"Event","apiVersion":"audit.k8s.io/v1"`)
	names = []string{"s3", "es", "kafka"}
	reg = newRegistry(live, names, 4, &checkpoint.State{}, newMetrics(nil), testLogger(), time.Now)
	reg.scan()
	fi, err := os.Stat(live)
	if err != nil {
		b.Fatal(err)
	}
	for e := reg.next(names[0], 0); e != nil; e = reg.next(names[0], e.ref.Seq) {
		liveEntry = e
	}
	end = fi.Size() - 60<<10
	for _, s := range names {
		reg.ack(s, []sinks.Segment{{File: liveEntry.ref, Start: 0, End: end}})
	}

	return reg, names, liveEntry, end
}
