package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/config"
)

func TestServeHTTPProfilesOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv, err := serveHTTP(config.HTTPConfig{Address: "127.0.0.1:0", Pprof: on}, prometheus.NewRegistry(), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr
		get := func(path string) int {
			res, err := http.Get("http://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			return res.StatusCode
		}
		if code := get("/metrics"); code != http.StatusOK {
			t.Errorf("pprof %v: /metrics answered %d", on, code)
		}
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if code := get("/debug/pprof/heap"); code != want {
			t.Errorf("pprof %v: /debug/pprof/heap answered %d, want %d", on, code, want)
		}
		srv.Close()
	}
}
