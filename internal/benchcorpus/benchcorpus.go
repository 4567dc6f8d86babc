// Package benchcorpus gives benchmarks the start of the audit log named by
// AUDITRAIL_BENCH_CORPUS, such as the corpus scripts/bench.sh caches, so
// that they run on realistic events as well as on the ones they make up:
//
//	AUDITRAIL_BENCH_CORPUS=$PWD/testdata-cache/corpus-1g-k8s/audit.log go test -run '^$' -bench . ./agent
package benchcorpus

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"testing"
)

// Env is the environment variable that names the audit log.
const Env = "AUDITRAIL_BENCH_CORPUS"

// Head returns the complete lines, newlines included, among the first max
// bytes of the log, or nil when Env is not set.
func Head(tb testing.TB, max int) []byte {
	f := open(tb)
	if f == nil {
		return nil
	}
	defer f.Close()
	data := make([]byte, max)
	n, err := io.ReadFull(f, data)
	if err != nil && err != io.ErrUnexpectedEOF {
		tb.Fatal(err)
	}
	return data[:bytes.LastIndexByte(data[:n], '\n')+1]
}

// Lines returns the first n lines of the log, without their newlines, or
// nil when Env is not set.
func Lines(tb testing.TB, n int) []string {
	f := open(tb)
	if f == nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	var lines []string
	for len(lines) < n && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return lines
}

func open(tb testing.TB) *os.File {
	path := os.Getenv(Env)
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}
