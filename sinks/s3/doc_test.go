package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// The format doc.go states, checked against what the sink writes to a
// real bucket and its state directory: readers of the archive rely on it.
func TestDocumentedFormat(t *testing.T) {
	cfg := s3test.ChainConfig(t, "documented")
	s := s3test.NewSink(t, cfg)
	b := sinktest.Batch(sinktest.File(1), 4096, sinktest.Events(1, 20, 1)...)
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	assertDocumentedState(t, cfg, 1)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	epoch := s.Chain().Epoch
	if !regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{8}$`).MatchString(epoch) {
		t.Errorf("epoch %q, documented as <UTC start>-<8 hex digits>", epoch)
	}
	assertDocumentedState(t, cfg, 2)

	c := srvClient(t, cfg)
	objs := objects(t, c, cfg.Bucket)
	if len(objs) != 2 {
		t.Fatalf("%d objects, want the batch's and the closing one: %v", len(objs), keys(objs))
	}
	dataKey := regexp.MustCompile(`^audit/cluster=prod-eu/node=master-1/dt=(\d{4}-\d\d-\d\d)/hour=(\d\d)/(\d{8}T\d{6}\.\d{6}Z)_2049-1001-0123456789abcdef_00000000000000004096-(\d{20})\.ndjson\.zst$`)
	closedKey := regexp.MustCompile(`^audit/cluster=prod-eu/node=master-1/dt=\d{4}-\d\d-\d\d/hour=\d\d/\d{8}T\d{6}\.\d{6}Z_closed-` +
		regexp.QuoteMeta(epoch) + `-2_0{20}-0{20}\.ndjson\.zst$`)
	for key, body := range objs {
		seq := 1
		switch m := dataKey.FindStringSubmatch(key); {
		case m != nil:
			day, hour, at, end := m[1], m[2], m[3], m[4]
			if at[:8] != strings.ReplaceAll(day, "-", "") || at[9:11] != hour || end != fmt.Sprintf("%020d", b.Segments[0].End) {
				t.Errorf("key %s: dt, hour, time and end offset disagree (end %d)", key, b.Segments[0].End)
			}
		case closedKey.MatchString(key):
			seq = 2
		default:
			t.Errorf("key %s does not follow the documented layout", key)
			continue
		}
		manifest := assertDocumentedManifest(t, key, body, seq)
		head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		assertDocumentedMetadata(t, key, head.Metadata, manifest, seq)
	}
}

// assertDocumentedManifest checks the manifest line's fields against
// doc.go and returns them.
func assertDocumentedManifest(t *testing.T, key string, body []byte, seq int) map[string]any {
	t.Helper()
	raw, err := zstd.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(raw); err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(buf.Bytes(), []byte{'\n'})
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: first line is not JSON: %v", key, err)
	}
	documented := []string{"kind", "apiVersion", "chain", "epoch", "seq", "prev", "chainStart", "records", "recordsSHA256",
		"sourceFile", "sourceRange", "firstEvent", "lastEvent", "marked", "closed", "collision", "format"}
	always := []string{"kind", "apiVersion", "chain", "epoch", "seq", "records", "recordsSHA256", "sourceFile", "sourceRange"}
	for f := range m {
		if !slices.Contains(documented, f) {
			t.Errorf("%s: manifest field %q is not documented", key, f)
		}
	}
	for _, f := range always {
		if _, ok := m[f]; !ok {
			t.Errorf("%s: manifest lacks %q", key, f)
		}
	}
	_, hasPrev := m["prev"]
	_, hasStart := m["chainStart"]
	if m["kind"] != s3sink.KindManifest || m["apiVersion"] != "auditrail.io/v1" || m["chain"] != "master-1/s3" || m["seq"] != float64(seq) ||
		hasPrev != (seq > 1) || hasStart != (seq == 1) || (seq == 1) == (m["closed"] == true) {
		t.Errorf("%s: manifest %s, want seq %d, prev and chainStart as documented, closed only on the closing object", key, line, seq)
	}
	return m
}

// assertDocumentedMetadata checks the object's metadata names and their
// agreement with the manifest against doc.go.
func assertDocumentedMetadata(t *testing.T, key string, meta map[string]string, m map[string]any, seq int) {
	t.Helper()
	documented := []string{"chain", "chain-epoch", "chain-seq", "chain-prev", "chain-start", "sha256", "records-sha256", "records",
		"source-file", "source-range", "source-files", "first-event", "last-event", "marked", "closed", "collision", "format"}
	for name := range meta {
		if !slices.Contains(documented, strings.ToLower(name)) {
			t.Errorf("%s: metadata %q is not documented", key, name)
		}
	}
	get := func(name string) string { return meta[name] }
	if get("chain") != m["chain"] || get("chain-epoch") != m["epoch"] || get("records-sha256") != m["recordsSHA256"] ||
		get("source-file") != m["sourceFile"] || get("source-range") != m["sourceRange"] || len(get("sha256")) != 64 {
		t.Errorf("%s: metadata %v disagrees with manifest %v", key, meta, m)
	}
	if seq == 1 && get("chain-start") != s3sink.StartNoState || seq == 2 && (get("closed") != "true" || len(get("chain-prev")) != 64) {
		t.Errorf("%s: metadata %v, want chain-start on the first object, closed and chain-prev on the closing one", key, meta)
	}
}

// assertDocumentedState checks the chain state file against doc.go.
func assertDocumentedState(t *testing.T, cfg s3sink.Config, seq int) {
	t.Helper()
	b := s3test.ChainState(t, cfg)
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st["chain"] != "master-1/s3" || st["seq"] != float64(seq) || st["epoch"] == "" || len(st["sha256"].(string)) != 64 ||
		!strings.HasSuffix(st["key"].(string), ".ndjson.zst") || st["pending"] != nil || st["start"] != nil || len(st) != 5 {
		t.Errorf("chain state after object %d: %s", seq, b)
	}
	for _, p := range s3test.ChainStatePaths(cfg) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("chain state file %s mode %v, want 0600", p, fi.Mode())
		}
	}
}
