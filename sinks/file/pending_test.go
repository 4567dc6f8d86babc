package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditrail/auditrail/internal/slotfile"
)

// A crash during or after an append, then the batch in doubt written
// again, as the agent does after a restart: the archive holds it once,
// whether the crash left it whole, torn or not written at all.
func TestBatchInDoubtIsWrittenOnce(t *testing.T) {
	first := batch("one", "two")
	again := batch("three", "four")
	next := batch("five")
	cases := []struct {
		name string
		// crash turns the archive as the first run left it, with again's
		// append recorded, into what the crash left.
		crash func(t *testing.T, path string, size int64)
		// redeliver is what the agent writes first after the restart.
		redeliver []string
		want      string
	}{
		{"not written", func(t *testing.T, path string, size int64) { truncate(t, path, size) },
			[]string{"three", "four"}, "one\ntwo\nthree\nfour\nfive\n"},
		{"torn", func(t *testing.T, path string, size int64) { truncate(t, path, size+3) },
			[]string{"three", "four"}, "one\ntwo\nthree\nfour\nfive\n"},
		{"whole", func(*testing.T, string, int64) {},
			[]string{"three", "four"}, "one\ntwo\nthree\nfour\nfive\n"},
		{"whole and acknowledged", func(*testing.T, string, int64) {},
			nil, "one\ntwo\nthree\nfour\nfive\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := DefaultConfig()
			cfg.Directory = dir
			s, err := New("f", cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := s.Write(ctx, first); err != nil {
				t.Fatal(err)
			}
			size := s.size
			if err := s.Write(ctx, again); err != nil {
				t.Fatal(err)
			}
			path := s.f.Name()
			s.f.Close() // the crash: no Close
			tc.crash(t, path, size)

			s, err = New("f", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.redeliver != nil {
				if err := s.Write(ctx, batch(tc.redeliver...)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Write(ctx, next); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, got := readAll(t, dir); got != tc.want {
				t.Errorf("archive = %q, want %q", got, tc.want)
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// The append a release before the slot files recorded (in
// .auditrail-<sink>.pending.json, replaced by renaming) is settled after
// an upgrade: the batch in doubt, already whole in the archive, is not
// appended again, and the old record gives way to the slots.
func TestBatchInDoubtFromRenamedRecord(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Directory = dir
	s, err := New("f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Write(ctx, batch("one", "two")); err != nil {
		t.Fatal(err)
	}
	size := s.size
	if err := s.Write(ctx, batch("three", "four")); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(s.f.Name())
	s.f.Close() // the crash: no Close
	s.pending.Close()
	// What the earlier release left: its record of the last append.
	for _, p := range slotfile.Paths(pendingBase(dir, "f")) {
		os.Remove(p)
	}
	legacy := fmt.Sprintf(`{"file":%q,"size":%d,"end":%d}`, name, size, size+int64(len("three\nfour\n")))
	if err := os.WriteFile(filepath.Join(dir, ".auditrail-f.pending.json"), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = New("f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]string{{"three", "four"}, {"five"}} {
		if err := s.Write(ctx, batch(b...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := readAll(t, dir); got != "one\ntwo\nthree\nfour\nfive\n" {
		t.Errorf("archive = %q, want each batch once", got)
	}
	if _, err := os.Stat(filepath.Join(dir, ".auditrail-f.pending.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the earlier release's record is still there: %v", err)
	}
}
