package sinks_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

func TestAppendID(t *testing.T) {
	sp := sinktest.Spoofed(false)
	f1, f2 := sinktest.File(1), sinktest.File(2)
	id := func(b *sinks.Batch, i int) string { return string(sinks.AppendID(nil, &b.Records[i])) }
	onDisk := sinktest.Batch(f1, 0, sp[0], sp[1], "not json")
	// The first line as a redacting sink ships it: rewritten, with the
	// digest of the line on disk.
	redacted := sinktest.Batch(f1, 0, strings.Replace(sp[0], "harmless", "sha256:0000", 1))
	sum := sha256.Sum256([]byte(sp[0]))
	redacted.Records[0].Sum = &sum
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"different lines with the same auditID and stage", id(onDisk, 0), id(onDisk, 1), false},
		{"the same line delivered again from another offset and file", id(onDisk, 1), id(sinktest.Batch(f2, 7, sp[1]), 0), true},
		{"the same line redacted", id(onDisk, 0), id(redacted, 0), true},
		{"an unparsed line at the same offset again", id(onDisk, 2), id(sinktest.Batch(f1, onDisk.Records[2].Offset, "not json"), 0), true},
		{"an unparsed line elsewhere", id(onDisk, 2), id(sinktest.Batch(f2, onDisk.Records[2].Offset, "not json"), 0), false},
	} {
		if (tc.a == tc.b) != tc.same {
			t.Errorf("%s: ids %q and %q, want same %v", tc.name, tc.a, tc.b, tc.same)
		}
	}
	if got := id(onDisk, 0); len(got) != 64 || strings.Contains(got, sinktest.SpoofedAuditID) {
		t.Errorf("event id %q, want the 64 hex digits of a SHA-256", got)
	}
}
