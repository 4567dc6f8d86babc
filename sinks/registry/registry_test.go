package registry

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/auditrail/auditrail/internal/config"
)

// Every entry of the table is complete: a name of its own, a constructor,
// a section (if any) that config decodes strictly, defaults and validates
// under its key, and batch defaults a sink of the type starts from.
func TestEveryTypeIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range Types {
		t.Run(typ.Name, func(t *testing.T) {
			if typ.Name == "" || seen[typ.Name] {
				t.Fatalf("name %q is empty or used twice", typ.Name)
			}
			seen[typ.Name] = true
			if typ.New == nil {
				t.Error("no constructor")
			}
			if got, ok := Lookup(typ.Name); !ok || got.Name != typ.Name {
				t.Errorf("Lookup(%q) = %v, %v", typ.Name, got.Name, ok)
			}
			head := "auditLogPath: /a/audit.log\nsinks:\n  - type: " + typ.Name + "\n"
			if typ.NewSection == nil {
				checkNoSection(t, typ, head)
				return
			}
			a, b := typ.NewSection(), typ.NewSection()
			if a == nil || fmt.Sprintf("%p", a) == fmt.Sprintf("%p", b) {
				t.Fatal("NewSection does not return a new section each time")
			}
			if a.ApplyDefaults(); reflect.DeepEqual(a, b) {
				t.Error("ApplyDefaults sets no default")
			}
			// Strict: an unknown key in the section is refused, by name.
			_, err := config.Parse([]byte(head+"    "+typ.Name+": {surelyNotAKey: 1}\n"), Schema())
			if err == nil || !strings.Contains(err.Error(), "field surelyNotAKey not found") {
				t.Errorf("unknown key in the section: error %v", err)
			}
			// Validation quotes the section's key in every error.
			_, err = config.Parse([]byte(head+"    "+typ.Name+": {}\n"), Schema())
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					if !strings.HasPrefix(line, "sinks[0]."+typ.Name) {
						t.Errorf("error %q does not name the key sinks[0].%s", line, typ.Name)
					}
				}
			}
		})
	}
}

// checkNoSection checks a type without a section: a sink of it parses
// with its batch defaults, and is built with its name.
func checkNoSection(t *testing.T, typ Type, head string) {
	c, err := config.Parse([]byte(head), Schema())
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Sinks[0]
	if want := typ.Batch.MaxEvents; sc.Batch.MaxEvents < 1 || want != 0 && sc.Batch.MaxEvents != want {
		t.Errorf("batch defaults %+v", sc.Batch)
	}
	s, err := typ.New(context.Background(), "n", sc.Section, Env{})
	if err != nil || s.Name() != "n" {
		t.Fatalf("New = %v, %v", s, err)
	}
	s.Close(context.Background())
}
