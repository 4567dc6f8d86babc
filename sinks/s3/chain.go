package s3

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/slotfile"
)

// Object metadata of the hash chain. Every object a sink uploads names its
// place in the chain of that sink on that node: the chain's epoch, its
// sequence number in the epoch and the SHA-256 of the previous object's
// content. An epoch starts at sequence 1 with no previous object, and says
// why in chain-start.
const (
	MetaChain      = "chain"       // "<node>/<sink>": whose chain
	MetaEpoch      = "chain-epoch" // "<UTC start time>-<random>", sorts by start
	MetaSeq        = "chain-seq"
	MetaPrev       = "chain-prev" // hex SHA-256 of the previous object's content
	MetaChainStart = "chain-start"
	MetaSHA256     = "sha256" // hex SHA-256 of this object's content
	// MetaRecordsSHA256 is the hex SHA-256 of the records, the object's
	// uncompressed content after its manifest line.
	MetaRecordsSHA256 = "records-sha256"
	// MetaMarked lists the kinds of agent-made records in the object:
	// gap, tamper, heartbeat, start, unparsed, oversized; empty for events
	// only.
	MetaMarked = "marked"
	// MetaClosed is "true" on the object that closes a chain (see
	// Manifest.Closed).
	MetaClosed = "closed"
	// MetaCollision names the key another object held (see
	// Manifest.Collision).
	MetaCollision = "collision"
	// MetaFormat is "ocsf" on objects whose events are OCSF (see
	// Manifest.Format).
	MetaFormat = "format"
)

// Reasons an epoch starts.
const (
	// StartNoState: the sink had no chain state: its first start, or the
	// state directory was lost.
	StartNoState = "no-state"
	// StartUnreadable: the state file existed but could not be read.
	StartUnreadable = "unreadable-state"
	// StartRenamed: the state file held the chain of another node or
	// sink name; that chain ends where it was, closed or not.
	StartRenamed = "renamed"
)

// chainState is what the sink keeps in its state file between uploads.
type chainState struct {
	// Chain is "<node>/<sink>"; empty in files written before it was kept.
	Chain  string `json:"chain,omitempty"`
	Epoch  string `json:"epoch"`
	Seq    int64  `json:"seq"`
	SHA256 string `json:"sha256"`
	Key    string `json:"key"`
	// Pending is the object being uploaded: recorded before the upload so
	// that after a crash the sink looks for it before reusing its
	// sequence number, which would fork the chain.
	Pending *pendingObject `json:"pending,omitempty"`
	// Start is why the epoch started (a Start* reason), kept until its
	// first object is uploaded, which carries it: a crash before that
	// continues the epoch with the same reason.
	Start string `json:"start,omitempty"`
}

type pendingObject struct {
	Key    string `json:"key"`
	Seq    int64  `json:"seq"`
	SHA256 string `json:"sha256"`
}

// chain links the sink's objects. It is persisted after every upload,
// atomically, so a restart continues the chain; without its file a new
// epoch starts and says so.
type chain struct {
	path  string // the state file's name; empty: not persisted (tests, --once without state)
	f     *slotfile.File
	id    string
	st    chainState
	start string // reason for a new epoch, until its first object
}

// chainPath returns the name of the chain state file of sink: its slots
// are that name followed by .0 and .1 (see doc.go).
func chainPath(stateDir, sink string) string {
	if stateDir == "" {
		return ""
	}
	return filepath.Join(stateDir, "s3-chain-"+sink)
}

// legacyChainPath is the file releases before the slot files kept the
// state in, replaced by renaming: read when there are no slots.
func legacyChainPath(path string) string { return path + ".json" }

func loadChain(path, id string, now time.Time) (*chain, error) {
	c := &chain{path: path, id: id}
	if path != "" {
		f, b, found, err := slotfile.Open(path, legacyChainPath(path))
		c.f = f
		if err == nil && !found {
			err = os.ErrNotExist
		}
		switch {
		case errors.Is(err, slotfile.ErrCorrupt):
			c.start = StartUnreadable
		case err == nil:
			switch {
			case json.Unmarshal(b, &c.st) != nil || c.st.Epoch == "" || c.st.Seq < 0 || c.st.Seq == 0 && c.st.Start == "":
				c.start = StartUnreadable
			case c.st.Chain != "" && c.st.Chain != id:
				c.start = StartRenamed
			default:
				// Seq 0: the epoch's first upload was recorded but not
				// made, or not known to be; it continues as it began.
				c.start = c.st.Start
				return c, nil
			}
		case errors.Is(err, os.ErrNotExist):
			c.start = StartNoState
		default:
			return nil, fmt.Errorf("read chain state: %w", err)
		}
	} else {
		c.start = StartNoState
	}
	c.st = chainState{Epoch: newEpoch(now), Start: c.start}
	return c, nil
}

// epochLayout is the start time at the head of an epoch's name.
const epochLayout = "20060102T150405Z"

// EpochStart returns the start time an epoch's name begins with.
func EpochStart(epoch string) (time.Time, error) {
	return time.Parse(epochLayout, strings.SplitN(epoch, "-", 2)[0])
}

func newEpoch(now time.Time) string {
	var r [4]byte
	rand.Read(r[:])
	return now.UTC().Format(epochLayout) + "-" + hex.EncodeToString(r[:])
}

// next returns the metadata for the object after the last one.
func (c *chain) next(meta map[string]string) {
	meta[MetaChain] = c.id
	meta[MetaEpoch] = c.st.Epoch
	meta[MetaSeq] = strconv.FormatInt(c.st.Seq+1, 10)
	meta[MetaPrev] = c.st.SHA256
	if c.st.Seq == 0 {
		meta[MetaChainStart] = c.start
		delete(meta, MetaPrev)
	}
}

// follows reports whether meta, found on an object already in S3, is
// later in the current epoch than the last object recorded: an upload
// whose outcome was unknown, or one from before a crash. Objects of other
// epochs are not followed: after a lost state the chain restarts visibly.
func (c *chain) follows(meta map[string]string) bool {
	seq, err := strconv.ParseInt(meta[MetaSeq], 10, 64)
	return err == nil && meta[MetaEpoch] == c.st.Epoch && seq > c.st.Seq
}

// intend records, durably, that the object with meta is about to be
// uploaded at key.
func (c *chain) intend(key string, meta map[string]string) error {
	seq, _ := strconv.ParseInt(meta[MetaSeq], 10, 64)
	c.st.Pending = &pendingObject{Key: key, Seq: seq, SHA256: meta[MetaSHA256]}
	return c.persist()
}

// pending returns the upload recorded by intend whose outcome is unknown.
func (c *chain) pending() *pendingObject { return c.st.Pending }

// resolve settles the pending upload: meta is what S3 holds at its key,
// nil if nothing. An object found there becomes the chain's last.
func (c *chain) resolve(meta map[string]string) error {
	p := c.st.Pending
	c.st.Pending = nil
	if meta != nil && meta[MetaEpoch] == c.st.Epoch && meta[MetaSeq] == strconv.FormatInt(p.Seq, 10) {
		return c.advance(p.Key, meta)
	}
	return c.persist()
}

// drop forgets the pending upload: its key holds another object.
func (c *chain) drop() error {
	c.st.Pending = nil
	return c.persist()
}

func (c *chain) persist() error {
	if c.path == "" {
		return nil
	}
	c.st.Chain = c.id
	b, _ := json.Marshal(c.st)
	if err := c.f.Replace(b); err != nil {
		return fmt.Errorf("persist chain state: %w", err)
	}
	return nil
}

// close releases the state file; a later persist opens it again.
func (c *chain) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// advance records the object with meta (as sent, or as found in S3) as the
// chain's last and persists it.
func (c *chain) advance(key string, meta map[string]string) error {
	seq, err := strconv.ParseInt(meta[MetaSeq], 10, 64)
	if err != nil || meta[MetaEpoch] == "" {
		return nil // an object from before the chain: nothing to follow
	}
	c.st = chainState{Epoch: meta[MetaEpoch], Seq: seq, SHA256: meta[MetaSHA256], Key: key}
	return c.persist()
}
