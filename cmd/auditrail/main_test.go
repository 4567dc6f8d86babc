package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/config"
)

func get(t *testing.T, addr, path string) int {
	t.Helper()
	res, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// The metrics listener never serves profiles, even with pprof on: they are
// served by a listener of their own, on loopback, and only when asked.
func TestServeHTTPProfilesOnlyOnTheirListener(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := config.HTTPConfig{Address: "127.0.0.1:0", Pprof: on, PprofAddress: "127.0.0.1:0"}
		srvs, err := serveHTTP(c, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if code := get(t, srvs[0].Addr, "/metrics"); code != http.StatusOK {
			t.Errorf("pprof %v: /metrics answered %d", on, code)
		}
		if code := get(t, srvs[0].Addr, "/debug/pprof/heap"); code != http.StatusNotFound {
			t.Errorf("pprof %v: the metrics listener answered /debug/pprof/heap with %d, want 404", on, code)
		}
		if want := 1 + b2i(on); len(srvs) != want {
			t.Fatalf("pprof %v: %d listeners, want %d", on, len(srvs), want)
		}
		if on {
			if code := get(t, srvs[1].Addr, "/debug/pprof/heap"); code != http.StatusOK {
				t.Errorf("the pprof listener answered /debug/pprof/heap with %d", code)
			}
			if code := get(t, srvs[1].Addr, "/metrics"); code != http.StatusNotFound {
				t.Errorf("the pprof listener answered /metrics with %d, want 404", code)
			}
		}
		for _, s := range srvs {
			s.Close()
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
