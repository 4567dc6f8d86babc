package sinktest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
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
