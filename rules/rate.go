package rules

import (
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// maxRateKeys bounds the users a RateTracker follows per rule; beyond it,
// windows that ended are forgotten first, then arbitrary ones.
const maxRateKeys = 10000

// RateTracker counts, per rule and user, the events that match a rate
// rule, and says when a user crosses the threshold. A window opens with a
// user's first matching event and lasts the rule's Window; the rule fires
// once per window. Event time is the event's stageTimestamp, so replaying
// the same events gives the same result.
type RateTracker struct {
	windows map[*Rule]map[string]*window
}

type window struct {
	start time.Time
	n     int
	fired bool
}

// NewRateTracker returns an empty tracker.
func NewRateTracker() *RateTracker {
	return &RateTracker{windows: make(map[*Rule]map[string]*window)}
}

// Observe counts ev for r and reports whether this event makes the user
// cross r's threshold, with the count in the window.
func (t *RateTracker) Observe(r *Rule, ev *auditjson.Event, now time.Time) (fire bool, n int) {
	at := now
	if ts, err := time.Parse(time.RFC3339Nano, string(ev.StageTimestamp)); err == nil {
		at = ts
	}
	ws := t.windows[r]
	if ws == nil {
		ws = make(map[string]*window)
		t.windows[r] = ws
	}
	w := ws[string(ev.Username)]
	if w == nil || at.Sub(w.start) >= r.Rate.Window || at.Before(w.start) {
		if w == nil && len(ws) >= maxRateKeys {
			evict(ws, at, r.Rate.Window)
		}
		w = &window{start: at}
		ws[string(ev.Username)] = w
	}
	w.n++
	if w.n >= r.Rate.Count && !w.fired {
		w.fired = true
		return true, w.n
	}
	return false, w.n
}

func evict(ws map[string]*window, now time.Time, d time.Duration) {
	for k, w := range ws {
		if now.Sub(w.start) >= d {
			delete(ws, k)
		}
	}
	for k := range ws {
		if len(ws) < maxRateKeys {
			return
		}
		delete(ws, k)
	}
}
