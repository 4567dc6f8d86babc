package checkpoint

import (
	"encoding/json"
	"time"
)

// State is everything the agent needs to resume after a restart.
type State struct {
	// NextSeq is the sequence number the next newly discovered file gets.
	NextSeq uint64 `json:"nextSeq"`
	// Files are the source files known to the agent, oldest first.
	Files []File `json:"files"`
	// SavedAt is when the agent committed this state. The next start
	// reports the time since as how long the agent was not running.
	SavedAt time.Time `json:"savedAt,omitzero"`
	// Notices are records about the node the agent made and not every
	// sink acknowledged yet: tamper signals and start records. They are
	// delivered after a restart like unread lines.
	Notices []Notice `json:"notices,omitempty"`
}

// Notice is a record not tied to a byte range of a source file.
type Notice struct {
	// ID is unique across the agent's runs and state losses; sinks derive
	// idempotency keys from it.
	ID string `json:"id"`
	// Kind is the record kind's name: "tamper" or "heartbeat".
	Kind string `json:"kind"`
	// Record is the JSON line shipped.
	Record json.RawMessage `json:"record"`
	// Pending are the sinks that have not acknowledged it.
	Pending []string `json:"pending"`
}

// File is one source file, identified by its device and inode and by a
// fingerprint of its first bytes.
type File struct {
	// Seq orders files: a file with a higher Seq holds later events.
	Seq uint64 `json:"seq"`
	// ID is the stable identity given when the file was first seen.
	ID string `json:"id"`
	// Dev and Ino are where the file's current path points.
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// FingerprintLen is how many leading bytes Fingerprint covers.
	FingerprintLen int `json:"fingerprintLen"`
	// Fingerprint is the hex SHA-256 of the first FingerprintLen bytes of
	// the uncompressed content.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Path is where the file was last seen.
	Path string `json:"path"`
	// Size is the last uncompressed size observed.
	Size int64 `json:"size"`
	// Final is true once the file was rotated away: it will not grow.
	Final bool `json:"final,omitempty"`
	// Compressed is true when Path is a gzip file.
	Compressed bool `json:"compressed,omitempty"`
	// Cursors holds each sink's acknowledged position, by sink name.
	Cursors map[string]Cursor `json:"cursors,omitempty"`
}

// Cursor is one sink's acknowledged position in one file.
type Cursor struct {
	// Offset is the byte offset below which every line was acknowledged.
	Offset int64 `json:"offset"`
	// Done is true once the sink acknowledged everything up to the end of a
	// final file (or a gap record standing in for it).
	Done bool `json:"done,omitempty"`
	// LastEventTime is the timestamp of the last acknowledged event, used to
	// bound the time range of a gap.
	LastEventTime string `json:"lastEventTime,omitempty"`
}

// Clone returns a deep copy of s.
func (s *State) Clone() *State {
	c := &State{NextSeq: s.NextSeq, Files: make([]File, len(s.Files)), SavedAt: s.SavedAt}
	for _, n := range s.Notices {
		n.Record = append(json.RawMessage(nil), n.Record...)
		n.Pending = append([]string(nil), n.Pending...)
		c.Notices = append(c.Notices, n)
	}
	for i, f := range s.Files {
		c.Files[i] = f
		if f.Cursors != nil {
			c.Files[i].Cursors = make(map[string]Cursor, len(f.Cursors))
			for k, v := range f.Cursors {
				c.Files[i].Cursors[k] = v
			}
		}
	}
	return c
}
