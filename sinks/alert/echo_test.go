package alert

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
)

// A receiver that refuses an alert may quote it back, in its body or in
// its status line; the error, which the agent logs, shows the status code
// only.
func TestReceiverEchoNeverInErrors(t *testing.T) {
	const value = "mallory-s3cr3t-user"
	echoBody := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.WriteHeader(status)
			fmt.Fprintf(w, "rejected: %s", body)
		}
	}
	echoStatus := func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		conn, buf, _ := w.(http.Hijacker).Hijack()
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 422 rejected %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", strings.ReplaceAll(string(body), "\n", " "))
		buf.Flush()
	}
	for _, tc := range []struct {
		name      string
		h         http.HandlerFunc
		want      string
		permanent bool
	}{
		{"body, permanent", echoBody(http.StatusBadRequest), "400 Bad Request", true},
		{"body, retried", echoBody(http.StatusServiceUnavailable), "503 Service Unavailable", false},
		{"status line", echoStatus, "422 Unprocessable Entity", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			h, err := newHTTP(Destination{Type: "webhook", URL: srv.URL, Timeout: units.Duration(5 * time.Second)}, "v1")
			if err != nil {
				t.Fatal(err)
			}
			err = h.post(context.Background(), &Alert{ID: "a1", Rule: "secret-read", User: value, Resource: "secrets"})
			if err == nil || strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q and not the alert", err, tc.want)
			}
			if got := sinks.IsPermanent(err); got != tc.permanent {
				t.Errorf("permanent = %t, want %t", got, tc.permanent)
			}
		})
	}
}
