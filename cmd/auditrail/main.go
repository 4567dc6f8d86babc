// Command auditrail follows the kube-apiserver audit log and ships every
// event to the configured sinks. See the README for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	runtimepprof "runtime/pprof"
	"syscall"
	"time"

	"github.com/auditrail/auditrail/agent"
	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/rules"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/alert"
	"github.com/auditrail/auditrail/sinks/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `auditrail ships Kubernetes audit logs off the node.

Usage:
  auditrail run      [--config FILE] [--audit-log-path PATH] [--state-dir DIR] [--once]
  auditrail validate [--config FILE]
  auditrail verify   [--config FILE [--sink NAME]] [--bucket B] [--prefix P] [--node N]
                     [--from TIME] [--to TIME] [--min-retention DURATION] [--json]
  auditrail policy lint [--json] FILE
  auditrail version

Without --config, the embedded default is used: follow
/var/log/kubernetes/audit/audit.log into a local file sink under the state
directory.
`

func main() {
	// Most of the agent's heap is batches of lines waiting for their sink:
	// collecting when the heap has grown by half instead of doubled takes
	// a third off the peak for no measurable CPU (docs/benchmarks.md).
	// GOGC in the environment still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runAgent(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
	return 2
}

type flags struct {
	config, auditLogPath, stateDir string
	once                           bool
	cpuProfile                     string
}

func parseFlags(name string, args []string, stderr io.Writer, withRun bool) (*flags, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &flags{}
	fs.StringVar(&f.config, "config", "", "configuration file (default: the embedded default)")
	if withRun {
		fs.StringVar(&f.auditLogPath, "audit-log-path", "", "kube-apiserver's --audit-log-path; overrides auditLogPath")
		fs.StringVar(&f.stateDir, "state-dir", "", "directory for checkpoints; overrides stateDir")
		fs.BoolVar(&f.once, "once", false, "exit once every sink acknowledged everything on disk")
		fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile to this file (for benchmarks)")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	// Paths given on the command line are relative to the working
	// directory.
	for _, p := range []*string{&f.auditLogPath, &f.stateDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return nil, err
			}
			*p = abs
		}
	}
	return f, nil
}

// loadConfig loads the config and applies flag overrides. Overrides are
// applied before defaults and validation, so relative sink directories
// follow an overridden state directory.
func loadConfig(f *flags) (*config.Config, error) {
	raw := config.Default
	if f.config != "" {
		b, err := os.ReadFile(f.config)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		raw = b
	}
	return config.ParseWith(raw, registry.Schema(), func(c *config.Config) error {
		if f.auditLogPath != "" {
			c.AuditLogPath = f.auditLogPath
		}
		if f.stateDir != "" {
			c.StateDir = f.stateDir
		}
		return nil
	})
}

func validate(args []string, stdout, stderr io.Writer) int {
	f, err := parseFlags("validate", args, stderr, false)
	if err != nil {
		return 2
	}
	if _, err := loadConfig(f); err != nil {
		fmt.Fprintf(stderr, "invalid configuration:\n%v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "configuration is valid")
	return 0
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func runAgent(args []string, stderr io.Writer) int {
	f, err := parseFlags("run", args, stderr, true)
	if err != nil {
		return 2
	}
	cfg, err := loadConfig(f)
	if err != nil {
		fmt.Fprintf(stderr, "invalid configuration:\n%v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr).With("version", version)
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			log.Error("create CPU profile", "err", err)
			return 1
		}
		runtimepprof.StartCPUProfile(pf)
		defer func() { runtimepprof.StopCPUProfile(); pf.Close() }()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	sinkOpts, err := buildSinks(context.Background(), cfg, log, reg)
	if err != nil {
		// Errors may quote configured values, some of them secrets from
		// the environment: cfg.Unexpand shows those as ${VAR}.
		log.Error("create sinks", "err", cfg.Unexpand(err))
		return 1
	}
	a, err := agent.New(agentOptions(cfg, f.once, log, reg), sinkOpts)
	if err != nil {
		log.Error("create agent", "err", cfg.Unexpand(err))
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Every setting that exposes events or credentials, allowed or not,
	// once at start: keys and reasons, never values.
	for _, s := range cfg.Insecure() {
		log.Warn("insecure setting", "setting", s)
	}
	srvs, err := serveHTTP(cfg.HTTP, reg, a, log)
	if err != nil {
		log.Error("start HTTP listener", "err", err)
		return 1
	}
	for _, srv := range srvs {
		defer srv.Close()
	}
	if err := a.Run(ctx); err != nil {
		log.Error("agent stopped with an error", "err", cfg.Unexpand(err))
		return 1
	}
	return 0
}

func agentOptions(c *config.Config, once bool, log *slog.Logger, reg prometheus.Registerer) agent.Options {
	return agent.Options{
		AuditLogPath: c.AuditLogPath, StateDir: c.StateDir, MaxLineBytes: int(c.MaxLineBytes),
		PollInterval: time.Duration(c.PollInterval), CheckpointInterval: time.Duration(c.CheckpointInterval),
		HeartbeatInterval: time.Duration(c.HeartbeatInterval),
		DrainTimeout:      time.Duration(c.DrainTimeout), MaxOpenFiles: c.MaxOpenFiles, StartAt: c.StartAt,
		Once: once, Logger: log, Registerer: reg,
	}
}

func buildSinks(ctx context.Context, c *config.Config, log *slog.Logger, reg prometheus.Registerer) ([]agent.SinkOptions, error) {
	var out []agent.SinkOptions
	alerts := registry.Alerts(c)
	set, err := alerts.RuleSet()
	if err != nil {
		return nil, err
	}
	env := registry.Env{StateDir: c.StateDir, CheckpointInterval: time.Duration(c.CheckpointInterval),
		Version: version, Log: log, Registerer: reg}
	for _, sc := range c.Sinks {
		t, ok := registry.Lookup(sc.Type)
		if !ok {
			closeSinks(out)
			return nil, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
		}
		s, err := t.New(ctx, sc.Name, sc.Section, env)
		if err != nil {
			closeSinks(out)
			return nil, err
		}
		var tag *rules.Set
		if *alerts.TagRecords && t.TagRecords {
			tag = set
		}
		so := sinkOptions(s, sc, tag)
		so.LineSums = t.LineSums
		out = append(out, so)
	}
	for _, d := range alerts.Destinations {
		s, err := alert.New(ctx, alerts, set, d, version, log, reg)
		if err != nil {
			closeSinks(out)
			return nil, err
		}
		out = append(out, sinkOptions(s, registry.AlertDelivery(alerts), nil))
	}
	return out, nil
}

// sinkOptions gives s the settings of sc, and tag to tag its records.
func sinkOptions(s sinks.Sink, sc config.Sink, tag *rules.Set) agent.SinkOptions {
	return agent.SinkOptions{
		Sink: s, TagRules: tag,
		Batch: agent.BatchOptions{MaxEvents: sc.Batch.MaxEvents, MaxBytes: int(sc.Batch.MaxBytes),
			FlushInterval: time.Duration(sc.Batch.FlushInterval)},
		Retry: agent.RetryOptions{InitialInterval: time.Duration(sc.Retry.InitialInterval),
			MaxInterval: time.Duration(sc.Retry.MaxInterval)},
		MaxInFlight: sc.MaxInFlight,
		KeepSecrets: !*sc.RedactSecrets,
		Drop:        dropRules(sc.Drop),
	}
}

func dropRules(rs []config.DropRule) []agent.DropRule {
	out := make([]agent.DropRule, len(rs))
	for i, r := range rs {
		out[i] = agent.DropRule{Name: r.Name, Verbs: r.Verbs, Resources: r.Resources, Namespaces: r.Namespaces, Users: r.Users}
	}
	return out
}

func closeSinks(opts []agent.SinkOptions) {
	for _, o := range opts {
		o.Sink.Close(context.Background())
	}
}

// serveHTTP serves /metrics, /healthz and /readyz on c.Address, if set,
// and the profiles on c.PprofAddress, which validation keeps on loopback,
// if c.Pprof: the metrics listener never serves profiles.
func serveHTTP(c config.HTTPConfig, reg *prometheus.Registry, a *agent.Agent, log *slog.Logger) ([]*http.Server, error) {
	var srvs []*http.Server
	if c.Address != "" {
		srv, err := listen("http.address", c.Address, metricsMux(reg, a), log)
		if err != nil {
			return nil, err
		}
		srvs = append(srvs, srv)
	}
	if c.Pprof {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv, err := listen("http.pprofAddress", c.PprofAddress, mux, log)
		if err != nil {
			for _, s := range srvs {
				s.Close()
			}
			return nil, err
		}
		srvs = append(srvs, srv)
	}
	return srvs, nil
}

// metricsMux serves /metrics, /healthz and /readyz.
func metricsMux(reg *prometheus.Registry, a *agent.Agent) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "not ready: starting, or no sink has acknowledged the data on disk yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

// listen serves h on addr, the value of the configuration's key.
func listen(key, addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP listener stopped", "key", key, "err", err)
		}
	}()
	return srv, nil
}
