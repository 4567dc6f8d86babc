package file

import (
	"context"
	"os"
	"testing"
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
