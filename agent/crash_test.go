package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/file"
	"github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/verify"
)

// crashChildEnv, when set, makes the test binary run an agent as the
// crash test's child (see crashChild) with the JSON crashRun it holds.
const crashChildEnv = "AUDITRAIL_AGENT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(crashChildEnv); v != "" {
		os.Exit(crashChild(v))
	}
	os.Exit(m.Run())
}

// crashRun is one run of the crash test's child.
type crashRun struct {
	Live, State, Archive, Endpoint, Bucket string
	// KillSink and KillStep name the step after which the child kills
	// itself with SIGKILL, the KillAt-th time it gets there; without a
	// step the child runs until every sink has everything (Once).
	KillSink, KillStep string
	KillAt             int64
}

// crashChild runs the agent with an S3 sink (MinIO) and a file sink, in
// batches of 7 events, and kills itself at the step it was told.
func crashChild(arg string) int {
	var run crashRun
	if err := json.Unmarshal([]byte(arg), &run); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var n atomic.Int64
	testHookStep = func(sink, st string) {
		if st == run.KillStep && sink == run.KillSink && n.Add(1) == run.KillAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	ctx := context.Background()
	cfg := s3.Config{Bucket: run.Bucket, Region: "us-east-1", Endpoint: run.Endpoint, ForcePathStyle: true,
		Node: "master-1", AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey, Compression: "none",
		ObjectLock: s3.ObjectLockConfig{Mode: "GOVERNANCE", Retention: units.Duration(time.Hour)}, StateDir: run.State}
	cfg.ApplyDefaults()
	log := testLogger()
	s3s, err := s3.New(ctx, "s3", cfg, log, prometheus.NewRegistry())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fcfg := file.DefaultConfig()
	fcfg.Directory = run.Archive
	fs, err := file.New("file", fcfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	opts := Options{
		AuditLogPath: run.Live, StateDir: run.State, MaxLineBytes: 1 << 20,
		PollInterval: 20 * time.Millisecond, CheckpointInterval: 30 * time.Millisecond,
		DrainTimeout: 5 * time.Second, MaxOpenFiles: 16, StartAt: "beginning", Once: run.KillStep == "",
		Logger: log, Registerer: prometheus.NewRegistry(),
	}
	var so []SinkOptions
	for _, s := range []sinks.Sink{s3s, fs} {
		o := sinkOpts(s)
		o.Batch = BatchOptions{MaxEvents: 7, MaxBytes: 1 << 20, FlushInterval: 10 * time.Millisecond}
		so = append(so, o)
	}
	a, err := New(opts, so)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runCrashChild runs the child and reports whether it killed itself.
func runCrashChild(t *testing.T, run crashRun) (killed bool) {
	t.Helper()
	arg, _ := json.Marshal(run)
	cmd := testproc.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(arg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr.String())
	}
	return false
}

// A crash between any two steps of a batch's delivery (intent recorded,
// batch written, delivery recorded, positions acknowledged, checkpoint
// committed), in either sink, then a restart: every event is in S3 and in
// the file archive exactly once, every S3 key has one version, and the
// archive verifies (the hash chain unbroken).
func TestCrashBetweenSteps(t *testing.T) {
	srv := miniotest.Start(t)
	var kills []crashRun
	for _, sink := range []string{"s3", "file"} {
		for _, st := range []string{stepIntent, stepWritten, stepDelivered, stepAcked} {
			kills = append(kills, crashRun{KillSink: sink, KillStep: st, KillAt: 3})
		}
	}
	kills = append(kills, crashRun{KillStep: stepCommitted, KillAt: 4})
	for i, k := range kills {
		t.Run(strings.TrimPrefix(k.KillSink+"/"+k.KillStep, "/"), func(t *testing.T) {
			root := t.TempDir()
			run := crashRun{Live: filepath.Join(root, "audit", "audit.log"), State: filepath.Join(root, "state"),
				Archive: filepath.Join(root, "archive"), Endpoint: srv.Endpoint(), Bucket: fmt.Sprintf("crash-%d", i)}
			srv.Bucket(run.Bucket, true)
			if err := os.MkdirAll(filepath.Dir(run.Live), 0o700); err != nil {
				t.Fatal(err)
			}
			appendLines(t, run.Live, events(0, 50)...)
			crash := run
			crash.KillSink, crash.KillStep, crash.KillAt = k.KillSink, k.KillStep, k.KillAt
			if !runCrashChild(t, crash) {
				t.Fatalf("the agent never got to %s %s %d times", k.KillSink, k.KillStep, k.KillAt)
			}
			appendLines(t, run.Live, events(50, 70)...)
			if runCrashChild(t, run) {
				t.Fatal("the agent was killed without being asked to")
			}
			want := events(0, 70)
			s3Lines, versions := bucketLines(t, srv, run.Bucket)
			assertOnce(t, "s3", want, s3Lines)
			for key, n := range versions {
				if n != 1 {
					t.Errorf("s3: %d versions of %s", n, key)
				}
			}
			assertOnce(t, "file", want, archiveLines(t, run.Archive))
			rep, err := verify.Archive(context.Background(), verifyConfig(srv, run.Bucket), verify.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK {
				t.Errorf("verify: %+v", rep.Findings)
			}
		})
	}
}

func verifyConfig(srv *miniotest.Server, bucket string) s3.Config {
	c := s3.Config{Bucket: bucket, Region: "us-east-1", Endpoint: srv.Endpoint(), ForcePathStyle: true,
		AccessKeyID: miniotest.AccessKey, SecretAccessKey: miniotest.SecretKey}
	c.ApplyDefaults()
	return c
}

// assertOnce checks that every line of want is among got exactly once, and
// that no line of got is there twice.
func assertOnce(t *testing.T, sink string, want, got []string) {
	t.Helper()
	count := map[string]int{}
	for _, l := range got {
		count[l]++
	}
	lost, dups := 0, 0
	for _, w := range want {
		if count[w] == 0 {
			lost++
		}
	}
	for l, n := range count {
		if n > 1 {
			dups += n - 1
			t.Logf("%s: %d times: %.120s", sink, n, l)
		}
	}
	if lost > 0 || dups > 0 {
		t.Errorf("%s: %d of %d events lost, %d records duplicated", sink, lost, len(want), dups)
	}
}

// bucketLines returns the records of every object version in bucket, and
// how many versions each key has.
func bucketLines(t *testing.T, srv *miniotest.Server, bucket string) ([]string, map[string]int) {
	t.Helper()
	c := srv.Client()
	ctx := context.Background()
	out, err := c.ListObjectVersions(ctx, &awss3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToBool(out.IsTruncated) {
		t.Fatal("too many versions for one listing")
	}
	versions := map[string]int{}
	var lines []string
	for _, v := range out.Versions {
		versions[*v.Key]++
		res, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: v.Key, VersionId: v.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		ls := splitLines(body)
		if len(ls) > 0 {
			lines = append(lines, ls[1:]...) // after the manifest
		}
	}
	return lines, versions
}

func archiveLines(t *testing.T, dir string) []string {
	t.Helper()
	files, err := file.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, splitLines(b)...)
	}
	return lines
}

func splitLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
