package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/testproc"
)

// chainWriterEnv, when set, makes the test binary a process that persists
// a chain state at that path as fast as it can, forever: seq counting up,
// with a pending upload every other state, and SHA256 the digest of seq.
const chainWriterEnv = "AUDITRAIL_S3_CHAIN_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(chainWriterEnv); path != "" {
		writeChainForever(path)
	}
	os.Exit(m.Run())
}

func seqDigest(seq int64) string {
	sum := sha256.Sum256([]byte(strconv.FormatInt(seq, 10)))
	return hex.EncodeToString(sum[:])
}

func writeChainForever(path string) {
	c, err := loadChain(path, "node/s3", time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for {
		next := c.st.Seq + 1
		meta := map[string]string{MetaEpoch: c.st.Epoch, MetaSeq: strconv.FormatInt(next, 10), MetaSHA256: seqDigest(next)}
		if err := c.intend(fmt.Sprintf("key-%d", next), meta); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := c.advance(fmt.Sprintf("key-%d", next), meta); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
}

// The chain state killed at random moments while it is being written, over
// and over: every time, the next start reads it whole (never "unreadable",
// never a new epoch), at the last state persisted or the one before, and it
// keeps counting up from there.
func TestChainStateSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s3-chain-s3")
	rng := rand.New(rand.NewPCG(1, 2))
	var epoch string
	var last int64
	for i := 0; i < 40; i++ {
		cmd := testproc.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), chainWriterEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitWriting(t, path, last)
		time.Sleep(time.Duration(rng.IntN(20000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("kill %d: the writer exited by itself: %v", i, cmd.ProcessState)
		}
		c, err := loadChain(path, "node/s3", time.Now())
		if err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if c.start != "" && c.st.Seq > 0 {
			t.Fatalf("kill %d: chain state read as %q after %d states", i, c.start, last)
		}
		if epoch != "" && c.st.Epoch != epoch {
			t.Fatalf("kill %d: epoch %s, want %s: a new epoch started", i, c.st.Epoch, epoch)
		}
		epoch = c.st.Epoch
		if c.st.Seq < last || c.st.SHA256 != seqDigest(c.st.Seq) {
			t.Fatalf("kill %d: state seq %d (sha %s), the last one read was %d", i, c.st.Seq, c.st.SHA256, last)
		}
		if p := c.st.Pending; p != nil && (p.Seq != c.st.Seq+1 || p.SHA256 != seqDigest(p.Seq)) {
			t.Fatalf("kill %d: pending %+v after seq %d", i, p, c.st.Seq)
		}
		last = c.st.Seq
	}
	t.Logf("%d states persisted over 40 kills", last)
}

// waitWriting waits until the writer has persisted a state after seq,
// reading the state as it is being replaced.
func waitWriting(t *testing.T, path string, seq int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c, err := loadChain(path, "node/s3", time.Now())
		if err == nil && c.start == StartUnreadable {
			t.Fatal("a read racing the writer found the state unreadable")
		}
		if err == nil && c.st.Seq > seq {
			return
		}
	}
	t.Fatal("the writer persisted nothing for a minute")
}

// A SIGKILL between recording the first upload of an epoch and learning
// its outcome leaves a state with no object yet (seq 0) and a pending
// one. That state is whole: the next start continues the epoch, with the
// reason it started for, instead of calling the state unreadable and
// starting another epoch (a chain-restart finding nobody caused).
func TestKilledBeforeFirstUploadKeepsTheEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s3-chain-s3")
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	c, err := loadChain(path, "n/s3", now)
	if err != nil {
		t.Fatal(err)
	}
	if c.start != StartNoState {
		t.Fatalf("first start: %q, want %q", c.start, StartNoState)
	}
	meta := map[string]string{}
	c.next(meta)
	if err := c.intend("k1", meta); err != nil {
		t.Fatal(err)
	}
	for _, settle := range []string{"pending", "nothing found at the key"} {
		again, err := loadChain(path, "n/s3", now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if again.st.Epoch != c.st.Epoch || again.start != StartNoState {
			t.Fatalf("%s: restart gives epoch %s (start %q), want %s (start %q)", settle, again.st.Epoch, again.start, c.st.Epoch, StartNoState)
		}
		m := map[string]string{}
		again.next(m)
		if m[MetaSeq] != "1" || m[MetaChainStart] != StartNoState {
			t.Errorf("%s: next object seq %s, chain-start %q; want 1, %q", settle, m[MetaSeq], m[MetaChainStart], StartNoState)
		}
		if err := again.resolve(nil); err != nil {
			t.Fatal(err)
		}
	}
}
