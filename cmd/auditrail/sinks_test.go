package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/sinks/registry"
)

// Every sink is built by its type's entry and delivered with its own
// settings; an alert destination reads the log one batch at a time, with
// the alerts' flush interval. A sink that keys events by their line gets
// the lines' sums from the agent.
func TestBuildSinks(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Parse([]byte(`auditLogPath: /a/audit.log
stateDir: `+dir+`
sinks:
  - {type: file, file: {directory: out}, batch: {maxEvents: 7}, redactSecrets: false}
  - {type: discard, maxInFlight: 2, drop: [{name: leases, resources: [leases]}]}
  - {type: elasticsearch, elasticsearch: {addresses: ["https://127.0.0.1:1"]}}
alerts:
  flushInterval: 300ms
  destinations: [{type: webhook, url: "https://127.0.0.1:1/hook"}]
`), registry.Schema())
	if err != nil {
		t.Fatal(err)
	}
	opts, err := buildSinks(context.Background(), c, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer closeSinks(opts)
	if len(opts) != 4 {
		t.Fatalf("%d sinks, want 4", len(opts))
	}
	names := []string{"file", "discard", "elasticsearch", "alert-webhook"}
	for i, o := range opts {
		if o.Sink.Name() != names[i] {
			t.Errorf("sink %d is %s, want %s", i, o.Sink.Name(), names[i])
		}
		if (o.TagRules != nil) != (names[i] == "elasticsearch") {
			t.Errorf("%s: records tagged %v; only elasticsearch and kafka take tags", names[i], o.TagRules != nil)
		}
		if o.LineSums != (names[i] == "elasticsearch") {
			t.Errorf("%s: line sums %v; only elasticsearch and kafka key events by their line", names[i], o.LineSums)
		}
	}
	if f := opts[0]; f.Batch.MaxEvents != 7 || f.Batch.MaxBytes != 2<<20 || !f.KeepSecrets {
		t.Errorf("file: %+v", f)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "out")); len(matches) != 1 {
		t.Errorf("the file sink's relative directory is not under stateDir")
	}
	if d := opts[1]; d.MaxInFlight != 2 || len(d.Drop) != 1 || d.Drop[0].Resources[0] != "leases" || d.KeepSecrets {
		t.Errorf("discard: %+v", d)
	}
	a := opts[3]
	if a.MaxInFlight != 1 || a.Batch.FlushInterval != 300*time.Millisecond || a.Batch.MaxEvents < 1 || a.Batch.MaxBytes < 1 ||
		a.Retry.InitialInterval <= 0 || a.Retry.MaxInterval < a.Retry.InitialInterval || a.KeepSecrets {
		t.Errorf("alert destination: %+v", a)
	}
}
