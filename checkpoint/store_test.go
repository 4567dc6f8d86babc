package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/slotfile"
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
	if err := s.Save(want); err != nil { // the second slot
		t.Fatal(err)
	}
	for _, p := range slotfile.Paths(s.Base()) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("state file %s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v, %v; want 0700", fi.Mode().Perm(), err)
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
		// As the payload of the slots, and as a legacy file.
		for _, where := range []string{"slots", "legacy"} {
			t.Run(name+"/"+where, func(t *testing.T) {
				dir := t.TempDir()
				s := NewStore(dir)
				var want []string
				if where == "slots" {
					f, _, _, err := slotfile.Open(s.Base(), "")
					if err != nil {
						t.Fatal(err)
					}
					if err := f.Replace(b); err != nil {
						t.Fatal(err)
					}
					f.Close()
					want = append(want, slotfile.Paths(s.Base())[0])
				} else {
					want = append(want, filepath.Join(dir, LegacyFileName))
					if err := os.WriteFile(want[0], b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				_, found, err := s.Load()
				if !errors.Is(err, ErrCorrupt) || !found {
					t.Fatalf("Load = found %v, %v; want ErrCorrupt", found, err)
				}
				dst, err := s.Quarantine(time.Unix(1700000000, 0))
				if err != nil {
					t.Fatal(err)
				}
				if len(dst) != 1 || dst[0] != want[0]+".corrupt-1700000000" {
					t.Fatalf("moved %v, want %s aside", dst, want[0])
				}
				kept, _ := os.ReadFile(dst[0])
				if where == "legacy" && string(kept) != string(b) || where == "slots" && !bytes.Contains(kept, b) {
					t.Errorf("quarantined file does not hold the original bytes")
				}
				if st, found, err := s.Load(); err != nil || found || len(st.Files) != 0 {
					t.Errorf("after quarantine Load = %v, %v", found, err)
				}
			})
		}
	}
}

// Both slots damaged is a corrupt state, never an empty one.
func TestLoadBothSlotsDamaged(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir)
	for range 2 {
		if err := s.Save(sampleState()); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range slotfile.Paths(s.Base()) {
		b, _ := os.ReadFile(p)
		b[40] ^= 1
		os.WriteFile(p, b, 0o600)
	}
	if _, found, err := NewStore(dir).Load(); !errors.Is(err, ErrCorrupt) || !found {
		t.Fatalf("Load = found %v, %v; want ErrCorrupt", found, err)
	}
}

// A checkpoint.json written by a release before the slot files is read;
// the first Save replaces it by the slots.
func TestLoadLegacyCheckpoint(t *testing.T) {
	dir := t.TempDir()
	legacy, err := os.ReadFile(filepath.Join("testdata", LegacyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, LegacyFileName), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewStore(dir)
	st, found, err := s.Load()
	if err != nil || !found {
		t.Fatalf("Load = %v, %v", found, err)
	}
	if st.NextSeq != 3 || len(st.Files) != 2 || st.Files[0].Cursors["s3"] != (Cursor{Offset: 900, Done: true}) ||
		st.Files[1].Cursors["s3"].Offset != 40 || len(st.Notices) != 1 || st.Notices[0].Pending[0] != "es" ||
		!st.SavedAt.Equal(time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)) {
		t.Fatalf("legacy checkpoint read as %+v", st)
	}
	st.NextSeq = 4
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LegacyFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy checkpoint still there after Save: %v", err)
	}
	if got, _, err := NewStore(dir).Load(); err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("after Save: %+v, %v; want %+v", got, err, st)
	}
}

func mustEnvelope(t *testing.T, state string) []byte {
	t.Helper()
	return []byte(`{"version":1,"checksum":"` + checksum([]byte(state)) + `","state":` + state + `}`)
}

// TestCrashDuringSave kills a child process with SIGKILL in the middle of
// a Save: half of the new state's slot is written. The previous state
// must load intact, and the next Save must succeed.
func TestCrashDuringSave(t *testing.T) {
	if dir := os.Getenv("CHECKPOINT_CRASH_DIR"); dir != "" {
		s := NewStore(dir)
		st := sampleState()
		st.NextSeq = 99
		enc, _ := Encode(st)
		testHookBeforeWrite = func(path string, b []byte) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				f.WriteAt(b[:len(enc)/2], 0) // half of the state
			}
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		s.Save(st)
		os.Exit(0) // not reached
	}
	for _, saves := range []int{1, 2, 3} { // the crash in slot 1, 0, 1
		dir := t.TempDir()
		s := NewStore(dir)
		want := sampleState()
		for i := range saves {
			want.NextSeq = uint64(3 + i)
			if err := s.Save(want); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringSave$")
		cmd.Env = append(os.Environ(), "CHECKPOINT_CRASH_DIR="+dir)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die by SIGKILL: %v", err)
		}
		got, _, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after %d saves, state after crash = %+v, want previous %+v", saves, got, want)
		}
		next := sampleState()
		next.NextSeq = 100
		if err := s.Save(next); err != nil {
			t.Fatalf("Save after crash: %v", err)
		}
		if got, _, _ := NewStore(dir).Load(); got.NextSeq != 100 {
			t.Fatalf("NextSeq = %d after Save, want 100", got.NextSeq)
		}
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
