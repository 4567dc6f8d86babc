package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/kafka"
	"github.com/prometheus/client_golang/prometheus"
)

// Headers of a webhook request.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed by
	// the destination's secret, of the timestamp header's value, a dot and
	// the body.
	SignatureHeader = "X-Auditrail-Signature"
	// TimestampHeader is the Unix time of sending, in seconds; receivers
	// reject stale ones to stop replays.
	TimestampHeader = "X-Auditrail-Timestamp"
	// IDHeader repeats the alert id.
	IDHeader = "X-Auditrail-Alert-Id"
)

// Sign returns the signature header value for body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// New returns the sink for destination d. cfg must have its defaults
// applied and be valid.
func New(ctx context.Context, cfg *Config, set *rules.Set, d Destination, version string, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	name := SinkName(d.Name)
	var (
		dest destination
		err  error
	)
	switch d.Type {
	case "webhook", "slack":
		dest, err = newHTTP(d, version)
	case "kafka":
		kc := *d.Kafka
		kc.AgentVersion = version
		var k *kafka.Sink
		k, err = kafka.New(ctx, name, kc, log, reg)
		dest = &kafkaDest{k: k}
	default:
		err = fmt.Errorf("unknown type %q", d.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("alert destination %s: %w", d.Name, err)
	}
	return newSink(name, cfg, set, dest, log, reg)
}

// httpDest posts one alert per request to a webhook or, formatted as a
// message, to a Slack-compatible incoming webhook.
type httpDest struct {
	url     string
	host    string
	slack   bool
	secret  []byte
	headers map[string]string
	agent   string
	client  *http.Client
	now     func() time.Time
}

func newHTTP(d Destination, version string) (*httpDest, error) {
	u, err := url.Parse(d.URL)
	if err != nil {
		return nil, errors.New("url does not parse") // the URL may hold a token: not quoted
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if d.TLS != nil {
		if tr.TLSClientConfig, err = d.TLS.Build(); err != nil {
			return nil, err
		}
	}
	return &httpDest{
		url: d.URL, host: u.Host, slack: d.Type == "slack", secret: []byte(d.Secret), headers: d.Headers,
		agent: "auditrail/" + version, client: &http.Client{Transport: tr, Timeout: time.Duration(d.Timeout)}, now: time.Now,
	}, nil
}

func (h *httpDest) send(ctx context.Context, alerts []*Alert) (int, error) {
	for i, a := range alerts {
		if err := h.post(ctx, a); err != nil {
			return i, err
		}
	}
	return len(alerts), nil
}

func (h *httpDest) post(ctx context.Context, a *Alert) error {
	var body []byte
	if h.slack {
		body, _ = json.Marshal(map[string]string{"text": slackText(a)})
	} else {
		body, _ = json.Marshal(a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("build request to " + h.host)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", h.agent)
	for k, v := range h.headers {
		req.Header.Set(k, v)
	}
	if !h.slack {
		ts := strconv.FormatInt(h.now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(IDHeader, a.ID)
		if len(h.secret) > 0 {
			req.Header.Set(SignatureHeader, Sign(h.secret, ts, body))
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may hold a token.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post alert to %s: %w", h.host, err)
	}
	defer resp.Body.Close()
	// Neither the body nor the status line's text goes into the error: a
	// receiver may quote the alert back, and with it the event's values.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("post alert to %s: %d %s", h.host, c, http.StatusText(c))
	default:
		return sinks.Permanent(fmt.Errorf("post alert to %s: %d %s", h.host, c, http.StatusText(c)))
	}
}

func (h *httpDest) close(context.Context) error {
	h.client.CloseIdleConnections()
	return nil
}

// slackMarkup escapes the characters Slack reads as markup: with them,
// an object or user name could mention a channel (<!channel>) or show a
// link.
var slackMarkup = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// slackText is the one message an alert becomes in a chat channel, with
// markup escaped.
func slackText(a *Alert) string {
	return slackMarkup.Replace(slackPlain(a))
}

func slackPlain(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s: %s", strings.ToUpper(a.Severity), a.Rule, a.Description)
	if a.Summary {
		fmt.Fprintf(&b, "\n%d more alerts of this rule for %s were held back by the rate limit", a.Suppressed, a.User)
		return b.String()
	}
	target := a.Resource
	if a.Subresource != "" {
		target += "/" + a.Subresource
	}
	if a.Name != "" {
		target += " " + a.Name
	}
	if a.Namespace != "" {
		target += " in " + a.Namespace
	}
	if target == "" {
		target = a.RequestURI
	}
	fmt.Fprintf(&b, "\n%s %s %s (code %d) at %s", a.User, a.Verb, target, a.Code, a.Time)
	if a.Cluster != "" || a.Node != "" {
		fmt.Fprintf(&b, "\ncluster %s, node %s", a.Cluster, a.Node)
	}
	if a.Count > 0 {
		fmt.Fprintf(&b, "\n%d matching events in the window", a.Count)
	}
	if a.Suppressed > 0 {
		fmt.Fprintf(&b, "\n%d earlier alerts of this rule for %s were held back by the rate limit", a.Suppressed, a.User)
	}
	fmt.Fprintf(&b, "\nauditID %s, alert %s", a.AuditID, a.ID)
	return b.String()
}

// kafkaDest produces alerts as JSON messages keyed by alert id, through
// the Kafka sink (acks=all, retries of single messages).
type kafkaDest struct {
	k     *kafka.Sink
	batch sinks.Batch
}

var alertFile = &sinks.FileRef{ID: "alerts"}

func (d *kafkaDest) send(ctx context.Context, alerts []*Alert) (int, error) {
	b := &d.batch
	b.Records, b.Bytes = b.Records[:0], 0
	for _, a := range alerts {
		line, _ := json.Marshal(a)
		r := sinks.Record{Line: line, Kind: sinks.KindEvent, File: alertFile, Event: &auditjson.Event{
			AuditID: []byte(a.ID), Stage: []byte(a.Stage), Verb: []byte(a.Verb),
			Resource: []byte(a.Resource), Namespace: []byte(a.Namespace), Username: []byte(a.User),
		}}
		r.Rules = []string{a.Rule}
		b.Records = append(b.Records, r)
		b.Bytes += len(line)
	}
	if err := d.k.Write(ctx, b); err != nil {
		return 0, err
	}
	return len(alerts), nil
}

func (d *kafkaDest) close(ctx context.Context) error { return d.k.Close(ctx) }
