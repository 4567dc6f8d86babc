package sinktest

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// Frozen is an endpoint that accepts TCP connections and never answers,
// as a server does when it hangs or a firewall drops its replies: a
// client learns nothing until its own deadline.
type Frozen struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

// NewFrozen listens on 127.0.0.1 until the test ends.
func NewFrozen(t testing.TB) *Frozen {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Frozen{ln: ln}
	go f.accept()
	t.Cleanup(f.close)
	return f
}

// Addr is the endpoint's host:port.
func (f *Frozen) Addr() string { return f.ln.Addr().String() }

// Accepted is how many connections clients opened.
func (f *Frozen) Accepted() int64 { return f.accepted.Load() }

func (f *Frozen) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
	}
}

func (f *Frozen) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

// AssertOnlyCheckWaits checks s, a sink just made with New against f: New
// opened no connection (it must not hold up the agent's start), and Check
// reaches the endpoint and gives up when its context ends, with an error
// that is not a misconfiguration, so that writes go on and retry.
func (f *Frozen) AssertOnlyCheckWaits(t testing.TB, s sinks.Checker) {
	t.Helper()
	if n := f.Accepted(); n != 0 {
		t.Fatalf("New opened %d connections to the endpoint; it must leave that to Check", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := s.Check(ctx)
	if err == nil || sinks.IsMisconfigured(err) {
		t.Fatalf("Check against a frozen endpoint: err = %v, want a retryable error", err)
	}
	if f.Accepted() == 0 {
		t.Error("Check did not reach the endpoint")
	}
}
