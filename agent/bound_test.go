package agent

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// writeBackup writes lines to a lumberjack backup named for time at,
// compressed if gz, and returns their size.
func writeBackup(t *testing.T, e *env, at time.Time, lines []string, gz bool) int64 {
	t.Helper()
	path := lumberjackName(e.dir, at)
	content := strings.Join(lines, "\n") + "\n"
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(content))
		zw.Close()
		path, content = path+".gz", buf.String()
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return int64(len(strings.Join(lines, "\n")) + 1)
}

// Files pruned while the agent was down, after the one it knew as live:
// the gap record bounds what was lost from the backups still on disk.
func TestPrunedWhileDownBoundsTheLoss(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("compressed=%v", gz), func(t *testing.T) { testPrunedWhileDownBound(t, gz) })
	}
}

func testPrunedWhileDownBound(t *testing.T, gz bool) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 10) // last event at 10:00:09
	off := int64(len(strings.Join(events(0, 10), "\n")) + 1)
	// The known live file and five more were rotated once a minute and
	// pruned (10:01 .. 10:06); three backups remain (10:07 .. 10:09).
	rotated := lumberjackName(e.dir, time.Date(2026, 11, 21, 10, 1, 0, 0, time.UTC))
	if err := os.Rename(e.live, rotated); err != nil {
		t.Fatal(err)
	}
	var full int64
	for i := 0; i < 3; i++ {
		at := time.Date(2026, 11, 21, 10, 7+i, 0, 0, time.UTC)
		full = writeBackup(t, e, at, events(100+20*i, 120+20*i), gz)
	}
	appendLines(t, e.live, events(200, 205)...)
	os.Remove(rotated)

	e.start(e.options(), s)
	eventually(t, "gap record", func() bool { return len(s.ofKind(sinks.KindGap)) >= 1 })
	waitEvents(t, s, append(append(events(0, 10), events(100, 160)...), events(200, 205)...))
	gaps := s.ofKind(sinks.KindGap)
	if len(gaps) != 1 {
		t.Fatalf("%d gap records, want 1", len(gaps))
	}
	g := notices[sinks.GapRecord](t, s, sinks.KindGap)[0]
	if g.Bytes.From != off || g.Bytes.To != off || g.Bytes.ToKnown {
		t.Errorf("bytes = %+v, want the known range [%d, %d), end unknown", g.Bytes, off, off)
	}
	if g.Bytes.AtLeast != full-off {
		t.Errorf("bytes.atLeast = %d, want %d (a full file less what was read)", g.Bytes.AtLeast, full-off)
	}
	if want := full - off + 5*full; g.Bytes.Estimate != want {
		t.Errorf("bytes.estimate = %d, want %d", g.Bytes.Estimate, want)
	}
	if g.Files == nil || g.Files.AtLeast != 1 || g.Files.Estimate != 6 {
		t.Errorf("files = %+v, want atLeast 1, estimate 6", g.Files)
	}
	if g.Time.After != "2026-11-21T10:00:09.000000Z" {
		t.Errorf("time = %+v", g.Time)
	}
	if v := counterValue(t, e.reg, "auditrail_gap_bytes_total"); v != 0 {
		t.Errorf("auditrail_gap_bytes_total = %v, want 0: only bytes known for certain", v)
	}
}

// copytruncate while the agent was down: what was written between the
// copy and the truncation is lost by design; the window is reported, from
// the copy's end on, its end unknown.
func TestCopyTruncateWindowReported(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 20)
	copyEnd := int64(len(strings.Join(events(0, 20), "\n")) + 1)
	data, err := os.ReadFile(e.live)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.live+".1", data, 0o600); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.live, events(20, 25)...) // between copy and truncate: lost
	if err := os.Truncate(e.live, 0); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.live, events(25, 27)...)
	e.start(e.options(), s)
	waitEvents(t, s, append(events(0, 20), events(25, 27)...))
	eventually(t, "gap record", func() bool { return len(s.ofKind(sinks.KindGap)) == 1 })
	g := notices[sinks.GapRecord](t, s, sinks.KindGap)[0]
	if g.Reason != string(lostTruncated) || g.Bytes.From != copyEnd || g.Bytes.To != copyEnd || g.Bytes.ToKnown {
		t.Errorf("gap = %s, want truncated from the copy's end %d, end unknown", s.ofKind(sinks.KindGap)[0].Line, copyEnd)
	}
	if g.Time.After != "2026-11-21T10:00:19.000000Z" {
		t.Errorf("time = %+v", g.Time)
	}
	if v := counterValue(t, e.reg, "auditrail_rotations_total"); v != 1 {
		t.Errorf("auditrail_rotations_total = %v, want 1", v)
	}
}

// Truncated again and again under a writer that keeps its offset: every
// truncation leaves a hole of NULs where the file began, and each is
// reported, not only the first.
func TestEveryTruncationUnderOffsetKeepingWriter(t *testing.T) {
	e := newEnv(t)
	s, w, _ := followWithWriter(t, e)
	want := events(0, 20)
	for i := 0; i < 4; i++ {
		if err := w.Truncate(0); err != nil {
			t.Fatal(err)
		}
		lines := events(100+10*i, 105+10*i)
		if _, err := w.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
			t.Fatal(err)
		}
		want = append(want, lines...)
		eventually(t, fmt.Sprintf("truncation %d reported", i+1), func() bool { return len(s.ofKind(sinks.KindGap)) >= i+1 })
		eventually(t, fmt.Sprintf("lines after truncation %d", i+1), func() bool {
			got := map[string]bool{}
			for _, l := range s.events() {
				got[l] = true
			}
			for _, l := range lines {
				if !got[l] {
					return false
				}
			}
			return true
		})
	}
	for _, g := range s.ofKind(sinks.KindGap) {
		if !strings.Contains(g.Line, `"reason":"truncated"`) {
			t.Errorf("gap record %s, want reason truncated", g.Line)
		}
	}
}
