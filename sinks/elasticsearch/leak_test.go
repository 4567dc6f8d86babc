package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// secretValue is what an event carries and Elasticsearch quotes back: it
// must reach neither the agent's logs nor its errors.
const secretValue = "hunter2-do-not-log"

// Elasticsearch quotes a field's value in a mapping error, and a cluster or
// proxy may quote the request in a whole-request error. The sink logs and
// returns the status, the error type and the document id instead.
func TestNothingFromAnEventInLogsOrErrors(t *testing.T) {
	quoting := func(_, id string, doc json.RawMessage) (int, string, string) {
		if !bytes.Contains(doc, []byte(secretValue)) {
			return 0, "", ""
		}
		return 400, "document_parsing_exception", fmt.Sprintf("[1:40] failed to parse field [annotations.pad] of type [long] in document with id '%s'. Preview of field's value: '%s'", id, secretValue)
	}
	for _, tc := range []struct {
		name  string
		fault func(srv faults, index string)
		// want are what the log and the error must say instead.
		want    []string
		wantErr bool
	}{
		{"item rejected, quoting the value", func(srv faults, index string) {
			srv.FailItemsWith(func(ix, id string, doc json.RawMessage) (int, string, string) {
				if ix != index {
					return 0, "", ""
				}
				return quoting(ix, id, doc)
			})
		}, []string{`"status":400`, `"type":"document_parsing_exception"`, `"id":"` + leakID()}, false},
		{"dead-letter index rejects it too", func(srv faults, _ string) { srv.FailItemsWith(quoting) },
			[]string{"400 document_parsing_exception", leakID()}, true},
		{"whole request rejected, quoting the body", func(srv faults, _ string) {
			srv.FailRequestsWith(func(body []byte) (int, string) {
				i := bytes.Index(body, []byte(secretValue))
				return 400, fmt.Sprintf(`{"error":{"root_cause":[{"type":"x_content_parse_exception","reason":"[1:%d] unexpected token near '%s'"}],"type":"x_content_parse_exception","reason":"[1:%d] unexpected token near '%s'"},"status":400}`, i, secretValue, i, secretValue)
			})
		}, []string{"HTTP 400", "x_content_parse_exception"}, true},
		{"proxy echoes the request", func(srv faults, _ string) {
			srv.FailRequestsWith(func(body []byte) (int, string) {
				i := bytes.Index(body, []byte(secretValue))
				return 403, "<html><body>Request blocked by WAF rule 942100 near: " + string(body[i-16:i+32]) + "</body></html>"
			})
		}, []string{"HTTP 403"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTarget(t)
			srv := tg.fakeOnly()
			index := tg.index("stream")
			tc.fault(srv, index)
			var logs bytes.Buffer
			s, err := New(context.Background(), "es", tg.config(index), slog.New(slog.NewJSONHandler(&logs, nil)), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			err = s.Write(context.Background(), leakBatch())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want an error: %t", err, tc.wantErr)
			}
			out := logs.String()
			if err != nil {
				out += "\n" + err.Error()
			}
			if strings.Contains(out, secretValue) {
				t.Errorf("the event's value reached the logs or the error:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("logs and error do not say %s:\n%s", w, out)
				}
			}
		})
	}
}

type faults interface {
	FailItemsWith(func(index, id string, doc json.RawMessage) (int, string, string))
	FailRequestsWith(func(body []byte) (int, string))
}

// leakBatch holds events, one of which carries secretValue.
func leakBatch() *sinks.Batch {
	ls := sinktest.Events(0, 5, 1)
	ls[2] = strings.Replace(ls[2], `"pad":"`, `"pad":"`+secretValue, 1)
	return sinktest.Batch(sinktest.File(1), 0, ls...)
}

// leakID is the document id of the event that carries secretValue.
func leakID() string {
	b := leakBatch()
	return string(sinks.AppendID(nil, &b.Records[2]))
}

func TestErrorType(t *testing.T) {
	for in, want := range map[string]string{
		"mapper_parsing_exception":          "mapper_parsing_exception",
		"es.security.authn":                 "es.security.authn",
		"":                                  "other",
		"Preview of field's value: 'x'":     "other",
		"ABC":                               "other",
		strings.Repeat("a", 65):             "other",
		"version_conflict_engine_exception": "version_conflict_engine_exception",
	} {
		if got := errorType(in); got != want {
			t.Errorf("errorType(%q) = %q, want %q", in, got, want)
		}
	}
}

// An address may hold a password: an error about it names the key, not
// the address, and an address that passes validation does not make New
// fail with an error that quotes it.
func TestAddressErrorsShowNoCredentials(t *testing.T) {
	for _, addr := range []string{
		"htps://elastic:pw-s3cr3t@es:9200",
		"https://elastic:pw-s3cr3t@es:92o0",
		"elastic:pw-s3cr3t@es:9200",
		"https://elastic:pw-s3cr3t@",
		"https://elastic:pw-s3cr3t@es:9200/%zz",
	} {
		t.Run(addr, func(t *testing.T) {
			c := Config{Addresses: []string{"https://es:9200", addr}}
			c.ApplyDefaults()
			err := c.Validate("elasticsearch")
			if err == nil {
				_, err = New(context.Background(), "es", c, slog.New(slog.DiscardHandler), nil)
			}
			if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "addresses[1]") {
				t.Fatalf("err = %v, want one that names addresses[1] and shows no password", err)
			}
		})
	}
}
