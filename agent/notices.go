package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// notice is a record about the node or the agent, not tied to a byte range
// of a source file: a tamper signal or a start record. It is kept, and
// committed with the checkpoint, until every sink acknowledged it.
// Guarded by registry.mu.
type notice struct {
	ref  *sinks.FileRef // ID is the notice's id; Seq is 0
	kind sinks.Kind
	line []byte
	// pending are the sinks that have not acknowledged it; handed are
	// those whose reader put it in a batch during this run.
	pending map[string]bool
	handed  map[string]bool
	// origin is the sink whose chain head an anchor notice carries.
	origin string
}

// newNoticeID returns an id unique across runs and state losses: the time
// and random bits.
func newNoticeID(kind sinks.Kind, now time.Time) string {
	var b [6]byte
	rand.Read(b[:])
	return kind.String() + "-" + now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:])
}

func parseKind(s string) (sinks.Kind, bool) {
	for _, k := range []sinks.Kind{sinks.KindTamper, sinks.KindHeartbeat, sinks.KindStart, sinks.KindAnchor} {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// loadNotices restores the notices of a checkpoint, for the sinks that
// are still configured.
func (r *registry) loadNotices(ns []checkpoint.Notice) {
	for _, n := range ns {
		kind, ok := parseKind(n.Kind)
		if !ok {
			continue
		}
		nt := &notice{ref: &sinks.FileRef{ID: n.ID}, kind: kind, line: n.Record,
			pending: make(map[string]bool), handed: make(map[string]bool)}
		if kind == sinks.KindAnchor {
			var a sinks.AnchorRecord
			json.Unmarshal(n.Record, &a)
			nt.origin = a.Sink
		}
		for _, s := range n.Pending {
			if slices.Contains(r.sinks, s) {
				nt.pending[s] = true
			}
		}
		if len(nt.pending) > 0 {
			r.notices = append(r.notices, nt)
		}
	}
}

// notify queues a record for every sink.
func (r *registry) notify(kind sinks.Kind, rec any, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notifyLocked(kind, rec, now)
}

func (r *registry) notifyLocked(kind sinks.Kind, rec any, now time.Time) {
	n := &notice{ref: &sinks.FileRef{ID: newNoticeID(kind, now)}, kind: kind, line: marshalRecord(rec),
		pending: make(map[string]bool, len(r.sinks)), handed: make(map[string]bool, len(r.sinks))}
	for _, s := range r.sinks {
		n.pending[s] = true
	}
	r.notices = append(r.notices, n)
	if t, ok := rec.(sinks.TamperRecord); ok {
		r.m.tamper.WithLabelValues(t.Reason).Inc()
		level := slog.LevelError
		if t.Reason == sinks.TamperNoState {
			level = slog.LevelWarn // also every node's first start
		}
		r.log.Log(context.Background(), level, "audit trail tampering signal", "reason", t.Reason, "detail", t.Detail)
	}
	r.dirty = true
	r.noticeGen.Add(1)
	r.broadcastLocked()
}

// anchor queues h, the head of origin's hash chain, for the sinks that
// take anchors (anchorTo). An anchor supersedes the ones from the same
// origin that a sink was not handed yet: the newer head covers the older
// objects through the chain's links, and a sink that is down for a day
// does not pile up one anchor per upload.
func (r *registry) anchor(origin string, h sinks.AnchorRecord, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &notice{ref: &sinks.FileRef{ID: newNoticeID(sinks.KindAnchor, now)}, kind: sinks.KindAnchor, line: marshalRecord(h),
		pending: make(map[string]bool, len(r.anchorTo)), handed: make(map[string]bool, len(r.anchorTo)), origin: origin}
	for _, s := range r.anchorTo {
		if s != origin {
			n.pending[s] = true
		}
	}
	if len(n.pending) == 0 {
		return
	}
	for _, old := range r.notices {
		if old.kind != sinks.KindAnchor || old.origin != origin {
			continue
		}
		for s := range old.pending {
			if !old.handed[s] {
				delete(old.pending, s)
			}
		}
	}
	r.notices = slices.DeleteFunc(r.notices, func(n *notice) bool { return len(n.pending) == 0 })
	r.notices = append(r.notices, n)
	r.m.anchors.WithLabelValues(origin).Inc()
	r.dirty = true
	r.noticeGen.Add(1)
	r.broadcastLocked()
}

// takeNotices returns the notices sink has not been handed yet, and marks
// them handed.
func (r *registry) takeNotices(sink string) []*notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*notice
	for _, n := range r.notices {
		if n.pending[sink] && !n.handed[sink] {
			n.handed[sink] = true
			out = append(out, n)
		}
	}
	return out
}

// ackNotices records that sink acknowledged ns.
func (r *registry) ackNotices(sink string, ns []*notice) {
	if len(ns) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range ns {
		delete(n.pending, sink)
	}
	r.notices = slices.DeleteFunc(r.notices, func(n *notice) bool { return len(n.pending) == 0 })
	r.dirty = true
}

func (r *registry) exportNoticesLocked() []checkpoint.Notice {
	var out []checkpoint.Notice
	for _, n := range r.notices {
		cn := checkpoint.Notice{ID: n.ref.ID, Kind: n.kind.String(), Record: json.RawMessage(n.line)}
		for _, s := range r.sinks {
			if n.pending[s] {
				cn.Pending = append(cn.Pending, s)
			}
		}
		out = append(out, cn)
	}
	return out
}

func newTamper(reason, detail string, now time.Time) sinks.TamperRecord {
	return sinks.TamperRecord{Kind: sinks.TamperRecordKind, APIVersion: sinks.RecordAPIVersion, Reason: reason, DetectedAt: timestamp(now), Detail: detail}
}
