package sinks

import (
	"crypto/sha256"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// Kind says what a record holds.
type Kind uint8

const (
	// KindEvent is a line that parsed as an audit event.
	KindEvent Kind = iota
	// KindUnparsed is a line that is not a well-formed event: not JSON,
	// truncated, invalid UTF-8, NUL bytes or CRLF. Line holds the original
	// bytes.
	KindUnparsed
	// KindOversized is a stub standing in for a line longer than the
	// configured limit. Line holds a small JSON object with the auditID (if
	// it could be read), the size and the SHA-256 of the full line.
	KindOversized
	// KindGap is a record the agent made to report data it could not read:
	// a file pruned or truncated before this sink read it. Line holds a
	// JSON object describing the file, byte range and time range.
	KindGap
	// KindTamper is a record the agent made to report a change on the node
	// outside normal operation: an audit file deleted rather than rotated,
	// a rotated file deleted while older ones remain, the agent's state
	// directory lost or unreadable. Line holds a JSON object saying what
	// and when. It is not tied to a byte range: File is a per-record
	// identity and Offset is 0.
	KindTamper
	// KindHeartbeat is a record the agent made to say it is running:
	// whenever a sink had nothing to ship for the heartbeat interval. Like
	// KindTamper it is not tied to a byte range.
	KindHeartbeat
	// KindStart is the record the agent makes at each start (StartRecord).
	// Like KindTamper it is not tied to a byte range.
	KindStart
	// KindAnchor publishes the head of another sink's hash chain
	// (AnchorRecord), so that a copy of it lives where the node cannot
	// rewrite it. Like KindTamper it is not tied to a byte range.
	KindAnchor
)

// String returns the kind's name as used in metrics and marked records.
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindUnparsed:
		return "unparsed"
	case KindOversized:
		return "oversized"
	case KindGap:
		return "gap"
	case KindTamper:
		return "tamper"
	case KindHeartbeat:
		return "heartbeat"
	case KindStart:
		return "start"
	case KindAnchor:
		return "anchor"
	}
	return "unknown"
}

// FileRef identifies a source file. It is shared by every record read from
// that file and must not be modified.
type FileRef struct {
	// Seq orders files: a higher Seq holds later events.
	Seq uint64
	// ID is a short identity that stays the same for the file's whole life,
	// through renames and compression: device and inode where it was first
	// seen and the first 16 hex digits of its fingerprint. Use it in object
	// keys and document ids.
	ID string
	// Path is where the file was when reading started.
	Path string
}

// Record is one line, or a record standing in for one or more lines.
type Record struct {
	// Line is the record's bytes without the trailing newline.
	Line []byte
	Kind Kind
	// Event holds the parsed fields of a KindEvent record, sub-slices of
	// Line; it is nil for the other kinds. The records of one line in
	// different sinks' batches may share it: it must not be modified.
	Event *auditjson.Event
	// File is the source file; Offset is where the line starts in it.
	File   *FileRef
	Offset int64
	// Rules are the ids of the detection rules the event matched, for
	// sinks that tag records with them (Elasticsearch, Kafka); nil when
	// none matched or the sink does not tag.
	Rules []string
	// Sum, when set, is the SHA-256 of the line as read from the file. It
	// is set by whoever rewrites Line (redaction) before rewriting it, and
	// by the agent on events whose line it hashed once for several sinks
	// (a line they share); nil means Line is as read and nobody hashed it
	// yet. Idempotency keys rest on it (see AppendID, LineSum), so that
	// every sink, redacting or not, gives an event the same key. The
	// records of one line in different sinks' batches may share it: it
	// must not be modified.
	Sum *[sha256.Size]byte
}

// Segment is a contiguous byte range of one source file covered by a batch.
type Segment struct {
	File       *FileRef
	Start, End int64
	// Done is set when the batch finishes the file: acknowledging it means
	// the sink will never need the file again.
	Done bool
	// LastEventTime is the stageTimestamp of the last event in the range.
	LastEventTime string
}

// Batch is a group of records delivered to one sink in one Write call, with
// the source ranges it covers. Records appear in file order; tamper and
// heartbeat records, which cover no range, may come first. A batch of
// only such records has no segments.
type Batch struct {
	Records  []Record
	Segments []Segment
	// Bytes is the total length of the records' lines.
	Bytes int
	// Cut is when the agent first built the batch. A batch cut again after
	// a crash (see package journal) has the same records, ranges and Cut,
	// so a sink that names a batch without events by time names it the
	// same.
	Cut time.Time
}
