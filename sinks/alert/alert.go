// Package alert turns audit events that match detection rules into alerts
// and delivers them, within a second of the line being read, to a webhook
// (signed with HMAC-SHA256), a Slack-compatible incoming webhook or a
// Kafka topic.
//
// Each destination is a sink of its own: it reads the audit log at its own
// cursor, so a receiver that is down delays neither the other destinations
// nor the shipping sinks, and what it missed is evaluated again when it
// comes back (at least once). Alerts are deduplicated by auditID and rule,
// also across the stages of one request, and every alert has a stable id
// derived from them so receivers can drop the duplicates a crash may cause.
// A token bucket per rule bounds the flow; alerts it holds back are counted
// and reported in the rule's next alert.
package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
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
	// Summary is set on an alert that only reports suppressed ones.
	Summary bool `json:"summary,omitempty"`
	// Suppressed counts the alerts of this rule the rate limit held back
	// since the rule's previous alert.
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

// maxDedupe bounds the remembered auditID+rule pairs.
const maxDedupe = 1 << 16

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

	buckets    map[string]*bucket
	suppressed map[*rules.Rule]int
	queue      []*Alert
	matches    []*rules.Rule

	sent, held *prometheus.CounterVec
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
		dedupe: make(map[string]struct{}), buckets: make(map[string]*bucket), suppressed: make(map[*rules.Rule]int),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_alerts_sent_total",
			Help: "Alerts delivered, by rule.", ConstLabels: labels}, []string{"rule"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_alerts_suppressed_total",
			Help: "Alerts held back by the rate limit, by rule; reported in the rule's next alert.", ConstLabels: labels}, []string{"rule"}),
	}
	if err := sinks.Register(reg, s.sent, s.held); err != nil {
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
	for len(s.queue) > 0 {
		n, err := s.dest.send(ctx, s.queue)
		for _, a := range s.queue[:n] {
			s.sent.WithLabelValues(a.Rule).Inc()
		}
		s.queue = s.queue[n:]
		if err != nil {
			if sinks.IsPermanent(err) {
				s.log.Error("alert destination rejected alerts for good; they stay in the dead-letter batch",
					"sink", s.name, "alerts", len(s.queue), "err", err)
				s.queue = nil
			}
			return err
		}
	}
	s.queue = nil
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
// auditID (or, without one, the same source position) already raised one,
// nor if the rule's rate limit holds it back, which is counted. An
// admitted alert is queued, carrying r's source and line and the count of
// the rule's alerts held back since its last one.
func (s *Sink) admit(rule *rules.Rule, r *sinks.Record, now time.Time) *Alert {
	key := string(sinks.AppendKey(nil, r)) + "\x00" + rule.ID
	if !s.remember(key) {
		return nil
	}
	if !s.allow(rule.ID, now) {
		s.suppressed[rule]++
		s.held.WithLabelValues(rule.ID).Inc()
		return nil
	}
	a := s.newAlert(rule, key, now)
	a.Suppressed, s.suppressed[rule] = s.suppressed[rule], 0
	a.Source = &Source{File: r.File.ID, Path: r.File.Path, Offset: r.Offset}
	a.Event = json.RawMessage(append([]byte(nil), r.Line...))
	s.queue = append(s.queue, a)
	return a
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

// allow takes a token from the rule's bucket.
func (s *Sink) allow(rule string, now time.Time) bool {
	burst := float64(s.cfg.RateLimit.Burst)
	b := s.buckets[rule]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		s.buckets[rule] = b
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

// summaries queues, for every rule with suppressed alerts and no alert
// to carry the count, a summary as soon as the rate limit allows one.
func (s *Sink) summaries(now time.Time) {
	for rule, n := range s.suppressed {
		if n == 0 || !s.allow(rule.ID, now) {
			continue
		}
		a := s.newAlert(rule, fmt.Sprintf("summary\x00%s\x00%d", rule.ID, now.UnixNano()), now)
		a.Summary, a.Suppressed = true, n
		s.suppressed[rule] = 0
		s.queue = append(s.queue, a)
	}
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
