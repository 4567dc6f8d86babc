// Command webhook-verifier is an example receiver of auditrail's webhook
// alerts, to copy into your own: it accepts an alert only if its
// signature is right, its timestamp within the replay window, and its id
// not seen within that window. It needs only the standard library.
//
//	AUDITRAIL_WEBHOOK_SECRET=... webhook-verifier -listen :8443 -cert tls.crt -key tls.key
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Window is how far a timestamp may be from the receiver's clock. The
// agent signs every attempt afresh, so retries after an outage still fit.
const Window = 5 * time.Minute

// Verifier checks signed alerts and remembers the ids it accepted for
// twice the window, so a captured request cannot be sent again.
type Verifier struct {
	Secret []byte
	Now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // alert id → when accepted
}

// Errors, by what the receiver should answer.
var (
	ErrSignature = errors.New("bad signature")
	ErrStale     = errors.New("timestamp outside the replay window")
	ErrReplay    = errors.New("alert already received")
)

// Verify checks one request's timestamp and signature headers and body.
// It returns the alert id, taken from the signed body (the
// X-Auditrail-Alert-Id header is not signed).
func (v *Verifier) Verify(ts, sig string, body []byte) (string, error) {
	m := hmac.New(sha256.New, v.Secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", ErrSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", ErrStale
	}
	now := v.Now()
	if d := now.Sub(time.Unix(sec, 0)); d > Window || d < -Window {
		return "", ErrStale
	}
	var a struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
		return "", ErrSignature
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	for id, at := range v.seen {
		if now.Sub(at) > 2*Window {
			delete(v.seen, id)
		}
	}
	if _, ok := v.seen[a.ID]; ok {
		return a.ID, ErrReplay
	}
	v.seen[a.ID] = now
	return a.ID, nil
}

// ServeHTTP answers 204 to a good alert and to a replay (the agent may
// resend one after a crash: it is a duplicate, not an error), 401 to the
// rest.
func (v *Verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	id, err := v.Verify(r.Header.Get("X-Auditrail-Timestamp"), r.Header.Get("X-Auditrail-Signature"), body)
	switch {
	case errors.Is(err, ErrReplay):
		w.WriteHeader(http.StatusNoContent)
	case err != nil:
		http.Error(w, err.Error(), http.StatusUnauthorized)
	default:
		log.Printf("alert %s: %s", id, body) // hand it to your pipeline here
		w.WriteHeader(http.StatusNoContent)
	}
}

func main() {
	listen := flag.String("listen", ":8443", "address")
	cert := flag.String("cert", "", "TLS certificate")
	key := flag.String("key", "", "TLS key")
	flag.Parse()
	secret := os.Getenv("AUDITRAIL_WEBHOOK_SECRET")
	if len(secret) < 32 {
		log.Fatal("AUDITRAIL_WEBHOOK_SECRET must hold at least 32 bytes")
	}
	srv := &http.Server{Addr: *listen, Handler: &Verifier{Secret: []byte(secret), Now: time.Now}, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServeTLS(*cert, *key))
}
