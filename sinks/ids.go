package sinks

import (
	"strconv"
)

// AppendID appends r's idempotency key to dst: auditID and stage for an
// event ("<auditID>-<stage>"), and for anything without an auditID the
// source file identity and offset ("<file id>@<offset>"), which stay the
// same when the record is delivered again after a crash.
func AppendID(dst []byte, r *Record) []byte {
	if r.Kind == KindEvent && r.Event != nil && len(r.Event.AuditID) > 0 {
		dst = append(dst, r.Event.AuditID...)
		if len(r.Event.Stage) > 0 {
			dst = append(dst, '-')
			dst = append(dst, r.Event.Stage...)
		}
		return dst
	}
	dst = append(dst, r.File.ID...)
	dst = append(dst, '@')
	return strconv.AppendInt(dst, r.Offset, 10)
}

// AppendKey appends r's partitioning key to dst: the auditID, so that every
// stage of one request stays together, or for a record without one the
// source file identity and offset.
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
