package rules

import (
	"bytes"
	"fmt"
	"strings"
)

// glob is one pattern: '*' matches any run of bytes (slashes included), '?'
// one byte, a backslash makes the next character literal ("\*" is an
// asterisk), anything else matches itself. A pattern without wildcards is
// compared as it is.
type glob struct {
	p []byte
	// wild marks the bytes of p that are wildcards; nil when there are
	// none.
	wild []bool
}

func newGlob(s string) glob {
	var g glob
	var wild []bool
	hasWild := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			g.p = append(g.p, s[i])
			wild = append(wild, false)
			continue
		}
		w := c == '*' || c == '?'
		hasWild = hasWild || w
		g.p = append(g.p, c)
		wild = append(wild, w)
	}
	if hasWild {
		g.wild = wild
	}
	return g
}

func (g glob) match(s []byte) bool {
	if g.wild == nil {
		return bytes.Equal(g.p, s)
	}
	return wildcard(g.p, g.wild, s)
}

// wildcard matches with backtracking to the last '*' only, which is linear
// in practice and never recurses.
func wildcard(p []byte, wild []bool, s []byte) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && ((wild[pi] && p[pi] == '?') || (!wild[pi] && p[pi] == s[si])):
			pi++
			si++
		case pi < len(p) && wild[pi] && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && wild[pi] && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// patterns is a list of globs where entries starting with '!' exclude: a
// value matches when no exclusion matches it and, if there is any plain
// pattern, one of them does. The empty list matches everything.
type patterns struct {
	pos, neg []glob
}

func compilePatterns(list []string) (patterns, error) {
	for _, s := range list {
		if s == "!" {
			return patterns{}, fmt.Errorf("bad pattern %q: nothing to exclude", s)
		}
	}
	var ps patterns
	for _, s := range list {
		neg := strings.HasPrefix(s, "!")
		if neg {
			s = s[1:]
		}
		g := newGlob(s)
		if neg {
			ps.neg = append(ps.neg, g)
		} else {
			ps.pos = append(ps.pos, g)
		}
	}
	return ps, nil
}

func (ps *patterns) empty() bool { return len(ps.pos) == 0 && len(ps.neg) == 0 }

// literal reports whether ps matches exactly the values it lists: at
// least one plain pattern, none with wildcards, and no exclusions.
func (ps *patterns) literal() bool {
	if len(ps.pos) == 0 || len(ps.neg) > 0 {
		return false
	}
	for _, g := range ps.pos {
		if g.wild != nil {
			return false
		}
	}
	return true
}

func (ps *patterns) match(s []byte) bool {
	for _, g := range ps.neg {
		if g.match(s) {
			return false
		}
	}
	if len(ps.pos) == 0 {
		return true
	}
	for _, g := range ps.pos {
		if g.match(s) {
			return true
		}
	}
	return false
}

// matchAny is match for a field with several values (a user's groups):
// an exclusion matching any value excludes, and a plain pattern must match
// at least one value. No values match like the empty string.
func (ps *patterns) matchAny(values [][]byte) bool {
	if len(values) == 0 {
		return ps.match(nil)
	}
	for _, v := range values {
		for _, g := range ps.neg {
			if g.match(v) {
				return false
			}
		}
	}
	if len(ps.pos) == 0 {
		return true
	}
	for _, v := range values {
		for _, g := range ps.pos {
			if g.match(v) {
				return true
			}
		}
	}
	return false
}
