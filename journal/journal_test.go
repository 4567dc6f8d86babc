package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/internal/slotfile"
)

// A sink resumes from the later of the checkpoint and its journal; files
// found after the last checkpoint come back with their identity, and
// notices the journal delivered are no longer pending for that sink.
func TestApplyResumesFromTheLater(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "a", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	one := checkpoint.File{Seq: 1, ID: "1-1-aa", Path: "/x/audit-1.log"}
	two := checkpoint.File{Seq: 2, ID: "1-2-bb", Path: "/x/audit.log"}
	if _, err := s.Delivered([]File{{File: one, Cursor: checkpoint.Cursor{Offset: 500, Done: true}},
		{File: two, Cursor: checkpoint.Cursor{Offset: 40, LastEventTime: "t2"}}}, []string{"start-1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Intend(&Intent{Records: 3, Segments: []Segment{{Seq: 2, ID: two.ID, Start: 40, End: 90}}, Files: []checkpoint.File{two}}); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, "a", time.Now()) // after a crash
	if err != nil {
		t.Fatal(err)
	}
	if in := s.InDoubt(); in == nil || in.Segments[0].End != 90 {
		t.Fatalf("intent in doubt = %+v", in)
	}
	st := &checkpoint.State{NextSeq: 2,
		Files:   []checkpoint.File{{Seq: 1, ID: one.ID, Cursors: map[string]checkpoint.Cursor{"a": {Offset: 100}, "b": {Offset: 300}}}},
		Notices: []checkpoint.Notice{{ID: "start-1", Kind: "start", Record: []byte(`{}`), Pending: []string{"a", "b"}}}}
	if c := s.Apply(st, "a"); len(c) != 0 {
		t.Fatalf("conflicts %v", c)
	}
	if st.NextSeq != 3 || len(st.Files) != 2 {
		t.Fatalf("nextSeq %d, files %+v", st.NextSeq, st.Files)
	}
	if c := st.Files[0].Cursors["a"]; c.Offset != 500 || !c.Done {
		t.Errorf("file 1, sink a: %+v, want the journal's 500, done", c)
	}
	if c := st.Files[0].Cursors["b"]; c.Offset != 300 {
		t.Errorf("file 1, sink b: %+v, want the checkpoint's 300", c)
	}
	if f := st.Files[1]; f.ID != two.ID || f.Path != two.Path || f.Cursors["a"].Offset != 40 {
		t.Errorf("file 2 = %+v, want its identity and sink a at 40", f)
	}
	if p := st.Notices[0].Pending; len(p) != 1 || p[0] != "b" {
		t.Errorf("notice pending for %v, want b only", p)
	}
}

// What a committed checkpoint covers leaves the journal.
func TestCoveredDeliveriesLeave(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, "a", time.Now())
	g1, _ := s.Delivered([]File{{File: checkpoint.File{Seq: 1, ID: "x"}, Cursor: checkpoint.Cursor{Offset: 10}}}, nil)
	s.Covered(g1)
	s.Delivered([]File{{File: checkpoint.File{Seq: 2, ID: "y"}, Cursor: checkpoint.Cursor{Offset: 20}}}, nil)
	s, _ = Open(dir, "a", time.Now())
	if len(s.j.Files) != 1 || s.j.Files[0].Seq != 2 {
		t.Errorf("journal files %+v, want file 2 alone", s.j.Files)
	}
}

// A journal that cannot be trusted is moved aside, not used: both slots
// damaged, a slot that verifies and does not decode, a legacy file that
// does not decode.
func TestCorruptJournalMovedAside(t *testing.T) {
	deliver := func(s *Store, off int64) {
		t.Helper()
		if _, err := s.Delivered([]File{{File: checkpoint.File{Seq: 1, ID: "x"}, Cursor: checkpoint.Cursor{Offset: off}}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for name, damage := range map[string]func(t *testing.T, dir string){
		"both slots": func(t *testing.T, dir string) {
			s, _ := Open(dir, "a", time.Now())
			deliver(s, 10)
			deliver(s, 20)
			for _, p := range slotfile.Paths(Base(dir, "a")) {
				b, _ := os.ReadFile(p)
				b[30] ^= 1
				os.WriteFile(p, b, 0o600)
			}
		},
		"slot payload": func(t *testing.T, dir string) {
			f, _, _, err := slotfile.Open(Base(dir, "a"), "")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Replace([]byte(`{"version":9}`)); err != nil {
				t.Fatal(err)
			}
		},
		"legacy file": func(t *testing.T, dir string) {
			b, _ := Encode(&Journal{Files: []File{{File: checkpoint.File{Seq: 1, ID: "x"}, Cursor: checkpoint.Cursor{Offset: 10}, Gen: 1}}})
			b[len(b)-10] ^= 1
			os.WriteFile(LegacyPath(dir, "a"), b, 0o600)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			damage(t, dir)
			s, err := Open(dir, "a", time.Now())
			if !errors.Is(err, ErrCorrupt) || s == nil || len(s.j.Files) != 0 {
				t.Fatalf("err %v, store %+v", err, s)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "journal-a*.corrupt-*")); len(m) == 0 {
				t.Errorf("nothing moved aside")
			}
			// The journal works on.
			deliver(s, 30)
			if again, err := Open(dir, "a", time.Now()); err != nil || len(again.j.Files) != 1 || again.j.Files[0].Cursor.Offset != 30 {
				t.Fatalf("after the corrupt journal: %+v, %v", again, err)
			}
		})
	}
}

// A journal written by a release before the slot files (one file replaced
// by renaming) is read at start; the first write replaces it by the slots.
func TestLegacyJournalIsRead(t *testing.T) {
	dir := t.TempDir()
	legacy, err := os.ReadFile(filepath.Join("testdata", "journal-s3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(LegacyPath(dir, "s3"), legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, "s3", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := s.InDoubt()
	if in == nil || in.Records != 1000 || len(in.Segments) != 1 || in.Segments[0].End != 4194304 || len(in.Made) != 1 ||
		len(s.j.Files) != 1 || s.j.Files[0].Cursor.Offset != 2097152 || s.Gen() != 1 {
		t.Fatalf("legacy journal read as %+v, intent %+v", s.j, in)
	}
	in.Cut = in.Cut.Add(time.Second)
	if err := s.Intend(in); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(LegacyPath(dir, "s3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy journal still there after a write: %v", err)
	}
	again, err := Open(dir, "s3", time.Now())
	if err != nil || again.InDoubt() == nil || !again.InDoubt().Cut.Equal(in.Cut) || len(again.j.Files) != 1 {
		t.Fatalf("after the first write: %+v, %v", again, err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(&Journal{Files: []File{{File: checkpoint.File{Seq: 1, ID: "x"}, Cursor: checkpoint.Cursor{Offset: 10}, Gen: 1}},
		Intent: &Intent{Records: 1, Segments: []Segment{{Seq: 1, ID: "x", Start: 10, End: 20}}, Made: []Made{{Kind: "start", Line: []byte("{}")}}}})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"checksum":"sha256:","journal":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode to something that decodes equal.
		again, err := Encode(j)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded journal does not decode: %v", err)
		}
		a, _ := Encode(j2)
		if string(a) != string(again) {
			t.Fatalf("re-encode changed the journal")
		}
	})
}

// A delivery recorded and not written leaves the intent in doubt on disk
// until the next intent or Flush writes it.
func TestRecordIsWrittenByFlush(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, "a", time.Now())
	f := checkpoint.File{Seq: 1, ID: "x"}
	s.Intend(&Intent{Records: 1, Segments: []Segment{{Seq: 1, ID: "x", Start: 0, End: 10}}})
	s.Record([]File{{File: f, Cursor: checkpoint.Cursor{Offset: 10}}}, nil)
	if again, _ := Open(dir, "a", time.Now()); again.InDoubt() == nil || len(again.j.Files) != 0 {
		t.Fatalf("before the flush the file holds %+v, want the intent alone", again.j)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if again, _ := Open(dir, "a", time.Now()); again.InDoubt() != nil || len(again.j.Files) != 1 || s.Dirty() {
		t.Fatalf("after the flush the file holds %+v, want the delivery alone", again.j)
	}
}
