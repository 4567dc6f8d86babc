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
// Guarded by positions.mu.
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
func (p *positions) loadNotices(ns []checkpoint.Notice) {
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
			if slices.Contains(p.sinks, s) {
				nt.pending[s] = true
			}
		}
		if len(nt.pending) > 0 {
			p.notices = append(p.notices, nt)
		}
	}
}

// notify queues a record for every sink.
func (p *positions) notify(kind sinks.Kind, rec any, now time.Time) {
	n := &notice{ref: &sinks.FileRef{ID: newNoticeID(kind, now)}, kind: kind, line: marshalRecord(rec),
		pending: make(map[string]bool, len(p.sinks)), handed: make(map[string]bool, len(p.sinks))}
	for _, s := range p.sinks {
		n.pending[s] = true
	}
	p.mu.Lock()
	p.notices = append(p.notices, n)
	p.dirty = true
	p.noticeGen.Add(1)
	p.mu.Unlock()
	if t, ok := rec.(sinks.TamperRecord); ok {
		p.m.tamper.WithLabelValues(t.Reason).Inc()
		level := slog.LevelError
		if t.Reason == sinks.TamperNoState {
			level = slog.LevelWarn // also every node's first start
		}
		p.log.Log(context.Background(), level, "audit trail tampering signal", "reason", t.Reason, "detail", t.Detail)
	}
	p.bell.ring()
}

// anchor queues h, the head of origin's hash chain, for the sinks that
// take anchors (anchorTo). An anchor supersedes the ones from the same
// origin that a sink was not handed yet: the newer head covers the older
// objects through the chain's links, and a sink that is down for a day
// does not pile up one anchor per upload.
func (p *positions) anchor(origin string, h sinks.AnchorRecord, now time.Time) {
	if p.queueAnchor(origin, h, now) {
		p.m.anchors.WithLabelValues(origin).Inc()
		p.bell.ring()
	}
}

// queueAnchor queues the anchor notice; it reports whether some
// sink takes it.
func (p *positions) queueAnchor(origin string, h sinks.AnchorRecord, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := &notice{ref: &sinks.FileRef{ID: newNoticeID(sinks.KindAnchor, now)}, kind: sinks.KindAnchor, line: marshalRecord(h),
		pending: make(map[string]bool, len(p.anchorTo)), handed: make(map[string]bool, len(p.anchorTo)), origin: origin}
	for _, s := range p.anchorTo {
		if s != origin {
			n.pending[s] = true
		}
	}
	if len(n.pending) == 0 {
		return false
	}
	for _, old := range p.notices {
		if old.kind != sinks.KindAnchor || old.origin != origin {
			continue
		}
		for s := range old.pending {
			if !old.handed[s] {
				delete(old.pending, s)
			}
		}
	}
	p.notices = slices.DeleteFunc(p.notices, func(n *notice) bool { return len(n.pending) == 0 })
	p.notices = append(p.notices, n)
	p.dirty = true
	p.noticeGen.Add(1)
	return true
}

// takeNotices returns the notices sink has not been handed yet, and marks
// them handed.
func (p *positions) takeNotices(sink string) []*notice {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*notice
	for _, n := range p.notices {
		if n.pending[sink] && !n.handed[sink] {
			n.handed[sink] = true
			out = append(out, n)
		}
	}
	return out
}

// claimNotice returns the notice id if it waits for sink and was not
// handed to its reader yet, and marks it handed; nil otherwise.
func (p *positions) claimNotice(sink, id string) *notice {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.notices {
		if n.ref.ID == id && n.pending[sink] && !n.handed[sink] {
			n.handed[sink] = true
			return n
		}
	}
	return nil
}

// ackNotices records that sink acknowledged ns.
func (p *positions) ackNotices(sink string, ns []*notice) {
	if len(ns) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range ns {
		delete(n.pending, sink)
	}
	p.notices = slices.DeleteFunc(p.notices, func(n *notice) bool { return len(n.pending) == 0 })
	p.dirty = true
}

func (p *positions) exportNoticesLocked() []checkpoint.Notice {
	var out []checkpoint.Notice
	for _, n := range p.notices {
		cn := checkpoint.Notice{ID: n.ref.ID, Kind: n.kind.String(), Record: json.RawMessage(n.line)}
		for _, s := range p.sinks {
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
