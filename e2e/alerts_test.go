package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks/alert"
)

// webhook receives alerts, checks their signature and can play dead.
type webhook struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	down   atomic.Bool

	mu     sync.Mutex
	alerts map[string]int       // auditID/rule → deliveries
	first  map[string]time.Time // auditID/stage → first alert received
}

func newWebhook(t *testing.T, secret string) *webhook {
	w := &webhook{t: t, secret: secret, alerts: map[string]int{}, first: map[string]time.Time{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if w.down.Load() {
		http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if got := r.Header.Get(alert.SignatureHeader); got != alert.Sign([]byte(w.secret), r.Header.Get(alert.TimestampHeader), body) {
		w.t.Errorf("alert with a bad signature %q", got)
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	var a alert.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		w.t.Errorf("alert body %s: %v", body, err)
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.alerts[a.AuditID+"/"+a.Rule]++
	if k := Key(a.AuditID, a.Stage); w.first[k].IsZero() {
		w.first[k] = now
	}
}

// TestAlertsReceiverDown runs the agent with a webhook destination beside
// the three sinks: the receiver is down for a while, during which the
// sinks keep up, and once it is back every alert the rules raise on the
// events on disk arrives, signed, without duplicates.
func TestAlertsReceiverDown(t *testing.T) {
	const secret = "e2e-hmac-secret-of-32-bytes-or-more"
	wh := newWebhook(t, secret)
	s := NewScenario(t, WriterConfig{MaxSizeMB: 2, MaxBackups: 1000, Compress: true, Seed: 29})
	f, err := os.OpenFile(s.Config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "alerts:\n  rateLimit: {burst: 100000, interval: 1s}\n  destinations:\n"+
		"    - {name: soc, type: webhook, url: %q, secret: %q, allowInsecure: true}\n", wh.srv.URL+"/alerts", secret)
	f.Close()

	s.StartAgent()
	s.StartWriting(10)
	time.Sleep(5 * time.Second)
	down := time.Now()
	wh.down.Store(true)
	time.Sleep(10 * time.Second)
	up := time.Now()
	wh.down.Store(false)
	s.AssertKeptUp("webhook", down, up)
	time.Sleep(5 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(2*time.Minute, written)

	set, err := rules.NewSet(true, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // auditID/rule → auditID/stage of the first matching event
	s.EachLine(func(line []byte) {
		var ev auditjson.Event
		if auditjson.Parse(line, &ev) != nil {
			return
		}
		for _, r := range set.Match(line, &ev, false, nil) {
			k := string(ev.AuditID) + "/" + r.ID
			if _, ok := want[k]; !ok {
				want[k] = Key(string(ev.AuditID), string(ev.Stage))
			}
		}
	})
	if len(want) < 20 {
		t.Fatalf("only %d alerts expected: the scenario does not exercise the rules", len(want))
	}
	// The agent's first start, without a checkpoint, is a tamper signal.
	want["/audit-trail-tamper"] = ""
	deadline := time.Now().Add(time.Minute)
	for {
		wh.mu.Lock()
		n := 0
		for k := range want {
			if wh.alerts[k] > 0 {
				n++
			}
		}
		wh.mu.Unlock()
		if n == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.StopAgent()
	s.Report(s.Results("alerts receiver down", written))

	wh.mu.Lock()
	defer wh.mu.Unlock()
	missing, dups := 0, 0
	var lat []time.Duration
	for k, ek := range want {
		switch c := wh.alerts[k]; {
		case c == 0:
			missing++
			if missing <= 5 {
				t.Errorf("alert %s never arrived", k)
			}
		case c > 1:
			dups++
		}
		if wt, ok := written[ek]; ok && (wt.Before(down) || wt.After(up.Add(2*time.Second))) {
			if rt, ok := wh.first[ek]; ok {
				lat = append(lat, rt.Sub(wt))
			}
		}
	}
	slices.Sort(lat)
	if len(wh.alerts) != len(want) {
		t.Errorf("received alerts for %d auditID/rule pairs, the rules raise %d", len(wh.alerts), len(want))
	}
	t.Logf("alerts: %d expected, %d missing, %d delivered twice; append → alert received while the receiver was up: p50 %v p99 %v (%d alerts)",
		len(want), missing, dups, Percentile(lat, 0.5).Round(time.Millisecond), Percentile(lat, 0.99).Round(time.Millisecond), len(lat))
	if dups > 0 {
		t.Errorf("%d alerts delivered more than once without a crash", dups)
	}
}
