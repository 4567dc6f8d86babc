package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// BenchmarkEncode compresses a 16 MiB batch (the default S3 batch) of
// realistic events.
func BenchmarkEncode(b *testing.B) {
	var ls []string
	size := 0
	for i := 0; size < 16<<20; i++ {
		l := sinktest.Events(i*100, 100, uint64(i))
		for _, x := range l {
			size += len(x) + 1
		}
		ls = append(ls, l...)
	}
	batch := sinktest.Batch(sinktest.File(1), 0, ls...)
	for _, kind := range []string{"zstd", "gzip", "none"} {
		b.Run(kind, func(b *testing.B) {
			enc, err := newEncoder(kind)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var out int
			for b.Loop() {
				body, err := enc.encode(batch, testHead)
				if err != nil {
					b.Fatal(err)
				}
				out = len(body)
			}
			b.ReportMetric(float64(size)/float64(out), "ratio")
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	ls := sinktest.Events(0, 2000, 1)
	batch := sinktest.Batch(sinktest.File(1), 0, ls...)
	enc, _ := newEncoder("zstd")
	sum := sha256.Sum256(ndjson(ls))
	for i := 0; i < 3; i++ { // buffers are reused between calls
		body, err := enc.encode(batch, testHead)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := zstd.NewReader(nil)
		raw, err := d.DecodeAll(body, nil)
		d.Close()
		want := append([]byte(`{"records":"`+hex.EncodeToString(sum[:])+`"}`+"\n"), ndjson(ls)...)
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("round trip %d: err %v, equal %v", i, err, bytes.Equal(raw, want))
		}
	}
}

// testHead is a head line naming the records' digest.
func testHead(sum []byte) []byte { return []byte(`{"records":"` + hex.EncodeToString(sum) + `"}`) }

func ndjson(ls []string) []byte {
	return []byte(strings.Join(ls, "\n") + "\n")
}
