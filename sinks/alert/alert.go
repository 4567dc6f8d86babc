// Package alert turns audit events that match detection rules into alerts
// and delivers them, within a second of the line being read, to a webhook
// (signed with HMAC-SHA256), a Slack-compatible incoming webhook or a
// Kafka topic.
//
// Each destination is a sink of its own: it reads the audit log at its own
// cursor, so a receiver that is down delays neither the other destinations
// nor the shipping sinks, and what it missed is evaluated again when it
// comes back (at least once). Alerts are deduplicated by request and rule,
// also across the stages of one request, and every alert has a stable id
// derived from them so receivers can drop the duplicates a crash may cause.
// A request is not its auditID alone, which a client chooses with the
// Audit-ID header: see requestKey. A token bucket per rule and user bounds
// the flow, so one user's benign matches cannot hold back another's;
// alerts it holds back are counted and reported, with the user, in the
// next alert of that rule and user.
//
// An alert embeds its event, cut down past MaxEventBytes. An alert the
// receiver refuses for good is sent again without its event; if refused
// again, the alerts after it are still delivered, and the write fails for
// good so that the batch goes to the dead-letter directory.
package alert

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Alert is what a destination receives, as JSON.
type Alert struct {
	// ID is stable for one rule and one request: receivers can use it to
	// drop duplicates.
	ID          string `json:"id"`
	Rule        string `json:"rule"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
	// NeedsBody says the rule looks into request or response bodies.
	NeedsBody bool `json:"needsBody,omitempty"`
	// Summary is set on an alert that only reports suppressed ones; User
	// says whose.
	Summary bool `json:"summary,omitempty"`
	// Suppressed counts the alerts of this rule and user the rate limit
	// held back since the previous alert of the rule and user.
	Suppressed int `json:"suppressed,omitempty"`
	// Count is, for a rate rule, the matching events in the window.
	Count      int    `json:"count,omitempty"`
	Cluster    string `json:"cluster,omitempty"`
	Node       string `json:"node,omitempty"`
	DetectedAt string `json:"detectedAt"`

	Time        string `json:"time,omitempty"`
	AuditID     string `json:"auditID,omitempty"`
	Stage       string `json:"stage,omitempty"`
	Verb        string `json:"verb,omitempty"`
	User        string `json:"user,omitempty"`
	Resource    string `json:"resource,omitempty"`
	Subresource string `json:"subresource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	RequestURI  string `json:"requestURI,omitempty"`
	Code        int    `json:"code,omitempty"`
	// Source is where the event is in the audit log on the node.
	Source *Source `json:"source,omitempty"`
	// Event is the audit event, with Secret values already redacted.
	Event json.RawMessage `json:"event,omitempty"`
	// EventTruncated says how Event was cut down: TruncatedBodies or
	// TruncatedOmitted; empty when it is whole.
	EventTruncated string `json:"eventTruncated,omitempty"`
}

// Source locates an event on the node.
type Source struct {
	File   string `json:"file"`
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
}

// destination delivers alerts to one receiver.
type destination interface {
	// send delivers alerts in order and returns how many were delivered.
	send(ctx context.Context, alerts []*Alert) (int, error)
	close(ctx context.Context) error
}

// maxDedupe bounds the remembered request and rule pairs.
const maxDedupe = 1 << 16

// minPrune is how many rate limit buckets there may be before full ones
// are forgotten.
const minPrune = 1024

// Sink evaluates rules over the audit log and delivers the alerts to one
// destination.
type Sink struct {
	name  string
	cfg   *Config
	set   *rules.Set
	dest  destination
	log   *slog.Logger
	now   func() time.Time
	rates *rules.RateTracker

	// seenSeq and seenOff are the last record evaluated: a batch written
	// again after a failure is not evaluated twice.
	seenSeq uint64
	seenOff int64
	seen    bool

	dedupe     map[string]struct{}
	dedupeFIFO []string
	dedupeNext int

	buckets    map[limitKey]*bucket
	pruneAt    int
	suppressed map[limitKey]int
	queue      []*Alert
	matches    []*rules.Rule
	// refusals counts the alerts of the batch being delivered that the
	// destination refused for good, firstRefusal says why the first was.
	refusals     int
	firstRefusal error

	sent, held, refused *prometheus.CounterVec
}

// limitKey names a rate limit bucket: one per rule and user.
type limitKey struct {
	rule *rules.Rule
	user string
}

var _ sinks.Sink = (*Sink)(nil)

type bucket struct {
	tokens float64
	last   time.Time
}

func newSink(name string, cfg *Config, set *rules.Set, dest destination, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	labels := prometheus.Labels{"sink": name}
	s := &Sink{
		name: name, cfg: cfg, set: set, dest: dest, log: log, now: time.Now, rates: rules.NewRateTracker(),
		dedupe: make(map[string]struct{}), buckets: make(map[limitKey]*bucket), pruneAt: minPrune, suppressed: make(map[limitKey]int),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_alerts_sent_total",
			Help: "Alerts delivered, by rule.", ConstLabels: labels}, []string{"rule"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_alerts_suppressed_total",
			Help: "Alerts held back by the rate limit, by rule; reported in the next alert of the rule and user.", ConstLabels: labels}, []string{"rule"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_alerts_refused_total",
			Help:        "Alerts the destination refused for good, also without their event, by rule; their batch goes to the dead-letter directory.",
			ConstLabels: labels}, []string{"rule"}),
	}
	if err := sinks.Register(reg, s.sent, s.held, s.refused); err != nil {
		return nil, fmt.Errorf("alert destination %s: %w", name, err)
	}
	return s, nil
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// Close implements sinks.Sink.
func (s *Sink) Close(ctx context.Context) error { return s.dest.close(ctx) }

// Write evaluates the batch's events and returns nil once every alert
// they raised is delivered.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	now := s.now()
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == sinks.KindTamper {
			s.tamper(r, now) // not tied to a source position: deduplicated by its id
			continue
		}
		if !s.fresh(r) {
			continue
		}
		switch r.Kind {
		case sinks.KindEvent:
			s.evaluate(r, now)
		case sinks.KindGap:
			s.gap(r, now)
		}
	}
	s.summaries(now)
	s.prune(now)
	return s.deliver(ctx)
}

// deliver sends the queue in order. An alert refused for good is sent
// again without its event, and if refused again is counted and left out
// while the rest of the queue is delivered; deliver then returns a
// permanent error, which sends the batch to the dead-letter directory. A
// retryable error leaves what was not delivered queued for the next
// Write of the same batch.
func (s *Sink) deliver(ctx context.Context) error {
	for len(s.queue) > 0 {
		n, err := s.dest.send(ctx, s.queue)
		for _, a := range s.queue[:n] {
			s.sent.WithLabelValues(a.Rule).Inc()
		}
		s.queue = s.queue[n:]
		switch {
		case err == nil:
		case !sinks.IsPermanent(err) || len(s.queue) == 0:
			return err
		case s.queue[0].Event != nil:
			s.queue[0].Event, s.queue[0].EventTruncated = nil, TruncatedOmitted
		default:
			a := s.queue[0]
			s.log.Error("alert destination refused an alert for good, also without its event; its batch goes to the dead-letter directory",
				"sink", s.name, "rule", a.Rule, "alert", a.ID, "err", err)
			s.refused.WithLabelValues(a.Rule).Inc()
			if s.refusals++; s.firstRefusal == nil {
				s.firstRefusal = err
			}
			s.queue = s.queue[1:]
		}
	}
	s.queue = nil
	if n, err := s.refusals, s.firstRefusal; n > 0 {
		s.refusals, s.firstRefusal = 0, nil
		return fmt.Errorf("%d alerts refused, the first: %w", n, err)
	}
	return nil
}

// fresh reports whether r comes after every record evaluated before, and
// marks it evaluated.
func (s *Sink) fresh(r *sinks.Record) bool {
	if s.seen && (r.File.Seq < s.seenSeq || (r.File.Seq == s.seenSeq && r.Offset <= s.seenOff)) {
		return false
	}
	s.seen, s.seenSeq, s.seenOff = true, r.File.Seq, r.Offset
	return true
}

func (s *Sink) evaluate(r *sinks.Record, now time.Time) {
	ev := r.Event
	s.matches = s.set.Match(r.Line, ev, true, s.matches[:0])
	for _, rule := range s.matches {
		count := 0
		if rule.Rate != nil {
			fire, n := s.rates.Observe(rule, ev, now)
			if !fire {
				continue
			}
			count = n
		}
		a := s.admit(rule, r, now)
		if a == nil {
			continue
		}
		a.Count = count
		a.Time = text(sinks.EventTime(r))
		a.AuditID, a.Stage, a.Verb = text(ev.AuditID), text(ev.Stage), text(ev.Verb)
		a.User, a.Resource, a.Subresource = text(ev.Username), text(ev.Resource), text(ev.Subresource)
		a.Namespace, a.Name, a.RequestURI, a.Code = text(ev.Namespace), text(ev.Name), text(ev.RequestURI), ev.Code
	}
}

// GapRule is the rule an alert about a gap record names: audit data that
// vanished from the node before it could be read (a file pruned,
// truncated or overwritten, or a corrupt backup), which is how deleting or
// rewriting the audit log on the node shows.
var GapRule = &rules.Rule{ID: "audit-log-gap", Severity: "critical",
	Description: "Audit data lost on the node before it was read: the log was pruned, truncated or rewritten"}

func (s *Sink) gap(r *sinks.Record, now time.Time) {
	a := s.admit(GapRule, r, now)
	if a == nil {
		return
	}
	var g sinks.GapRecord
	json.Unmarshal(r.Line, &g)
	a.Description = fmt.Sprintf("%s: %s, bytes %d-%d of %s", GapRule.Description, g.Reason, g.Bytes.From, g.Bytes.To, g.File.Path)
}

// TamperRule is the rule an alert about a tamper record names: a change on
// the node outside normal operation, such as the live audit log deleted,
// a rotated file deleted out of order, or the agent's state lost.
var TamperRule = &rules.Rule{ID: "audit-trail-tamper", Severity: "high",
	Description: "The audit trail on the node was changed outside normal operation"}

func (s *Sink) tamper(r *sinks.Record, now time.Time) {
	a := s.admit(TamperRule, r, now)
	if a == nil {
		return
	}
	var t sinks.TamperRecord
	json.Unmarshal(r.Line, &t)
	a.Description = fmt.Sprintf("%s: %s: %s", TamperRule.Description, t.Reason, t.Detail)
}

// admit decides whether r raises an alert for rule: not if the same
// request (see requestKey) already raised one, nor if the rate limit of
// the rule and the event's user holds it back, which is counted. An
// admitted alert is queued, carrying r's source and line and the count of
// the alerts of the rule and user held back since their last one.
func (s *Sink) admit(rule *rules.Rule, r *sinks.Record, now time.Time) *Alert {
	key := requestKey(rule, r) + "\x00" + rule.ID
	if !s.remember(key) {
		return nil
	}
	lk := limitKey{rule: rule}
	if r.Kind == sinks.KindEvent {
		lk.user = text(r.Event.Username)
	}
	if !s.allow(lk, now) {
		s.suppressed[lk]++
		s.held.WithLabelValues(rule.ID).Inc()
		return nil
	}
	a := s.newAlert(rule, key, now)
	a.Suppressed = s.suppressed[lk]
	delete(s.suppressed, lk)
	a.Source = &Source{File: r.File.ID, Path: r.File.Path, Offset: r.Offset}
	a.Event, a.EventTruncated = embed(r.Line, rule)
	s.queue = append(s.queue, a)
	return a
}

// requestKey returns what tells r's request from others, for rule. For
// an event that is not the auditID alone, which a client chooses with
// the Audit-ID header, but the fields every stage of one request shares
// and kube-apiserver sets: auditID, requestReceivedTimestamp (to the
// microsecond), verb, requestURI, user and impersonated user. Requests
// that share them all did the same thing as the same identity at the same
// microsecond. When the rule looks into bodies, which can differ between
// such requests, or the event lacks a receive time, the key is the
// line's (sinks.AppendID); so it is for records that are not events.
func requestKey(rule *rules.Rule, r *sinks.Record) string {
	ev := r.Event
	if r.Kind != sinks.KindEvent || rule.NeedsBody || len(ev.RequestReceivedTimestamp) == 0 {
		return string(sinks.AppendID(nil, r))
	}
	h := sha256.New()
	for _, f := range [][]byte{ev.AuditID, ev.RequestReceivedTimestamp, ev.Verb, ev.RequestURI, ev.Username, ev.ImpersonatedUser} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return "request:" + hex.EncodeToString(h.Sum(nil))
}

// remember records key and reports whether it is new.
func (s *Sink) remember(key string) bool {
	if _, ok := s.dedupe[key]; ok {
		return false
	}
	if len(s.dedupeFIFO) < maxDedupe {
		s.dedupeFIFO = append(s.dedupeFIFO, key)
	} else {
		delete(s.dedupe, s.dedupeFIFO[s.dedupeNext])
		s.dedupeFIFO[s.dedupeNext] = key
		s.dedupeNext = (s.dedupeNext + 1) % maxDedupe
	}
	s.dedupe[key] = struct{}{}
	return true
}

// allow takes a token from k's bucket.
func (s *Sink) allow(k limitKey, now time.Time) bool {
	burst := float64(s.cfg.RateLimit.Burst)
	b := s.buckets[k]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		s.buckets[k] = b
	}
	per := time.Duration(s.cfg.RateLimit.Interval)
	b.tokens = min(burst, b.tokens+burst*float64(now.Sub(b.last))/float64(per))
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// summaries queues, for every rule and user with suppressed alerts and
// no alert to carry the count, a summary as soon as the rate limit allows
// one.
func (s *Sink) summaries(now time.Time) {
	keys := make([]limitKey, 0, len(s.suppressed))
	for k := range s.suppressed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b limitKey) int {
		return cmp.Or(cmp.Compare(a.rule.ID, b.rule.ID), cmp.Compare(a.user, b.user))
	})
	for _, k := range keys {
		if !s.allow(k, now) {
			continue
		}
		a := s.newAlert(k.rule, fmt.Sprintf("summary\x00%s\x00%s\x00%d", k.rule.ID, k.user, now.UnixNano()), now)
		a.Summary, a.Suppressed, a.User = true, s.suppressed[k], k.user
		delete(s.suppressed, k)
		s.queue = append(s.queue, a)
	}
}

// prune forgets the buckets that have been full again for a while, when
// there are many: one per user who raised an alert.
func (s *Sink) prune(now time.Time) {
	if len(s.buckets) < s.pruneAt {
		return
	}
	per := time.Duration(s.cfg.RateLimit.Interval)
	for k, b := range s.buckets {
		if _, held := s.suppressed[k]; !held && now.Sub(b.last) >= per {
			delete(s.buckets, k)
		}
	}
	s.pruneAt = max(minPrune, 2*len(s.buckets))
}

func (s *Sink) newAlert(rule *rules.Rule, key string, now time.Time) *Alert {
	sum := sha256.Sum256([]byte(key))
	return &Alert{
		ID: hex.EncodeToString(sum[:16]), Rule: rule.ID, Severity: rule.Severity, Description: rule.Description,
		NeedsBody: rule.NeedsBody, Cluster: s.cfg.Cluster, Node: s.cfg.Node,
		DetectedAt: now.UTC().Format(time.RFC3339Nano),
	}
}

// text decodes the contents of a JSON string as auditjson returns them.
func text(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s); err != nil {
		return string(raw)
	}
	return s
}
