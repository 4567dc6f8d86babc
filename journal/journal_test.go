package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
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

// A journal that cannot be trusted is moved aside, not used.
func TestCorruptJournalMovedAside(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir, "a", time.Now())
	s.Delivered([]File{{File: checkpoint.File{Seq: 1, ID: "x"}, Cursor: checkpoint.Cursor{Offset: 10}}}, nil)
	b, _ := os.ReadFile(Path(dir, "a"))
	b[len(b)-10] ^= 1
	os.WriteFile(Path(dir, "a"), b, 0o600)
	s, err := Open(dir, "a", time.Now())
	if !errors.Is(err, ErrCorrupt) || s == nil || len(s.j.Files) != 0 {
		t.Fatalf("err %v, store %+v", err, s)
	}
	if m, _ := filepath.Glob(Path(dir, "a") + ".corrupt-*"); len(m) != 1 {
		t.Errorf("moved aside: %v", m)
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
