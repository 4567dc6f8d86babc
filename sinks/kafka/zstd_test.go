package kafka

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go/compress"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// TestZstdCodecRoundTrip writes batches to the codec in pieces, as
// kafka-go does, one after another through the pooled encoders and
// buffers, and reads each back with the codec and with a plain zstd
// decoder, as a broker or a consumer would.
func TestZstdCodecRoundTrip(t *testing.T) {
	useZstdCodec()
	codec := compress.Zstd.Codec()
	plain, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for i, n := range []int{700, 1, 0, 300} {
		raw := strings.Join(sinktest.Events(i*1000, n, 1), "")
		var out bytes.Buffer
		w := codec.NewWriter(&out)
		for p := raw; len(p) > 0; {
			k := min(len(p), 1+len(p)%7) // pieces of a few bytes
			if _, err := w.Write([]byte(p[:k])); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r := codec.NewReader(bytes.NewReader(out.Bytes()))
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("batch %d: codec read: %v", i, err)
		}
		if string(got) != raw {
			t.Fatalf("batch %d: codec read %d bytes, want the %d written", i, len(got), len(raw))
		}
		got, err = plain.DecodeAll(out.Bytes(), nil)
		if err != nil {
			t.Fatalf("batch %d: zstd decode: %v", i, err)
		}
		if string(got) != raw {
			t.Fatalf("batch %d: zstd decoded %d bytes, want the %d written", i, len(got), len(raw))
		}
	}
}
