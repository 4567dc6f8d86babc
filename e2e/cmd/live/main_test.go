package main

import (
	"testing"
	"time"
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

func TestKey(t *testing.T) {
	line := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1b2","stage":"ResponseComplete","requestURI":"/api/v1/pods","requestObject":{"auditID":"x","stage":"y"}}` + "\n")
	if got, want := key(line), "a1b2/ResponseComplete"; got != want {
		t.Fatalf("key = %q, want %q", got, want)
	}
	if got := key([]byte(`{"kind":"Event","stage":"ResponseComplete"}`)); got != "" {
		t.Fatalf("key of a line without auditID = %q, want none", got)
	}
}
