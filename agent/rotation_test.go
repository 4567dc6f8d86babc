package agent

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

func TestFollowLiveFile(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 10)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 10))
	appendLines(t, e.live, events(10, 20)...)
	waitEvents(t, s, events(0, 20))
}

// Rename-then-create, as lumberjack does, including a write that lands in
// the old file after the rename but before the writer switched.
func TestRenameThenCreate(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.start(e.options(), s)
	appendLines(t, e.live, events(0, 50)...)
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		f, err := os.OpenFile(e.live, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		backup := lumberjackName(e.dir, base.Add(time.Duration(i)*time.Second))
		if err := os.Rename(e.live, backup); err != nil {
			t.Fatal(err)
		}
		f.WriteString(event(i*1000) + "\n") // still the old file
		f.Close()
		appendLines(t, e.live, events(i*1000+1, i*1000+50)...)
	}
	var want []string
	want = append(want, events(0, 50)...)
	for i := 1; i <= 5; i++ {
		want = append(want, events(i*1000, i*1000+50)...)
	}
	waitEvents(t, s, want)
}

// A writer that renamed its file may still write a line through its
// old descriptor before it creates the next file (a line in flight at the
// rename, logrotate's create with a daemon that reopens on a signal). The
// agent has read the renamed file to its end and scanned it under its new
// name before that line comes: the file is still read until another file
// is live.
func TestWriteThroughOldDescriptorAfterRename(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.start(e.options(), s)
	appendLines(t, e.live, events(0, 50)...)
	waitEvents(t, s, events(0, 50))
	f, err := os.OpenFile(e.live, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Rename(e.live, lumberjackName(e.dir, time.Now())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // scans (every 50 ms) see it renamed, at its end
	if _, err := f.WriteString(event(50) + "\n"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.live, events(51, 100)...)
	waitEvents(t, s, events(0, 100))
}

func gzipFile(t *testing.T, src string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(src + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(out)
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	out.Close()
	os.Remove(src)
}

// The agent stops part-way through a file that is then rotated and
// compressed; it resumes inside the .gz at the checkpointed offset.
func TestResumeInsideGzip(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 100)
	appendLines(t, e.live, events(100, 150)...) // unread when rotated
	backup := lumberjackName(e.dir, time.Now())
	os.Rename(e.live, backup)
	gzipFile(t, backup)
	appendLines(t, e.live, events(150, 200)...)

	e.start(e.options(), s)
	waitEvents(t, s, events(0, 200))
}

// A backup compressed while the agent is running: the .gz is recognised as
// the same file and not read twice.
func TestGzipWhileRunning(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 100)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 100))
	backup := lumberjackName(e.dir, time.Now())
	os.Rename(e.live, backup)
	appendLines(t, e.live, events(100, 120)...)
	waitEvents(t, s, events(0, 120))
	gzipFile(t, backup)
	appendLines(t, e.live, events(120, 140)...)
	waitEvents(t, s, events(0, 140))
}

// Several rotations while the agent is down, some compressed: on start it
// reads every newer file in order.
func TestDownAcrossRotations(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 10)
	base := time.Now()
	n := 10
	for i := 0; i < 6; i++ {
		appendLines(t, e.live, events(n, n+10)...)
		n += 10
		backup := lumberjackName(e.dir, base.Add(time.Duration(i)*time.Second))
		os.Rename(e.live, backup)
		if i%2 == 0 {
			gzipFile(t, backup)
		}
	}
	appendLines(t, e.live, events(n, n+10)...)
	n += 10
	e.start(e.options(), s)
	waitEvents(t, s, events(0, n))
}

// A backup pruned while the agent is down, before it was read: a gap record
// names the file, the byte range and the time range; what is on disk still
// arrives.
func TestPrunedWhileDownReportsGap(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 10)
	appendLines(t, e.live, events(10, 20)...)
	backup := lumberjackName(e.dir, time.Now())
	os.Rename(e.live, backup)
	// Create the new file before pruning so that it cannot reuse the
	// pruned inode (that case is TestInodeReuseDetectedByFingerprint).
	appendLines(t, e.live, events(20, 30)...)
	os.Remove(backup) // pruned

	e.start(e.options(), s)
	eventually(t, "gap record", func() bool { return len(s.ofKind(sinks.KindGap)) == 1 })
	want := append(events(0, 10), events(20, 30)...)
	waitEvents(t, s, want)
	var g sinks.GapRecord
	if err := json.Unmarshal([]byte(s.ofKind(sinks.KindGap)[0].Line), &g); err != nil {
		t.Fatal(err)
	}
	firstPart := int64(len(strings.Join(events(0, 10), "\n")) + 1)
	if g.Kind != sinks.GapRecordKind || g.Reason != "pruned" || g.Sink != "rec" {
		t.Errorf("gap = %+v", g)
	}
	if g.Bytes.From != firstPart || g.Bytes.To < firstPart {
		t.Errorf("gap bytes = %+v, want from %d", g.Bytes, firstPart)
	}
	if g.Bytes.ToKnown {
		t.Errorf("the file was live when last seen; its end cannot be known")
	}
	if g.Time.After != "2026-11-21T10:00:09.000000Z" || g.Time.Before != "2026-11-21T10:00:00.000000Z" {
		t.Errorf("gap time = %+v", g.Time)
	}
	if g.File.ID == "" || !strings.Contains(g.File.Path, "audit.log") {
		t.Errorf("gap file = %+v", g.File)
	}
	if v := counterValue(t, e.reg, "auditrail_gaps_total"); v != 1 {
		t.Errorf("auditrail_gaps_total = %v, want 1", v)
	}
}

// rotateBehindSlowSink starts an agent with a fast sink and a blocked slow
// one, and rotates the live file once the fast sink has read it: the slow
// sink is behind on the backup.
func rotateBehindSlowSink(t *testing.T, e *env) (fast, slow *recSink, backup string) {
	t.Helper()
	slow = &recSink{name: "slow", block: make(chan struct{})}
	fast = &recSink{name: "fast"}
	appendLines(t, e.live, events(0, 300)...)
	e.start(e.options(), fast, slow)
	waitEvents(t, fast, events(0, 300))
	backup = lumberjackName(e.dir, time.Now())
	os.Rename(e.live, backup)
	appendLines(t, e.live, events(300, 310)...)
	waitEvents(t, fast, events(0, 310))
	return fast, slow, backup
}

// A backup pruned while a slow sink is behind but the agent holds it open:
// nothing is lost.
func TestPrunedWhileOpenIsStillRead(t *testing.T) {
	e := newEnv(t)
	_, slow, backup := rotateBehindSlowSink(t, e)
	os.Remove(backup)
	time.Sleep(200 * time.Millisecond) // let scans see it gone
	close(slow.block)
	waitEvents(t, slow, events(0, 310))
	if n := len(slow.ofKind(sinks.KindGap)); n != 0 {
		t.Fatalf("%d gap records for a file that was held open", n)
	}
}

// copytruncate: logrotate copies the file and truncates it in place. The
// copy is recognised by content and the new content is read from 0.
func TestCopyTruncate(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 20)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 20))
	data, _ := os.ReadFile(e.live)
	os.WriteFile(e.live+".1", data, 0o600)
	os.Truncate(e.live, 0)
	appendLines(t, e.live, events(20, 25)...)
	waitEvents(t, s, events(0, 25))
}

// copytruncate's copy seen while it is being written, first empty, then
// shorter than the fingerprint, is the live file's content, not a new file.
func TestCopyTruncateSeenMidCopy(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 20)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 20))
	data, _ := os.ReadFile(e.live)
	f, err := os.OpenFile(e.live+".1", os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.Sleep(200 * time.Millisecond) // scans see the copy empty
	f.Write(data[:300])
	time.Sleep(200 * time.Millisecond) // and then a few hundred bytes long
	f.Write(data[300:])
	os.Truncate(e.live, 0)
	appendLines(t, e.live, events(20, 25)...)
	waitEvents(t, s, events(0, 25))
}

// Truncated while the agent was down: read from 0 and report possible loss.
func TestTruncatedWhileDown(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 20)
	os.Truncate(e.live, 0)
	appendLines(t, e.live, events(20, 22)...)
	e.start(e.options(), s)
	eventually(t, "gap", func() bool { return len(s.ofKind(sinks.KindGap)) == 1 })
	waitEvents(t, s, events(0, 22))
	var g sinks.GapRecord
	json.Unmarshal([]byte(s.ofKind(sinks.KindGap)[0].Line), &g)
	if g.Reason != string(lostTruncated) {
		t.Fatalf("gap reason %q, want truncated", g.Reason)
	}
}

// Inode reuse: the same (device, inode) now holds different content, longer
// than the saved offset. The fingerprint tells them apart.
func TestInodeReuseDetectedByFingerprint(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 5)
	// Rewrite in place: same inode, new and longer content.
	f, err := os.OpenFile(e.live, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Join(events(100, 120), "\n") + "\n")
	f.Close()
	e.start(e.options(), s)
	waitEvents(t, s, append(events(0, 5), events(100, 120)...))
	gaps := s.ofKind(sinks.KindGap)
	if len(gaps) != 1 || !strings.Contains(gaps[0].Line, `"reason":"replaced"`) {
		t.Fatalf("gaps = %v, want one 'replaced'", gaps)
	}
}

// Only newline-terminated lines leave the tailer.
func TestPartialLine(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.start(e.options(), s)
	line := event(1)
	f, _ := os.OpenFile(e.live, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	defer f.Close()
	f.WriteString(event(0) + "\n" + line[:40])
	waitEvents(t, s, events(0, 1))
	time.Sleep(200 * time.Millisecond)
	if n := len(s.records()); n != 1 {
		t.Fatalf("partial line delivered: %d records", n)
	}
	f.WriteString(line[40:] + "\n")
	waitEvents(t, s, events(0, 2))
}

// A rotated file that ends without a newline: the tail is shipped raw,
// marked unparsed (as a stub to a sink that redacts), and the next file is
// read.
func TestFinalFileWithoutNewline(t *testing.T) {
	e := newEnv(t)
	s, red := &recSink{name: "rec"}, &recSink{name: "red"}
	f, _ := os.Create(e.live)
	f.WriteString(event(0) + "\n" + `{"kind":"Event","audit`)
	f.Close()
	raw := sinkOpts(s)
	raw.KeepSecrets = true
	e.startWith(e.options(), []SinkOptions{raw, sinkOpts(red)})
	waitEvents(t, s, events(0, 1))
	os.Rename(e.live, lumberjackName(e.dir, time.Now()))
	appendLines(t, e.live, events(1, 3)...)
	waitEvents(t, s, events(0, 3))
	un := s.ofKind(sinks.KindUnparsed)
	if len(un) != 1 || un[0].Line != `{"kind":"Event","audit` {
		t.Fatalf("unparsed = %v", un)
	}
	waitEvents(t, red, events(0, 3))
	var stub sinks.UnparsedStub
	if un := red.ofKind(sinks.KindUnparsed); len(un) != 1 || json.Unmarshal([]byte(un[0].Line), &stub) != nil ||
		stub.Kind != sinks.UnparsedStubKind || stub.Reason != "no_newline" || stub.SHA256 != sha256hex(`{"kind":"Event","audit`) {
		t.Fatalf("unparsed in the sink that redacts = %v", un)
	}
}

func TestHugeLines(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	opts := e.options()
	opts.MaxLineBytes = 3 << 20
	big := `{"kind":"Event","auditID":"big-one","stage":"ResponseComplete","responseObject":{"data":"` + strings.Repeat("a", 2<<20) + `"}}`
	huge := `{"kind":"Event","auditID":"huge-one","stage":"ResponseComplete","responseObject":{"data":"` + strings.Repeat("b", 7<<20) + `"}}`
	appendLines(t, e.live, event(0), big, event(1), huge, event(2))
	e.start(opts, s)
	waitEvents(t, s, []string{event(0), big, event(1), event(2)})
	stubs := s.ofKind(sinks.KindOversized)
	if len(stubs) != 1 {
		t.Fatalf("%d stubs, want 1", len(stubs))
	}
	var st sinks.OversizedStub
	if err := json.Unmarshal([]byte(stubs[0].Line), &st); err != nil {
		t.Fatal(err)
	}
	if st.AuditID != "huge-one" || st.Size != int64(len(huge)) || !st.Complete || st.SHA256 != sha256hex(huge) {
		t.Fatalf("stub = %+v", st)
	}
	wantOff := int64(len(event(0)) + len(big) + len(event(1)) + 3)
	if stubs[0].Offset != wantOff || st.Offset != wantOff {
		t.Fatalf("stub offset %d/%d, want %d", stubs[0].Offset, st.Offset, wantOff)
	}
	// The line after the stub was framed at the right place and a restart
	// does not re-deliver anything.
	appendLines(t, e.live, event(3))
	waitEvents(t, s, []string{event(0), big, event(1), event(2), event(3)})
}

// Bad input is shipped raw and marked; empty lines are skipped. A sink
// that redacts gets stubs instead of the lines that may be parts of
// events.
func TestMalformedLines(t *testing.T) {
	e := newEnv(t)
	s, red := &recSink{name: "rec"}, &recSink{name: "red"}
	bad := []string{"not json at all", `{"kind":"Event","trunc`, "{\"a\":\"\xff\"}", "{\"a\":\"\x00\"}", `{"a":1}` + "\r"}
	appendLines(t, e.live, event(0))
	appendLines(t, e.live, bad...)
	appendLines(t, e.live, "", "", "", event(1))
	raw := sinkOpts(s)
	raw.KeepSecrets = true
	e.startWith(e.options(), []SinkOptions{raw, sinkOpts(red)})
	waitEvents(t, red, events(0, 2))
	for i, u := range red.ofKind(sinks.KindUnparsed) {
		var stub sinks.UnparsedStub
		if i == 0 && u.Line != bad[0] {
			t.Errorf("a line with nothing of JSON was not shipped as it is: %q", u.Line)
		} else if err := json.Unmarshal([]byte(u.Line), &stub); i > 0 && (err != nil || stub.SHA256 != sha256hex(bad[i]) || stub.Size != len(bad[i])) {
			t.Errorf("stub %d = %q, want the size and SHA-256 of %q", i, u.Line, bad[i])
		}
	}
	waitEvents(t, s, events(0, 2))
	un := s.ofKind(sinks.KindUnparsed)
	if len(un) != len(bad) {
		t.Fatalf("%d unparsed, want %d", len(un), len(bad))
	}
	for i := range bad {
		if un[i].Line != bad[i] {
			t.Errorf("unparsed %d = %q, want %q (raw bytes)", i, un[i].Line, bad[i])
		}
	}
	if v := counterValue(t, e.reg, "auditrail_lines_empty_total", "sink", "rec"); v != 3 {
		t.Errorf("empty lines counted %v, want 3", v)
	}
	if v := counterValue(t, e.reg, "auditrail_lines_malformed_total", "sink", "rec"); v != float64(len(bad)) {
		t.Errorf("malformed counted %v, want %d", v, len(bad))
	}
	if v := counterValue(t, e.reg, "auditrail_redaction_sealed_total", "sink", "red"); v != float64(len(bad)-1) {
		t.Errorf("unparsed lines stubbed: %v, want %d", v, len(bad)-1)
	}
}

// A directory that does not exist at start, then a live path that is a
// directory or a symlink: the agent waits and picks the file up later.
func TestMissingDirectoryAndBadPaths(t *testing.T) {
	e := newEnv(t)
	os.RemoveAll(e.dir)
	s := &recSink{name: "rec"}
	e.start(e.options(), s)
	time.Sleep(150 * time.Millisecond)
	os.MkdirAll(e.live, 0o700) // the live path is a directory
	time.Sleep(150 * time.Millisecond)
	os.Remove(e.live)
	target := filepath.Join(t.TempDir(), "elsewhere.log")
	appendLines(t, target, event(99))
	os.Symlink(target, e.live) // a symlink is not followed
	time.Sleep(150 * time.Millisecond)
	if n := len(s.records()); n != 0 {
		t.Fatalf("read %d records through a symlink", n)
	}
	os.Remove(e.live)
	appendLines(t, e.live, events(0, 3)...)
	waitEvents(t, s, events(0, 3))
}

// The directory itself is replaced: notifications on the old one stop, the
// poll finds the new one.
func TestDirectoryReplaced(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 3)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 3))
	os.Rename(e.dir, e.dir+".old")
	os.MkdirAll(e.dir, 0o700)
	appendLines(t, e.live, events(3, 6)...)
	waitEvents(t, s, events(0, 6))
}

func sha256hex(s string) string {
	return fingerprint([]byte(s))
}

// A rotation racing with the first directory listing after a restart: the
// live file is renamed between reading the directory and examining it, so
// that listing shows it under neither name. That must not count as pruned.
func TestRotationDuringListingIsNotAGap(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	e.shipThenStop(s, 10)
	appendLines(t, e.live, events(10, 20)...)
	var once sync.Once
	testHookAfterReadDir = func() {
		once.Do(func() {
			if err := os.Rename(e.live, lumberjackName(e.dir, time.Now())); err != nil {
				t.Error(err)
			}
			appendLines(t, e.live, events(20, 30)...)
		})
	}
	t.Cleanup(func() { testHookAfterReadDir = nil })
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 30))
	if n := len(s.ofKind(sinks.KindGap)); n != 0 {
		t.Fatalf("%d gap records for a file that was only renamed", n)
	}
}

// A compressed backup the agent finished is pruned while it is down, and
// its inode is reused by a newer compressed backup (lumberjack prunes and
// gzips all the time, and file systems hand freed inodes out again). The
// newer backup must be read, not taken for the finished one.
func TestGzipInodeReusedWhileDown(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	stop := e.start(e.options(), s)
	appendLines(t, e.live, events(0, 50)...)
	waitEvents(t, s, events(0, 50))
	old := lumberjackName(e.dir, time.Now())
	os.Rename(e.live, old)
	appendLines(t, e.live, events(50, 60)...)
	waitEvents(t, s, events(0, 60))
	gzipFile(t, old)
	eventually(t, "the .gz recognised", func() bool { return counterValue(t, e.reg, "auditrail_files_discovered_total") == 2 })
	time.Sleep(200 * time.Millisecond)
	stop()

	// While down: the live file (events 50-60, read) rotates and is
	// compressed into the old .gz's inode, rewritten in place, with more
	// events that were never read.
	appendLines(t, e.live, events(60, 80)...)
	content, err := os.ReadFile(e.live)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(old+".gz", os.O_WRONLY|os.O_TRUNC, 0) // same inode
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	zw.Write(content)
	zw.Close()
	f.Close()
	os.Rename(old+".gz", lumberjackName(e.dir, time.Now())+".gz")
	// The compressed original is gone; keep its inode out of reuse so that
	// only the .gz's inode is reused.
	os.Rename(e.live, filepath.Join(filepath.Dir(e.dir), "held"))
	appendLines(t, e.live, events(80, 90)...)

	e.start(e.options(), s)
	waitEvents(t, s, events(0, 90))
}

// A backup compressed while a slow sink is still behind on it: the agent
// keeps reading the plain file it holds open, recognises the .gz as the
// same file on every scan, and reads nothing twice.
func TestGzipWhileHeldOpen(t *testing.T) {
	e := newEnv(t)
	fast, slow, backup := rotateBehindSlowSink(t, e)
	gzipFile(t, backup)
	time.Sleep(300 * time.Millisecond) // several scans with the .gz in place
	os.Rename(e.live, lumberjackName(e.dir, time.Now()))
	appendLines(t, e.live, events(310, 320)...)
	waitEvents(t, fast, events(0, 320))
	close(slow.block)
	waitEvents(t, slow, events(0, 320))
	if n := counterValue(t, e.reg, "auditrail_files_discovered_total"); n != 3 {
		t.Errorf("%v files discovered, want 3: the .gz was taken for a new file", n)
	}
	for _, s := range []*recSink{fast, slow} {
		if n := len(s.ofKind(sinks.KindGap)); n != 0 {
			t.Fatalf("%s: %d gap records", s.name, n)
		}
	}
}

// followWithWriter ships 20 events to a sink and returns a writer on the
// live file at its end, which keeps its offset (no O_APPEND), as lumberjack
// does for the files it creates: after a truncation its next write leaves a
// hole of NUL bytes.
func followWithWriter(t *testing.T, e *env) (s *recSink, w *os.File, size int64) {
	t.Helper()
	s = &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 20)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 20))
	w, err := os.OpenFile(e.live, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	size, err = w.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	return s, w, size
}

// The live file truncated while the agent follows it, then written again
// by a writer that kept its offset: the truncation is reported and every
// line written after it is read.
func TestTruncatedWhileRunning(t *testing.T) {
	e := newEnv(t)
	s, w, size := followWithWriter(t, e)
	if err := os.Truncate(e.live, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the truncation reported", func() bool { return len(s.ofKind(sinks.KindGap)) == 1 })
	if _, err := w.WriteString(strings.Join(events(100, 103), "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, s, append(events(0, 20), events(100, 103)...))
	if g := s.ofKind(sinks.KindGap); len(g) != 1 || !strings.Contains(g[0].Line, `"reason":"truncated"`) {
		t.Errorf("gap records %v", g)
	}
	if n := len(s.records()); n != 24 {
		t.Errorf("%d records, want 20 events, a gap record and 3 events", n)
	}
	if got := counterValue(t, e.reg, "auditrail_hole_bytes_total"); got != float64(size) {
		t.Errorf("hole bytes = %v, want %d", got, size)
	}
}

// A truncation the agent only sees once the writer has written again past
// the hole is still reported as a truncation.
func TestTruncatedAndRewrittenBeforeTheScan(t *testing.T) {
	e := newEnv(t)
	s, w, _ := followWithWriter(t, e)
	// Truncation and write come together, between two scans.
	if err := w.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(strings.Join(events(100, 103), "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the truncation reported", func() bool { return len(s.ofKind(sinks.KindGap)) == 1 })
	if g := s.ofKind(sinks.KindGap); !strings.Contains(g[0].Line, `"reason":"truncated"`) {
		t.Errorf("gap record %s, want reason truncated", g[0].Line)
	}
	// The lines after the hole may arrive twice (read before and after the
	// truncation was noticed), never less than once.
	eventually(t, "the lines written after the truncation", func() bool {
		got := map[string]bool{}
		for _, l := range s.events() {
			got[l] = true
		}
		for _, l := range events(100, 103) {
			if !got[l] {
				return false
			}
		}
		return true
	})
}

// A file seen empty, or holding only the start of its first line, is not
// given an identity until its first line is complete: an id made from no
// content ("<dev>-<ino>-") would be the same for the next file that gets
// the inode, and S3 keys and record ids are made from it.
func TestIdentityWaitsForFirstLine(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live) // an empty line: the file exists, with one byte
	if err := os.Truncate(e.live, 0); err != nil {
		t.Fatal(err)
	}
	e.start(e.options(), s)
	first := event(0)
	f, err := os.OpenFile(e.live, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(first[:40])
	time.Sleep(300 * time.Millisecond) // several scans see the partial line
	f.WriteString(first[40:] + "\n")
	f.Close()
	appendLines(t, e.live, events(1, 5)...)
	waitEvents(t, s, events(0, 5))

	if err := os.Rename(e.live, lumberjackName(e.dir, time.Now())); err != nil {
		t.Fatal(err)
	}
	appendLines(t, e.live, events(5, 10)...)
	waitEvents(t, s, events(0, 10))
	ids := map[string]bool{}
	for _, r := range s.records() {
		if r.Kind != sinks.KindEvent {
			continue
		}
		if parts := strings.Split(r.FileID, "-"); len(parts) != 3 || parts[2] == "" {
			t.Fatalf("file id %q has no content part", r.FileID)
		}
		ids[r.FileID] = true
	}
	if len(ids) != 2 {
		t.Errorf("file ids %v, want one per file", ids)
	}
}

// lockedBuffer is a bytes.Buffer that the agent's logger and the test can
// use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A malformed line is logged with its file and offset, never its bytes;
// a burst of them makes one log line, which says how many it stands for.
func TestMalformedLinesLogged(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	secret := "hunter2-not-an-event"
	bad := make([]string, 50)
	for i := range bad {
		bad[i] = fmt.Sprintf("%s %d", secret, i)
	}
	appendLines(t, e.live, event(0))
	appendLines(t, e.live, bad...)
	appendLines(t, e.live, event(1))
	var logs lockedBuffer
	opts := e.options()
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	e.start(opts, s)
	waitEvents(t, s, events(0, 2))
	var lines []map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "line is not an audit event; shipped unparsed" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d log lines for a burst of %d malformed lines, want 1:\n%s", len(lines), len(bad), logs.String())
	}
	first := int64(len(event(0)) + 1)
	if m := lines[0]; m["offset"] != float64(first) || m["path"] != e.live || m["file"] == "" || m["reason"] == "" {
		t.Errorf("log %v, want the path %s, a file id, a reason and offset %d", m, e.live, first)
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log holds the line's bytes:\n%s", logs.String())
	}
}

// A rotation whose renamed backup is compressed and removed before a scan
// sees it under its plain name (lumberjack gzips right after the rename)
// is counted all the same: the live file's content turns up only as .gz.
func TestRotationSeenOnlyCompressedIsCounted(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "rec"}
	appendLines(t, e.live, events(0, 100)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 100))

	// Build the backup and the next live file elsewhere, then move each in
	// with one rename, the next live file first as lumberjack creates it
	// before it compresses: no scan can see the backup uncompressed.
	tmp := t.TempDir()
	backup := filepath.Join(tmp, filepath.Base(lumberjackName(e.dir, time.Now())))
	data, err := os.ReadFile(e.live)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, data, 0o600); err != nil {
		t.Fatal(err)
	}
	gzipFile(t, backup)
	next := filepath.Join(tmp, "next")
	appendLines(t, next, events(100, 120)...)
	if err := os.Rename(next, e.live); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(backup+".gz", filepath.Join(e.dir, filepath.Base(backup)+".gz")); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, s, events(0, 120))
	eventually(t, "the rotation counted", func() bool {
		return counterValue(t, e.reg, "auditrail_rotations_total") == 1
	})
}
