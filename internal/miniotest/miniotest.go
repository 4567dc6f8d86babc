// Package miniotest runs a real MinIO server on 127.0.0.1 for tests.
//
// The binary is found at $AUDITRAIL_MINIO or in .tools/bin/minio at the
// repository root (scripts/tools.sh builds it there). When it is missing,
// tests that need it are skipped, unless AUDITRAIL_REQUIRE_TOOLS=1 (set by
// the project's test script) makes that a failure.
package miniotest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/internal/testproc"
)

// Credentials of the test server.
const (
	AccessKey = "auditrail-test"
	SecretKey = "auditrail-test-secret"
)

// TB is the part of testing.TB the server uses, so that programs (the
// benchmark's server launcher) can run it too.
type TB interface {
	Helper()
	Error(args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	TempDir() string
	Cleanup(func())
}

var _ TB = testing.TB(nil)

// Server is a running MinIO.
type Server struct {
	t       TB
	bin     string
	dataDir string
	addr    string
	cmd     *exec.Cmd
	logPath string
}

// Binary returns the MinIO binary's path, or "" if there is none.
func Binary() string {
	if p := os.Getenv("AUDITRAIL_MINIO"); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, ".tools", "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Start starts MinIO with a fresh data directory; it is stopped when the
// test ends.
func Start(t TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv("AUDITRAIL_REQUIRE_TOOLS") == "1" {
			t.Fatal("MinIO binary not found: run scripts/tools.sh or set AUDITRAIL_MINIO")
		}
		t.Skip("MinIO binary not found: run scripts/tools.sh or set AUDITRAIL_MINIO")
	}
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, dataDir: filepath.Join(dir, "data"), addr: freeAddr(t), logPath: filepath.Join(dir, "minio.log")}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

func freeAddr(t TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoint is the server's URL.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Stop stops the server; its data stays for Restart.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart starts the server again on the same address and data.
func (s *Server) Restart() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := testproc.Command(s.bin, "server", s.dataDir, "--address", s.addr, "--console-address", freeAddr(s.t), "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+s.dataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.Endpoint() + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.logPath)
	s.t.Fatalf("MinIO did not become ready:\n%s", b)
}

// Client returns an S3 client for the server.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint()), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Bucket creates a bucket, with Object Lock (and so versioning) when lock
// is true.
func (s *Server) Bucket(name string, lock bool) {
	s.t.Helper()
	_, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{
		Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(lock)})
	if err != nil {
		s.t.Fatal(fmt.Errorf("create bucket %s: %w", name, err))
	}
}
