package main

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks/alert"
)

func TestVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	v := &Verifier{Secret: secret, Now: func() time.Time { return now }}
	body := []byte(`{"id":"4f1c","rule":"secret-read"}`)
	sign := func(at time.Time, b []byte) (string, string) {
		ts := strconv.FormatInt(at.Unix(), 10)
		return ts, alert.Sign(secret, ts, b)
	}
	ts, sig := sign(now, body)
	if id, err := v.Verify(ts, sig, body); err != nil || id != "4f1c" {
		t.Fatalf("a good alert: %q %v", id, err)
	}
	if _, err := v.Verify(ts, sig, body); !errors.Is(err, ErrReplay) {
		t.Errorf("the same request again: %v, want ErrReplay", err)
	}
	other := []byte(`{"id":"5a2d","rule":"secret-read"}`)
	if _, err := v.Verify(ts, sig, other); !errors.Is(err, ErrSignature) {
		t.Errorf("another body under the signature: %v, want ErrSignature", err)
	}
	ts, sig = sign(now.Add(-Window-time.Second), other)
	if _, err := v.Verify(ts, sig, other); !errors.Is(err, ErrStale) {
		t.Errorf("a stale timestamp: %v, want ErrStale", err)
	}
	ts, sig = sign(now.Add(-Window+time.Second), other)
	if _, err := v.Verify(ts, sig, other); err != nil {
		t.Errorf("a timestamp within the window: %v", err)
	}
}
