package main

import (
	"testing"
	"time"

	"github.com/auditrail/auditrail/e2e"
)

func TestStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, utime 250, stime 31.
	line := "4242 (audit (x) rail) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 31 0 0 20 0 9 0 100 0 0"
	got, err := statCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2810 * time.Millisecond; got != want {
		t.Fatalf("statCPU = %v, want %v", got, want)
	}
	if _, err := statCPU("4242 (auditrail) S 1"); err == nil {
		t.Fatal("statCPU of a short line: no error")
	}
}

// The replay keys lines as the trackers do, without decoding them.
func TestLineKey(t *testing.T) {
	line := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1b2","stage":"ResponseComplete","requestURI":"/api/v1/pods","requestObject":{"auditID":"x","stage":"y"}}` + "\n")
	if got, want := e2e.LineKey(line), "a1b2/ResponseComplete"; got != want {
		t.Fatalf("LineKey = %q, want %q", got, want)
	}
	if got := e2e.LineKey([]byte(`{"kind":"Event","stage":"ResponseComplete"}`)); got != "" {
		t.Fatalf("LineKey of a line without auditID = %q, want none", got)
	}
}
