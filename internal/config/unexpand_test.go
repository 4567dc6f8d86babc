package config

import (
	"errors"
	"testing"
)

func TestUnexpand(t *testing.T) {
	t.Setenv("SHORT", "pass")
	t.Setenv("LONG", "password1")
	t.Setenv("QUOTED", `a"b`)
	t.Setenv("EMPTY", "")
	vars := []string{"SHORT", "LONG", "QUOTED", "EMPTY", "UNSET_SURELY"}
	for _, c := range []struct{ in, want string }{
		{`got "password1" and "pass"`, `got "${LONG}" and "${SHORT}"`},
		{`got "a\"b"`, `got "${QUOTED}"`},
		{`got a"b`, `got ${QUOTED}`},
		{"nothing to hide", "nothing to hide"},
	} {
		if got := unexpand(vars, errors.New(c.in)).Error(); got != c.want {
			t.Errorf("unexpand(%s) = %s, want %s", c.in, got, c.want)
		}
	}
	if unexpand(vars, nil) != nil {
		t.Error("unexpand(nil) is not nil")
	}
}
