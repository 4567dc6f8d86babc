package sinks

// The records the agent makes itself, in place of or beside the audit
// events: their JSON form, shared by the agent that writes them and by
// what reads them back (alert destinations, `auditrail verify`).

// RecordAPIVersion marks the records the agent makes, so that consumers can
// tell them from audit events.
const RecordAPIVersion = "auditrail.io/v1"

// Values of the "kind" field of the agent's records.
const (
	GapRecordKind       = "AuditrailGap"
	OversizedStubKind   = "AuditrailOversizedLine"
	UnparsedStubKind    = "AuditrailUnparsedLine"
	TamperRecordKind    = "AuditrailTamper"
	HeartbeatRecordKind = "AuditrailHeartbeat"
	StartRecordKind     = "AuditrailAgentStarted"
	AnchorRecordKind    = "AuditrailAnchor"
)

// Reasons of tamper records.
const (
	// TamperDeleted: the live audit file disappeared without being
	// rotated; its content is under no name in the directory.
	TamperDeleted = "deleted"
	// TamperDeletedOutOfOrder: a rotated file disappeared while an older
	// one of the same log is still there; kube-apiserver prunes oldest
	// first.
	TamperDeletedOutOfOrder = "deleted-out-of-order"
	// TamperNoState: no checkpoint in the state directory: the agent's
	// first start on the node, or its state was deleted.
	TamperNoState = "no-state"
	// TamperCorruptState: the checkpoint could not be trusted and was
	// moved aside.
	TamperCorruptState = "corrupt-state"
	// TamperUnredactable: a body that had to be redacted could not be; the
	// sinks that redact got a marker in its place. Reported once per run.
	TamperUnredactable = "unredactable"
)

// FileInfo names a source file in the agent's records.
type FileInfo struct {
	ID   string `json:"id"`
	Path string `json:"path"`
}

// GapRecord reports data a sink could not read (KindGap).
type GapRecord struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Reason     string   `json:"reason"`
	Sink       string   `json:"sink"`
	DetectedAt string   `json:"detectedAt"`
	File       FileInfo `json:"file"`
	// Bytes is the lost byte range. ToKnown is false when the file may have
	// grown after the agent last saw it, so To is a lower bound.
	//
	// AtLeast and Estimate are set when the file was pruned after the
	// agent last saw it live, so its end is unknown: AtLeast is a lower
	// bound on the bytes lost from it, taking its final size as that of
	// the smallest uncompressed backup on disk (kube-apiserver rotates at a
	// fixed size); Estimate adds the files that were likely rotated and
	// pruned after it unseen (Files.Estimate), each the median backup's
	// size. Neither is counted in auditrail_gap_bytes_total.
	Bytes struct {
		From     int64 `json:"from"`
		To       int64 `json:"to"`
		ToKnown  bool  `json:"toKnown"`
		AtLeast  int64 `json:"atLeast,omitempty"`
		Estimate int64 `json:"estimate,omitempty"`
	} `json:"bytes"`
	// Files, when set, counts the files lost, this one included: at least
	// AtLeast; Estimate from the rotation times in the names of the
	// backups on disk (their interval, and the time from the last event
	// read to the oldest backup).
	Files *GapFiles `json:"files,omitempty"`
	// Time bounds the events that may be missing: after the last event the
	// sink acknowledged from the file, before the first event of the next
	// readable file.
	Time struct {
		After  string `json:"after,omitempty"`
		Before string `json:"before,omitempty"`
	} `json:"time"`
}

// GapFiles counts the files a gap record covers (GapRecord.Files).
type GapFiles struct {
	AtLeast  int `json:"atLeast"`
	Estimate int `json:"estimate"`
}

// OversizedStub stands in for a line above the size limit (KindOversized).
type OversizedStub struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	AuditID    string   `json:"auditID,omitempty"`
	Size       int64    `json:"size"`
	Limit      int      `json:"limit"`
	SHA256     string   `json:"sha256"`
	Complete   bool     `json:"complete"`
	File       FileInfo `json:"file"`
	Offset     int64    `json:"offset"`
	ReadAt     string   `json:"readAt"`
}

// UnparsedStub stands in for an unparsed line (KindUnparsed) in a sink
// that redacts secrets: a line that is not a well-formed event cannot be
// redacted, and may be a truncated event that carried credentials.
type UnparsedStub struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Reason     string   `json:"reason"`
	AuditID    string   `json:"auditID,omitempty"`
	Size       int      `json:"size"`
	SHA256     string   `json:"sha256"`
	File       FileInfo `json:"file"`
	Offset     int64    `json:"offset"`
	ReadAt     string   `json:"readAt"`
}

// TamperRecord reports a change on the node outside normal operation
// (KindTamper).
type TamperRecord struct {
	Kind       string    `json:"kind"`
	APIVersion string    `json:"apiVersion"`
	Reason     string    `json:"reason"`
	DetectedAt string    `json:"detectedAt"`
	Detail     string    `json:"detail"`
	File       *FileInfo `json:"file,omitempty"`
	// Size is how many bytes the file held when last seen.
	Size int64 `json:"size,omitempty"`
}

// StartRecord is delivered to every sink when the agent starts
// (KindStart).
type StartRecord struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	StartedAt  string `json:"startedAt"`
	// State is "resumed", "none" or "corrupt".
	State string `json:"state"`
	// PreviousRunUntil is when the previous run last committed its state:
	// the agent was not running between it and StartedAt.
	PreviousRunUntil string  `json:"previousRunUntil,omitempty"`
	DowntimeSeconds  float64 `json:"downtimeSeconds,omitempty"`
}

// HeartbeatRecord says a sink had nothing to ship for a while
// (KindHeartbeat).
type HeartbeatRecord struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Sink       string `json:"sink"`
	At         string `json:"at"`
	// IdleSince is when the sink was last handed a record.
	IdleSince string `json:"idleSince"`
}

// AnchorRecord is the head of a sink's hash chain, published to the other
// sinks after each upload (KindAnchor): a copy of the head that root on
// the node cannot rewrite. `auditrail verify --anchors` compares the
// archive with these copies; an archive rewritten after an anchor was
// published disagrees with it.
type AnchorRecord struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	// Sink is the sink whose chain this is.
	Sink string `json:"sink"`
	// Chain, Epoch and Seq name the object; SHA256 is the SHA-256 of its
	// stored bytes and Key where it is.
	Chain  string `json:"chain"`
	Epoch  string `json:"epoch"`
	Seq    int64  `json:"seq"`
	SHA256 string `json:"sha256"`
	Key    string `json:"key"`
	// AnchoredAt is when the agent published the head.
	AnchoredAt string `json:"anchoredAt"`
}
