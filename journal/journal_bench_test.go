package journal

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
)

// BenchmarkBatch is the journal's cost per batch: the intent before the
// write and the delivered positions after it, two replacements of the
// journal's content in the state directory, here the test's temporary
// directory. ns/op is mostly waiting for the disk; cpu-ns/op is the
// process's user and system CPU time per batch.
func BenchmarkBatch(b *testing.B) {
	s, err := Open(b.TempDir(), "s3", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	f := checkpoint.File{Seq: 7, ID: "2049-1234-9f86d081884c7d65", Dev: 2049, Ino: 1234, FingerprintLen: 1024,
		Fingerprint: fmt.Sprintf("%064x", 1), Path: "/var/log/kubernetes/audit/audit.log", Size: 90 << 20}
	var off int64
	cpu0 := cpuTime(b)
	for b.Loop() {
		in := &Intent{Cut: time.Now(), Records: 1000, RecordsCRC32C: 1, Files: []checkpoint.File{f},
			Segments: []Segment{{Seq: f.Seq, ID: f.ID, Start: off, End: off + 2<<20, LastEventTime: "2026-11-30T03:00:00.000000Z"}},
			Made:     []Made{{Index: 0, Kind: "start", FileID: "start-20261130T030000.000000000Z-0a0b0c0d0e0f", Line: []byte(`{"kind":"AuditrailAgentStarted"}`)}}}
		if err := s.Intend(in); err != nil {
			b.Fatal(err)
		}
		off += 2 << 20
		g, err := s.Delivered([]File{{File: f, Cursor: checkpoint.Cursor{Offset: off}}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Covered(g - 1) // a checkpoint every batch or so
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the process's user and system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
