package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/slotfile"
	"github.com/auditrail/auditrail/journal"
	"github.com/auditrail/auditrail/sinks"
)

// corruptCheckpoint writes b over both slots of the checkpoint in dir.
func corruptCheckpoint(t *testing.T, dir string, b []byte) {
	t.Helper()
	for _, p := range slotfile.Paths(filepath.Join(dir, checkpoint.Name)) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// toLegacy turns the state file base into the file a release before the
// slot files kept, replaced by renaming: the same JSON document at legacy.
func toLegacy(t *testing.T, base, legacy string) {
	t.Helper()
	f, b, found, err := slotfile.Open(base, "")
	if err != nil || !found {
		t.Fatalf("read %s: %v, found %v", base, err, found)
	}
	f.Close()
	if err := os.WriteFile(legacy, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range slotfile.Paths(base) {
		os.Remove(p)
	}
}

// A state directory written by a release before the slot files (the
// checkpoint and the journals each one JSON file replaced by renaming) is
// resumed: nothing delivered again, no tamper record, and the old files
// give way to the slots.
func TestResumeFromRenamedStateFiles(t *testing.T) {
	e := newEnv(t)
	a := &recSink{name: "a"}
	e.shipThenStop(a, 10)
	toLegacy(t, filepath.Join(e.state, checkpoint.Name), filepath.Join(e.state, checkpoint.LegacyFileName))
	toLegacy(t, journal.Base(e.state, "a"), journal.LegacyPath(e.state, "a"))

	a2 := &recSink{name: "a"}
	stop := e.start(e.options(), a2)
	appendLines(t, e.live, events(10, 15)...)
	waitEvents(t, a2, events(10, 15))
	stop()
	if n := len(a2.ofKind(sinks.KindTamper)); n != 0 {
		t.Errorf("resuming from the renamed state files raised %d tamper records", n)
	}
	if st := notices[sinks.StartRecord](t, a2, sinks.KindStart); len(st) != 1 || st[0].State != stateResumed {
		t.Errorf("start records %+v, want one, resumed", st)
	}
	for _, p := range []string{filepath.Join(e.state, checkpoint.LegacyFileName), journal.LegacyPath(e.state, "a")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after the agent wrote its state: %v", p, err)
		}
	}
	st, found, err := checkpoint.NewStore(e.state).Load()
	if err != nil || !found || len(st.Files) == 0 {
		t.Fatalf("checkpoint after the run: %+v, %v, %v", st, found, err)
	}
}
