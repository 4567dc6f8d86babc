package agent

import (
	"encoding/json"
	"time"
)

// APIVersion marks the records the agent makes itself (gap records and
// oversized-line stubs), so that consumers can tell them from audit events.
const APIVersion = "auditrail.io/v1"

// Kinds of the records the agent makes.
const (
	KindGapRecord     = "AuditrailGap"
	KindOversizedStub = "AuditrailOversizedLine"
)

// fileInfo names a source file in agent-made records.
type fileInfo struct {
	ID   string `json:"id"`
	Path string `json:"path"`
}

// gapRecord reports data a sink could not read.
type gapRecord struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	Reason     string   `json:"reason"`
	Sink       string   `json:"sink"`
	DetectedAt string   `json:"detectedAt"`
	File       fileInfo `json:"file"`
	// Bytes is the lost byte range. ToKnown is false when the file may have
	// grown after the agent last saw it, so To is a lower bound.
	Bytes struct {
		From    int64 `json:"from"`
		To      int64 `json:"to"`
		ToKnown bool  `json:"toKnown"`
	} `json:"bytes"`
	// Time bounds the events that may be missing: after the last event the
	// sink acknowledged from the file, before the first event of the next
	// readable file.
	Time struct {
		After  string `json:"after,omitempty"`
		Before string `json:"before,omitempty"`
	} `json:"time"`
}

// oversizedStub stands in for a line above the size limit.
type oversizedStub struct {
	Kind       string   `json:"kind"`
	APIVersion string   `json:"apiVersion"`
	AuditID    string   `json:"auditID,omitempty"`
	Size       int64    `json:"size"`
	Limit      int      `json:"limit"`
	SHA256     string   `json:"sha256"`
	Complete   bool     `json:"complete"`
	File       fileInfo `json:"file"`
	Offset     int64    `json:"offset"`
	ReadAt     string   `json:"readAt"`
}

func marshalRecord(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers always marshal
	}
	return b
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
