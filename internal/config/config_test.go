package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks/file"
	"github.com/auditrail/auditrail/sinks/registry"
)

// parse parses b with the sink types of this build.
func parse(b []byte) (*config.Config, error) { return config.Parse(b, registry.Schema()) }

func TestDefaultConfigIsValid(t *testing.T) {
	c, err := config.Load("", registry.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditLogPath != "/var/log/kubernetes/audit/audit.log" || len(c.Sinks) != 1 || c.Sinks[0].Type != "file" {
		t.Fatalf("default = %+v", c)
	}
	if got := c.Sinks[0].Section.(*file.Config).Directory; got != "/var/lib/auditrail/archive" {
		t.Errorf("relative file sink directory resolves to %q", got)
	}
	if c.MaxLineBytes != 16<<20 || c.DrainTimeout != units.Duration(25*time.Second) {
		t.Errorf("defaults: maxLineBytes %d drainTimeout %v", c.MaxLineBytes, c.DrainTimeout)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Setenv("NODE_NAME", "master-1")
	t.Setenv("ALERT_WEBHOOK_SECRET", strings.Repeat("s", 32))
	if _, err := config.Load(filepath.Join("..", "..", "examples", "auditrail.yaml"), registry.Schema()); err != nil {
		t.Fatal(err)
	}
}

func TestParseFull(t *testing.T) {
	t.Setenv("ARCHIVE", "/mnt/worm")
	c, err := parse([]byte(`
auditLogPath: /var/log/kubernetes/audit/audit.log
stateDir: /var/lib/x
maxLineBytes: 32MiB
pollInterval: 250ms
sinks:
  - name: worm
    type: file
    batch: {maxEvents: 10, maxBytes: 1MiB, flushInterval: 200ms}
    file: {directory: "${ARCHIVE}/audit", maxFileBytes: 1GiB, maxFiles: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sinks[0]
	fc := s.Section.(*file.Config)
	if c.MaxLineBytes != 32<<20 || c.PollInterval != units.Duration(250*time.Millisecond) {
		t.Errorf("top level = %+v", c)
	}
	if fc.Directory != "/mnt/worm/audit" || fc.MaxFileBytes != 1<<30 || fc.MaxFiles != 3 {
		t.Errorf("file = %+v", fc)
	}
	if s.Batch.MaxEvents != 10 || s.Batch.MaxBytes != 1<<20 || s.Retry.MaxInterval != units.Duration(30*time.Second) {
		t.Errorf("batch/retry = %+v %+v", s.Batch, s.Retry)
	}
	if s.RedactSecrets == nil || !*s.RedactSecrets {
		t.Error("secrets are not redacted by default")
	}
}

// The batch defaults bound each sink's memory: maxInFlight + 2 batches of
// up to maxBytes of lines.
func TestSinkBatchDefaults(t *testing.T) {
	c, err := parse([]byte(`
auditLogPath: /a/audit.log
sinks:
  - {type: discard}
  - {type: s3, s3: {bucket: b, region: r, cluster: c, node: n, objectLock: {mode: GOVERNANCE, retention: 1h}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.Sinks {
		want := units.ByteSize(2 << 20)
		if s.Type == "s3" {
			want = 4 << 20
		}
		if s.Batch.MaxBytes != want || s.MaxInFlight != 0 {
			t.Errorf("%s: maxBytes %d, maxInFlight %d; want %d, 0", s.Type, s.Batch.MaxBytes, s.MaxInFlight, want)
		}
	}
}

// Every bad config names the key at fault.
func TestParseErrorsNameTheKey(t *testing.T) {
	base := "auditLogPath: /a/audit.log\nsinks:\n  - type: file\n    file: {directory: /tmp/x}\n"
	cases := map[string]struct{ yaml, want string }{
		"unknown top key":          {base + "bogus: 1\n", "field bogus not found"},
		"unknown sink key":         {"auditLogPath: /a/audit.log\nsinks:\n  - type: file\n    flie: {}\n", "field flie not found"},
		"unknown nested key":       {"auditLogPath: /a/audit.log\nsinks:\n  - type: file\n    file: {directory: /x, size: 1}\n", "field size not found"},
		"relative path":            {strings.Replace(base, "/a/audit.log", "audit.log", 1), "auditLogPath must be an absolute path"},
		"missing path":             {"sinks:\n  - type: discard\n", "auditLogPath is required"},
		"no sinks":                 {"auditLogPath: /a/audit.log\n", "at least one sink"},
		"bad type":                 {"auditLogPath: /a/audit.log\nsinks:\n  - type: s4\n", "sinks[0].type must be one of"},
		"dup name":                 {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n  - type: discard\n", `sinks[1].name "discard" is used`},
		"no directory":             {"auditLogPath: /a/audit.log\nsinks:\n  - type: file\n", "sinks[0].file.directory is required"},
		"bad duration":             {base + "pollInterval: soon\n", `"soon" is not a duration`},
		"bad size":                 {base + "maxLineBytes: lots\n", `"lots" is not a size`},
		"bad batch":                {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n    batch: {maxEvents: -1}\n", "sinks[0].batch.maxEvents must be positive"},
		"unset env":                {"auditLogPath: ${AUDITRAIL_SURELY_UNSET}\nsinks:\n  - type: discard\n", "auditLogPath: environment variable AUDITRAIL_SURELY_UNSET is not set"},
		"bad startAt":              {base + "startAt: middle\n", "startAt must be beginning or end"},
		"s3 without lock":          {"auditLogPath: /a/audit.log\nsinks:\n  - type: s3\n    s3: {bucket: b}\n", "sinks[0].s3.objectLock.mode is required"},
		"s3 bad compression":       {"auditLogPath: /a/audit.log\nsinks:\n  - type: s3\n    s3: {bucket: b, compression: lzma, objectLock: {required: false}}\n", "sinks[0].s3.compression must be"},
		"s3 no section":            {"auditLogPath: /a/audit.log\nsinks:\n  - type: s3\n", "sinks[0].s3 section is required"},
		"es bad address":           {"auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [es:9200]}\n", "sinks[0].elasticsearch.addresses[0] must start with http"},
		"es two auths":             {"auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [\"http://e:9200\"], apiKey: k, bearerToken: t}\n", "use only one of"},
		"kafka no topic":           {"auditLogPath: /a/audit.log\nsinks:\n  - type: kafka\n    kafka: {brokers: [\"k:9092\"]}\n", "sinks[0].kafka.topic is required"},
		"kafka bad sasl":           {"auditLogPath: /a/audit.log\nsinks:\n  - type: kafka\n    kafka: {brokers: [\"k:9092\"], topic: t, sasl: {mechanism: gssapi}}\n", "sinks[0].kafka.sasl.mechanism must be"},
		"kafka on s3":              {"auditLogPath: /a/audit.log\nsinks:\n  - type: s3\n    s3: {bucket: b, objectLock: {required: false}}\n    kafka: {topic: t}\n", "sinks[0].kafka is only valid for type kafka"},
		"drop without name":        {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n    drop: [{verbs: [get]}]\n", "sinks[0].drop[0].name is required"},
		"drop matches all":         {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n    drop: [{name: all}]\n", "sinks[0].drop[0] (all) matches every event"},
		"drop bad pattern":         {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n    drop: [{name: x, users: [\"[\"]}]\n", `sinks[0].drop[0].users[0] (rule x): bad pattern "["`},
		"file on discard":          {"auditLogPath: /a/audit.log\nsinks:\n  - type: discard\n    file: {directory: /x}\n", "sinks[0].file is only valid for type file"},
		"es in-flight requests":    {"auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [\"https://e:9200\"], maxInFlightRequests: 33}\n", "sinks[0].elasticsearch.maxInFlightRequests must be between 1 and 32, not 33"},
		"es password over http":    {"auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [\"https://e:9200\", \"http://e2:9200\"], username: u, password: p}\n", "sinks[0].elasticsearch.addresses[1] is http:// and credentials are set: use https:// or set allowInsecure: true"},
		"es api key over http":     {"auditLogPath: /a/audit.log\nsinks:\n  - type: elasticsearch\n    elasticsearch: {addresses: [\"http://e:9200\"], apiKey: k}\n", "sinks[0].elasticsearch.addresses[0] is http:// and credentials are set"},
		"kafka sasl without tls":   {"auditLogPath: /a/audit.log\nsinks:\n  - type: kafka\n    kafka: {brokers: [\"k:9092\"], topic: t, sasl: {mechanism: SCRAM-SHA-512, username: u, password: p}}\n", "sinks[0].kafka.sasl: SCRAM-SHA-512 without tls sends credentials in cleartext: set tls or allowInsecure: true"},
		"webhook secret over http": {"auditLogPath: /a/audit.log\nsinks: [{type: discard}]\nalerts: {destinations: [{type: webhook, url: 'http://soar/hook', secret: 0123456789abcdef0123456789abcdef}]}\n", "alerts.destinations[0].url is http:// and a secret or headers are set"},
		"slack over http":          {"auditLogPath: /a/audit.log\nsinks: [{type: discard}]\nalerts: {destinations: [{type: slack, url: 'http://hooks/x'}]}\n", "alerts.destinations[0].url is http://"},
		"short webhook secret":     {"auditLogPath: /a/audit.log\nsinks: [{type: discard}]\nalerts: {destinations: [{type: webhook, url: 'https://soar/hook', secret: short}]}\n", "alerts.destinations[0].secret must be at least 32 bytes"},
		"pprof on all":             {base + "http: {address: \"127.0.0.1:9808\", pprof: true, pprofAddress: \":6060\"}\n", "http.pprofAddress must be a loopback address"},
		"pprof on node IP":         {base + "http: {pprof: true, pprofAddress: \"10.0.0.1:6060\"}\n", "http.pprofAddress must be a loopback address"},
		"bad http address":         {base + "http: {address: \"9808\"}\n", "http.address must be host:port"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	t.Setenv("A", "x")
	t.Setenv("EMPTY", "")
	for in, want := range map[string]string{
		"${A}":            "x",
		"a-${A}-b":        "a-x-b",
		"${EMPTY:-dflt}":  "dflt",
		"${UNSET_Q:-}":    "",
		"$$":              "$",
		"no refs":         "no refs",
		"$${A}":           "${A}",
		"${A}${A:-other}": "xx",
	} {
		got, err := units.Expand(in)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestEnvValueCannotInjectYAML(t *testing.T) {
	t.Setenv("EVIL", "x\nstartAt: end")
	c, err := parse([]byte("auditLogPath: /a/${EVIL}\nsinks:\n  - type: discard\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.StartAt != "beginning" || !strings.Contains(c.AuditLogPath, "startAt: end") {
		t.Fatalf("env value changed the structure: %+v", c)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "4KiB": 4096, "16MiB": 16 << 20, "1GiB": 1 << 30, "4MB": 4e6, "2Ki": 2048} {
		if got, err := units.ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), registry.Schema())
	if err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestAlertsSection(t *testing.T) {
	base := "auditLogPath: /var/log/audit.log\nsinks: [{type: discard, name: alert-soc}]\n"
	c, err := parse([]byte("auditLogPath: /var/log/audit.log\nsinks: [{type: discard}]\n" + `
alerts:
  disable: [admission-webhook-change]
  rules:
    - {id: kube-system-cm, severity: low, resources: [configmaps], namespaces: [kube-system]}
  destinations:
    - {type: webhook, url: "https://soar.example/hook", secret: "${NOPE:-0123456789abcdef0123456789abcdef}"}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := registry.Alerts(c)
	if d := a.Destinations[0]; d.Name != "webhook" || d.Secret != "0123456789abcdef0123456789abcdef" || *a.TagRecords != true ||
		a.RateLimit.Burst != 10 || a.FlushInterval != units.Duration(200*time.Millisecond) {
		t.Errorf("alerts = %+v", a)
	}
	for yaml, want := range map[string]string{
		"alerts: {rules: [{id: x, severity: low, verb: [get]}]}":                   "field verb not found",
		"alerts: {rules: [{id: x, severity: loud, verbs: [get]}]}":                 "alerts.rules[0]: rule x: severity must be one of",
		"alerts: {rules: [{id: x, severity: low, fields: [{path: a}]}]}":           "rule x: fields[0]: give exactly one of values and exists",
		"alerts: {destinations: [{name: soc, type: webhook, url: 'https://x/'}]}":  `its cursor name "alert-soc" is a sink's name`,
		"alerts: {flushInterval: 5s}":                                              "alerts.flushInterval must be positive and at most 1s",
		"alerts: {destinations: [{name: k, type: kafka, kafka: {topic: alerts}}]}": "alerts.destinations[0].kafka.brokers",
	} {
		_, err := parse([]byte(base + yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", yaml, err, want)
		}
	}
}

// Profiles are served on a listener of their own, on loopback, never on the
// metrics address that Prometheus (and the node's network) reaches.
func TestPprofListenerDefaultsToLoopback(t *testing.T) {
	c, err := parse([]byte("auditLogPath: /a/audit.log\nhttp: {address: \":9808\", pprof: true}\nsinks:\n  - type: discard\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.PprofAddress != "127.0.0.1:6060" {
		t.Errorf("http.pprofAddress defaults to %q, want 127.0.0.1:6060", c.HTTP.PprofAddress)
	}
}

// Every insecure setting is listed for the start-up log, allowed or not.
func TestInsecureSettingsAreListed(t *testing.T) {
	c, err := parse([]byte(`auditLogPath: /a/audit.log
http: {address: ":9808"}
sinks:
  - type: elasticsearch
    elasticsearch: {addresses: ["http://e:9200"], apiKey: k, allowInsecure: true}
  - type: kafka
    kafka: {brokers: ["k:9092"], topic: t, sasl: {mechanism: PLAIN, username: u, password: p}, allowInsecure: true}
  - type: s3
    s3: {bucket: b, endpoint: "http://minio:9000", objectLock: {required: false}, tls: {insecureSkipVerify: true}}
alerts:
  destinations:
    - {type: webhook, url: "https://soar/hook"}
    - {type: slack, url: "http://hooks/x", allowInsecure: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"http.address: no host",
		"sinks[0].elasticsearch.addresses[0]: http://, events and credentials in cleartext",
		"sinks[1].kafka.tls: not set, records and SASL PLAIN in cleartext",
		"sinks[2].s3.endpoint: http://",
		"sinks[2].s3.tls.insecureSkipVerify",
		"alerts.destinations[0].secret: not set",
		"alerts.destinations[1].url: http://",
	}
	got := c.Insecure()
	if len(got) != len(want) {
		t.Errorf("Insecure() = %q, want %d entries", got, len(want))
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("Insecure()[%d] = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}
