package agent

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// notices decodes s's records of kind k.
func notices[T any](t *testing.T, s *recSink, k sinks.Kind) []T {
	t.Helper()
	var out []T
	for _, r := range s.ofKind(k) {
		var v T
		if err := json.Unmarshal([]byte(r.Line), &v); err != nil {
			t.Fatalf("%s record %q: %v", k, r.Line, err)
		}
		out = append(out, v)
	}
	return out
}

// Every start is announced to every sink. A start without a checkpoint is
// also a tamper signal; a restart says how long the agent was away.
func TestStartRecords(t *testing.T) {
	e := newEnv(t)
	a, b := &recSink{name: "a"}, &recSink{name: "b"}
	appendLines(t, e.live, events(0, 3)...)
	stop := e.start(e.options(), a, b)
	waitEvents(t, a, events(0, 3))
	for _, s := range []*recSink{a, b} {
		eventually(t, "start and tamper records in "+s.name, func() bool {
			return len(s.ofKind(sinks.KindStart)) == 1 && len(s.ofKind(sinks.KindTamper)) == 1
		})
		st := notices[sinks.StartRecord](t, s, sinks.KindStart)[0]
		tr := notices[sinks.TamperRecord](t, s, sinks.KindTamper)[0]
		if st.Kind != sinks.StartRecordKind || st.State != stateNone || st.PreviousRunUntil != "" {
			t.Errorf("%s: first start record %+v", s.name, st)
		}
		if tr.Kind != sinks.TamperRecordKind || tr.Reason != sinks.TamperNoState {
			t.Errorf("%s: tamper record %+v, want reason %s", s.name, tr, sinks.TamperNoState)
		}
	}
	stop()
	stoppedAt := time.Now()
	time.Sleep(300 * time.Millisecond)

	a2, b2 := &recSink{name: "a"}, &recSink{name: "b"}
	e.start(e.options(), a2, b2)
	eventually(t, "start record after restart", func() bool { return len(b2.ofKind(sinks.KindStart)) == 1 })
	st := notices[sinks.StartRecord](t, b2, sinks.KindStart)[0]
	if st.State != stateResumed || st.DowntimeSeconds < 0.3 || st.DowntimeSeconds > time.Since(stoppedAt).Seconds()+1 {
		t.Errorf("restart record %+v, want resumed after about 0.3 s", st)
	}
	if until, err := time.Parse(time.RFC3339Nano, st.PreviousRunUntil); err != nil || until.After(stoppedAt) {
		t.Errorf("previousRunUntil %q, want a time before the stop at %s", st.PreviousRunUntil, stoppedAt)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(b2.ofKind(sinks.KindTamper)); n != 0 {
		t.Errorf("restart with its checkpoint raised %d tamper records", n)
	}
	if n := len(a2.records()); n != 0 {
		t.Errorf("restart delivered %d records again", n)
	}
}

// A corrupt checkpoint is a tamper signal of its own.
func TestCorruptStateIsATamperSignal(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "s"}
	e.shipThenStop(s, 2)
	corruptCheckpoint(t, e.state, []byte("{garbage"))
	s2 := &recSink{name: "s"}
	e.start(e.options(), s2)
	eventually(t, "tamper record", func() bool { return len(s2.ofKind(sinks.KindTamper)) == 1 })
	if tr := notices[sinks.TamperRecord](t, s2, sinks.KindTamper)[0]; tr.Reason != sinks.TamperCorruptState {
		t.Errorf("tamper record %+v, want reason %s", tr, sinks.TamperCorruptState)
	}
}

// A notice a sink has not acknowledged survives a restart and is
// delivered then, to that sink only.
func TestNoticesSurviveRestart(t *testing.T) {
	e := newEnv(t)
	up := &recSink{name: "up"}
	down := &recSink{name: "down", fail: func(int) error { return errors.New("unreachable") }}
	stop := e.start(e.options(), up, down)
	eventually(t, "notices in the sink that is up", func() bool { return len(up.ofKind(sinks.KindTamper)) == 1 })
	time.Sleep(200 * time.Millisecond) // a checkpoint commit
	stop()

	up2, down2 := &recSink{name: "up"}, &recSink{name: "down"}
	e.start(e.options(), up2, down2)
	eventually(t, "the first run's notices in the sink that was down", func() bool {
		return len(down2.ofKind(sinks.KindTamper)) == 1 && len(down2.ofKind(sinks.KindStart)) == 2
	})
	time.Sleep(200 * time.Millisecond)
	if n := len(up2.ofKind(sinks.KindTamper)); n != 0 {
		t.Errorf("the sink that acknowledged the tamper record got it again (%d)", n)
	}
	if n := len(up2.ofKind(sinks.KindStart)); n != 1 {
		t.Errorf("the sink that was up got %d start records after the restart, want 1", n)
	}
}

// Deleting the live file, or a rotated file while older ones remain, is a
// tamper signal; kube-apiserver pruning its oldest backup is not.
func TestDeletionsOutsideRotation(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "s"}
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var backups []string
	for i := range 3 {
		appendLines(t, e.live, events(i*2, i*2+2)...)
		b := lumberjackName(e.dir, base.Add(time.Duration(i)*time.Minute))
		if err := os.Rename(e.live, b); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, b)
	}
	appendLines(t, e.live, events(6, 8)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 8))
	tampers := func() []sinks.TamperRecord { return notices[sinks.TamperRecord](t, s, sinks.KindTamper) }
	eventually(t, "the first start's tamper record", func() bool { return len(tampers()) == 1 })

	if err := os.Remove(backups[0]); err != nil { // the oldest: normal pruning
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if n := len(tampers()); n != 1 {
		t.Fatalf("pruning the oldest backup raised %d tamper records", n-1)
	}
	if err := os.Remove(backups[2]); err != nil { // backups[1] is older
		t.Fatal(err)
	}
	eventually(t, "deleted-out-of-order", func() bool { return len(tampers()) == 2 })
	if tr := tampers()[1]; tr.Reason != sinks.TamperDeletedOutOfOrder || tr.File == nil || tr.File.Path != backups[2] || tr.Size == 0 {
		t.Errorf("tamper record %+v, want %s of %s", tr, sinks.TamperDeletedOutOfOrder, backups[2])
	}
	if err := os.Remove(e.live); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted", func() bool { return len(tampers()) == 3 })
	if tr := tampers()[2]; tr.Reason != sinks.TamperDeleted || tr.File == nil || tr.File.Path != e.live {
		t.Errorf("tamper record %+v, want %s of %s", tr, sinks.TamperDeleted, e.live)
	}
	if got := counterValue(t, e.reg, "auditrail_tamper_signals_total"); got != 3 {
		t.Errorf("auditrail_tamper_signals_total = %v, want 3 (no-state, deleted-out-of-order, deleted)", got)
	}
}

// kube-apiserver's lumberjack removes the backups of one pruning pass
// newest first (millRunOnce walks them newest to oldest), so for a moment
// a newer backup is gone while older ones remain. That is pruning, not
// tampering; a real deletion of the live file afterwards still is.
func TestPruningNewestFirstIsNotTamper(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "s"}
	base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	var backups []string
	for i := range 5 {
		appendLines(t, e.live, events(i*2, i*2+2)...)
		b := lumberjackName(e.dir, base.Add(time.Duration(i)*time.Minute))
		if err := os.Rename(e.live, b); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, b)
	}
	appendLines(t, e.live, events(10, 12)...)
	e.start(e.options(), s)
	waitEvents(t, s, events(0, 12))
	tampers := func() []sinks.TamperRecord { return notices[sinks.TamperRecord](t, s, sinks.KindTamper) }
	eventually(t, "the first start's tamper record", func() bool { return len(tampers()) == 1 })

	// One pass keeping the newest backup, with scans (every 50 ms here)
	// seeing each step.
	for i := 3; i >= 0; i-- {
		if err := os.Remove(backups[i]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Verdicts come in the order the files went: one about the live file
	// comes after any about the backups.
	if err := os.Remove(e.live); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted", func() bool { return len(tampers()) >= 2 && tampers()[len(tampers())-1].Reason == sinks.TamperDeleted })
	for _, tr := range tampers()[1 : len(tampers())-1] {
		t.Errorf("pruning newest first raised %s for %s", tr.Reason, tr.File.Path)
	}
}

// A sink that has nothing to ship for the heartbeat interval is sent
// heartbeat records; one that is busy is not.
func TestHeartbeats(t *testing.T) {
	e := newEnv(t)
	s := &recSink{name: "s"}
	opts := e.options()
	opts.HeartbeatInterval = 300 * time.Millisecond
	appendLines(t, e.live, events(0, 2)...)
	e.start(opts, s)
	waitEvents(t, s, events(0, 2))
	heartbeats := func() []sinks.HeartbeatRecord {
		var out []sinks.HeartbeatRecord
		for _, h := range notices[sinks.HeartbeatRecord](t, s, sinks.KindHeartbeat) {
			if h.Kind == sinks.HeartbeatRecordKind {
				out = append(out, h)
			}
		}
		return out
	}
	eventually(t, "two heartbeats", func() bool { return len(heartbeats()) >= 2 })
	hb := heartbeats()
	t0, _ := time.Parse(time.RFC3339Nano, hb[0].At)
	t1, _ := time.Parse(time.RFC3339Nano, hb[1].At)
	if d := t1.Sub(t0); d < 250*time.Millisecond || hb[0].Sink != "s" || hb[0].IdleSince == "" {
		t.Errorf("heartbeats %+v, %s apart, want about 300ms", hb[:2], d)
	}
	// While lines keep coming, no heartbeat.
	n := len(heartbeats())
	for i := range 10 {
		appendLines(t, e.live, events(10+i, 11+i)...)
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(heartbeats()) - n; got > 1 { // one may have been due as the writes began
		t.Errorf("%d heartbeats while events kept coming", got)
	}
}
