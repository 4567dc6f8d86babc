package sinks

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// AppendID appends r's idempotency key to dst. For an event it is the
// SHA-256 of the line as read from the file, in hex: the same line
// delivered again gets the same key, however batches are cut, and two
// different lines never share one. Nothing in it is chosen by an API
// client, unlike auditID, which kube-apiserver takes from the Audit-ID
// request header when a client sends one. For the other records it is
// the source file identity and offset ("<file id>@<offset>"), which stay
// the same when the record is delivered again after a crash.
func AppendID(dst []byte, r *Record) []byte {
	if r.Kind == KindEvent {
		sum := r.LineSum()
		return hex.AppendEncode(dst, sum[:])
	}
	dst = append(dst, r.File.ID...)
	dst = append(dst, '@')
	return strconv.AppendInt(dst, r.Offset, 10)
}

// LineSum returns the SHA-256 of r's line as read from the file: Sum when
// it is set (the line was rewritten, or the agent hashed it for every
// sink), else the digest of Line.
func (r *Record) LineSum() [sha256.Size]byte {
	if r.Sum != nil {
		return *r.Sum
	}
	return sha256.Sum256(r.Line)
}

// AppendKey appends r's partitioning key to dst: the auditID, so that every
// stage of one request stays together, or for a record without one the
// source file identity and offset. It is not an identity: requests can
// share an auditID.
func AppendKey(dst []byte, r *Record) []byte {
	if r.Kind == KindEvent && r.Event != nil && len(r.Event.AuditID) > 0 {
		return append(dst, r.Event.AuditID...)
	}
	dst = append(dst, r.File.ID...)
	dst = append(dst, '@')
	return strconv.AppendInt(dst, r.Offset, 10)
}

// EventTime returns the record's stageTimestamp, falling back to
// requestReceivedTimestamp; nil for records that are not events.
func EventTime(r *Record) []byte {
	if r.Kind != KindEvent || r.Event == nil {
		return nil
	}
	if len(r.Event.StageTimestamp) > 0 {
		return r.Event.StageTimestamp
	}
	return r.Event.RequestReceivedTimestamp
}
