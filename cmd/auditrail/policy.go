package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/auditrail/auditrail/policy"
)

// policyCmd runs the policy subcommands. lint exits 0 when the policy has
// no finding, 1 when it has any and 2 when it cannot run, as verify does.
func policyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "lint" {
		fmt.Fprintf(stderr, "usage: auditrail policy lint [--json] FILE\n")
		return 2
	}
	fs := flag.NewFlagSet("policy lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "usage: auditrail policy lint [--json] FILE\n")
		return 2
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "policy lint: %v\n", err)
		return 2
	}
	findings, err := policy.Lint(data)
	if err != nil {
		fmt.Fprintf(stderr, "policy lint: %s: %v\n", file, err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			File     string           `json:"file"`
			Findings []policy.Finding `json:"findings"`
		}{file, append([]policy.Finding{}, findings...)})
	} else {
		for _, f := range findings {
			fmt.Fprintf(stdout, "%s:%d: %s %s: %s\n", file, f.Line, f.Severity, f.Rule, f.Message)
		}
		if len(findings) == 0 {
			fmt.Fprintf(stdout, "%s: OK: no finding\n", file)
		}
	}
	if len(findings) > 0 {
		return 1
	}
	return 0
}
