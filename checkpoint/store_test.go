package checkpoint

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

func sampleState() *State {
	return &State{
		NextSeq: 3,
		Files: []File{
			{Seq: 1, Dev: 2049, Ino: 77, FingerprintLen: 1024, Fingerprint: "ab", Path: "/a/audit-x.log.gz", Size: 900, Final: true,
				Cursors: map[string]Cursor{"s3": {Offset: 900, Done: true}, "es": {Offset: 10, LastEventTime: "2026-01-01T00:00:00Z"}}},
			{Seq: 2, Dev: 2049, Ino: 78, Path: "/a/audit.log", Size: 0},
		},
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := NewStore(dir)

	st, found, err := s.Load()
	if err != nil || found || len(st.Files) != 0 {
		t.Fatalf("Load on empty dir = %+v, %v, %v; want empty state, not found", st, found, err)
	}
	want := sampleState()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.Load()
	if err != nil || !found {
		t.Fatalf("Load: %v found=%v", err, found)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp file left behind: %v", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	good, err := Encode(sampleState())
	if err != nil {
		t.Fatal(err)
	}
	flipped := append([]byte(nil), good...)
	// Change a digit inside the state, keeping the JSON valid.
	for i := len(flipped) - 1; i >= 0; i-- {
		if flipped[i] == '9' {
			flipped[i] = '8'
			break
		}
	}
	cases := map[string][]byte{
		"empty":           {},
		"truncated":       good[:len(good)/2],
		"bit flipped":     flipped,
		"wrong version":   []byte(`{"version":2,"checksum":"sha256:x","state":{}}`),
		"no checksum":     []byte(`{"version":1,"state":{"nextSeq":1,"files":[]}}`),
		"unknown field":   mustEnvelope(t, `{"nextSeq":1,"files":[],"extra":1}`),
		"seq not below":   mustEnvelope(t, `{"nextSeq":1,"files":[{"seq":1}]}`),
		"negative offset": mustEnvelope(t, `{"nextSeq":2,"files":[{"seq":1,"cursors":{"s3":{"offset":-1}}}]}`),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := NewStore(dir)
			if err := os.WriteFile(s.Path(), b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, found, err := s.Load()
			if !errors.Is(err, ErrCorrupt) || !found {
				t.Fatalf("Load = found %v, %v; want ErrCorrupt", found, err)
			}
			dst, err := s.Quarantine(time.Unix(1700000000, 0))
			if err != nil {
				t.Fatal(err)
			}
			if kept, _ := os.ReadFile(dst); string(kept) != string(b) {
				t.Errorf("quarantined file does not hold the original bytes")
			}
			if st, found, err := s.Load(); err != nil || found || len(st.Files) != 0 {
				t.Errorf("after quarantine Load = %v, %v", found, err)
			}
		})
	}
}

func mustEnvelope(t *testing.T, state string) []byte {
	t.Helper()
	return []byte(`{"version":1,"checksum":"` + checksum([]byte(state)) + `","state":` + state + `}`)
}

// TestCrashBeforeRename kills a child process with SIGKILL after the new
// state is written and synced but before it is renamed into place. The
// previous state must load intact, and the next Save must succeed.
func TestCrashBeforeRename(t *testing.T) {
	if dir := os.Getenv("CHECKPOINT_CRASH_DIR"); dir != "" {
		s := NewStore(dir)
		testHookBeforeRename = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		st := sampleState()
		st.NextSeq = 99
		s.Save(st)
		os.Exit(0) // not reached
	}
	dir := t.TempDir()
	s := NewStore(dir)
	want := sampleState()
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBeforeRename$")
	cmd.Env = append(os.Environ(), "CHECKPOINT_CRASH_DIR="+dir)
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix)); err != nil {
		t.Fatalf("expected the synced temp file to be left behind: %v", err)
	}
	got, _, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state after crash = %+v, want previous %+v", got, want)
	}
	next := sampleState()
	next.NextSeq = 100
	if err := s.Save(next); err != nil {
		t.Fatalf("Save after crash: %v", err)
	}
	if got, _, _ := s.Load(); got.NextSeq != 100 {
		t.Fatalf("NextSeq = %d after Save, want 100", got.NextSeq)
	}
}

func TestClone(t *testing.T) {
	a := sampleState()
	b := a.Clone()
	b.Files[0].Cursors["s3"] = Cursor{Offset: 1}
	if a.Files[0].Cursors["s3"].Offset != 900 {
		t.Fatal("Clone shares cursor maps")
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(sampleState())
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"checksum":"sha256:","state":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode to something that decodes equal.
		again, err := Encode(st)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !reflect.DeepEqual(st.Clone(), st2.Clone()) {
			t.Fatalf("re-encode changed the state")
		}
	})
}
