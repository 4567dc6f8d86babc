package main

import (
	"bytes"
	"strings"
	"testing"
)

// Flags that cannot be used stop verify with exit code 2 before it reads
// anything.
func TestVerifyRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bucket", "b", "--max-object-bytes", "lots"}, "--max-object-bytes"},
		{[]string{"--bucket", "b", "--max-object-bytes", "0"}, "--max-object-bytes"},
		{[]string{"--max-object-bytes", "1GiB"}, "--bucket or --config is required"},
		{[]string{"--bucket", "b", "--to", "yesterday"}, "--to"},
	} {
		var out, errb bytes.Buffer
		if code := verify(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("verify %q: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
