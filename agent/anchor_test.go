package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"testing"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// chainSink is a recSink that links its batches in a hash chain, as the
// S3 sink does, and reports every head it had.
type chainSink struct {
	recSink
	hmu   sync.Mutex
	seq   int64
	heads map[int64]string // seq → sha256
}

func newChainSink(name string) *chainSink {
	return &chainSink{recSink: recSink{name: name}, heads: map[int64]string{}}
}

func (s *chainSink) Write(ctx context.Context, b *sinks.Batch) error {
	if err := s.recSink.Write(ctx, b); err != nil {
		return err
	}
	s.hmu.Lock()
	defer s.hmu.Unlock()
	s.seq++
	sum := sha256.Sum256([]byte(s.name + strconv.FormatInt(s.seq, 10)))
	s.heads[s.seq] = hex.EncodeToString(sum[:])
	return nil
}

func (s *chainSink) Head() (sinks.AnchorRecord, bool) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.seq == 0 {
		return sinks.AnchorRecord{}, false
	}
	return sinks.AnchorRecord{Kind: sinks.AnchorRecordKind, APIVersion: sinks.RecordAPIVersion, Sink: s.name,
		Chain: "node/" + s.name, Epoch: "e1", Seq: s.seq, SHA256: s.heads[s.seq], Key: "k" + strconv.FormatInt(s.seq, 10)}, true
}

func (s *chainSink) last() (int64, string) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return s.seq, s.heads[s.seq]
}

// anchors decodes the anchor records s received.
func anchors(t *testing.T, s *recSink) []sinks.AnchorRecord {
	t.Helper()
	var out []sinks.AnchorRecord
	for _, r := range s.ofKind(sinks.KindAnchor) {
		var a sinks.AnchorRecord
		if err := json.Unmarshal([]byte(r.Line), &a); err != nil {
			t.Fatalf("anchor record %q: %v", r.Line, err)
		}
		out = append(out, a)
	}
	return out
}

// Every head of a chained sink reaches the sinks without a chain as an
// anchor record; chained sinks get none, so two
// archives do not feed each other anchors forever.
func TestAnchorsReachTheOtherSinks(t *testing.T) {
	e := newEnv(t)
	archive, other := newChainSink("s3"), newChainSink("s3-dr")
	plain := &recSink{name: "kafka"}
	stop := e.start(e.options(), archive, other, plain)
	for i := range 5 {
		appendLines(t, e.live, events(i*10, i*10+10)...)
		waitEvents(t, &archive.recSink, events(0, i*10+10))
	}
	waitEvents(t, plain, events(0, 50))
	eventually(t, "the last head anchored", func() bool {
		seq, sha := archive.last()
		for _, a := range anchors(t, plain) {
			if a.Sink == "s3" && a.Seq == seq && a.SHA256 == sha {
				return true
			}
		}
		return false
	})
	stop()
	byChain := map[string]int{}
	for _, a := range anchors(t, plain) {
		byChain[a.Sink]++
		cs := map[string]*chainSink{"s3": archive, "s3-dr": other}[a.Sink]
		if cs == nil {
			t.Fatalf("anchor from unknown sink %+v", a)
		}
		cs.hmu.Lock()
		want := cs.heads[a.Seq]
		cs.hmu.Unlock()
		if a.SHA256 != want || a.Kind != sinks.AnchorRecordKind || a.AnchoredAt == "" || a.Chain != "node/"+a.Sink {
			t.Errorf("anchor %+v does not match head %d (%s)", a, a.Seq, want)
		}
	}
	if byChain["s3"] == 0 || byChain["s3-dr"] == 0 {
		t.Errorf("anchors by chain %v, want both chains", byChain)
	}
	for _, s := range []*chainSink{archive, other} {
		if n := len(s.ofKind(sinks.KindAnchor)); n != 0 {
			t.Errorf("chained sink %s got %d anchor records", s.name, n)
		}
	}
}

// A sink that is down does not pile up one anchor per upload: a newer head
// replaces the ones it was not handed yet, in memory and in the
// checkpoint, and after a restart it gets the latest.
func TestAnchorsSupersedeWhileASinkIsDown(t *testing.T) {
	e := newEnv(t)
	archive := newChainSink("s3")
	plain := &recSink{name: "kafka", block: make(chan struct{})}
	stop := e.start(e.options(), archive, plain)
	for i := range 10 {
		appendLines(t, e.live, events(i*10, i*10+10)...)
		waitEvents(t, &archive.recSink, events(0, i*10+10))
	}
	var pending int
	eventually(t, "the checkpoint holds at most three anchors", func() bool {
		st, _, err := checkpoint.NewStore(e.state).Load()
		if err != nil {
			t.Fatal(err)
		}
		pending = 0
		for _, n := range st.Notices {
			if n.Kind == sinks.KindAnchor.String() {
				pending++
			}
		}
		return pending >= 1 && pending <= 3 // one per batch handed to the blocked writer or its reader, and the latest
	})
	stop()

	plain.block = nil
	archive2 := newChainSink("s3")
	archive2.seq = archive.seq
	for k, v := range archive.heads {
		archive2.heads[k] = v
	}
	e.start(e.options(), archive2, plain)
	seq, sha := archive.last()
	eventually(t, "the latest head anchored after the restart", func() bool {
		for _, a := range anchors(t, plain) {
			if a.Seq >= seq {
				return true
			}
		}
		return false
	})
	as := anchors(t, plain)
	if len(as) > 4 || seq < 10 {
		t.Errorf("%d anchors delivered for %d uploads; want the superseded ones left out", len(as), seq)
	}
	found := false
	for _, a := range as {
		found = found || a.Seq == seq && a.SHA256 == sha
	}
	if !found {
		t.Errorf("anchors %+v: none for the head before the restart (%d %s)", as, seq, sha)
	}
}
