package rules

import (
	"errors"
	"fmt"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// Set is a list of rules evaluated together.
type Set struct {
	rules []*Rule
	// byResource holds, for each resource some rules name exactly, the
	// rules an event on that resource may match, in order; other holds
	// them for every other resource. Most rules name their resources, so
	// an event is tried against a few rules instead of all.
	byResource map[string][]*Rule
	other      []*Rule
}

// index sets byResource and other.
func (s *Set) index() {
	s.byResource = map[string][]*Rule{}
	listed := make([]bool, len(s.rules))
	for k, r := range s.rules {
		if listed[k] = r.resources.literal(); listed[k] {
			for _, g := range r.resources.pos {
				s.byResource[string(g.p)] = nil
			}
		}
	}
	for k, r := range s.rules {
		if !listed[k] {
			s.other = append(s.other, r)
		}
		for res, list := range s.byResource {
			if !listed[k] || r.resources.match([]byte(res)) {
				s.byResource[res] = append(list, r)
			}
		}
	}
}

// NewSet compiles the built-in rules (unless builtin is false), minus the
// ids in disable, and the user's specs. Errors name the rule.
func NewSet(builtin bool, disable []string, specs []Spec) (*Set, error) {
	var errs []error
	s := &Set{}
	ids := map[string]bool{}
	off := map[string]bool{}
	for _, id := range disable {
		off[id] = true
	}
	if builtin {
		for _, b := range Builtin() {
			ids[b.ID] = true
			if !off[b.ID] {
				s.rules = append(s.rules, b)
			}
			delete(off, b.ID)
		}
	}
	for id := range off {
		errs = append(errs, fmt.Errorf("disable: %q is not a built-in rule", id))
	}
	for i, sp := range specs {
		r, err := Compile(sp)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		if ids[r.ID] {
			errs = append(errs, fmt.Errorf("rules[%d]: id %q is already used", i, r.ID))
			continue
		}
		ids[r.ID] = true
		s.rules = append(s.rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.index()
	return s, nil
}

// Rules returns the set's rules in evaluation order.
func (s *Set) Rules() []*Rule { return s.rules }

// Match appends to dst the rules ev matches. Rate rules are included only
// if withRate is set: whether they fire depends on the events before.
func (s *Set) Match(line []byte, ev *auditjson.Event, withRate bool, dst []*Rule) []*Rule {
	d := doc{line: line, ev: ev}
	candidates, ok := s.byResource[string(ev.Resource)]
	if !ok {
		candidates = s.other
	}
	for _, r := range candidates {
		if r.Rate != nil && !withRate {
			continue
		}
		if r.matches(ev, &d) {
			dst = append(dst, r)
		}
	}
	return dst
}
