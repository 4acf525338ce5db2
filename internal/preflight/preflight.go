// Package preflight holds the result type of tandem's checks (`tandem check`
// and the checks `tandem run` makes before it creates or writes anything):
// what is wrong, on which object, and how to fix it. It is a leaf; the
// capturers and sinks produce Problems about their own databases.
package preflight

import (
	"fmt"
	"io"
)

// Severity says whether a Problem stops tandem.
type Severity int

// Severities.
const (
	Fail Severity = iota // tandem cannot run correctly: check exits 1, run refuses to start
	Warn                 // tandem runs, but something needs attention
)

// Problem is one finding.
type Problem struct {
	Severity Severity
	Object   string // what it is about: "source", "source table shop.orders", "target column public.orders.total"
	What     string // what is wrong
	Fix      string // how to fix it
}

// Print writes problems, one block each, and a summary line.
func Print(w io.Writer, problems []Problem) {
	fails := 0
	for _, p := range problems {
		mark := "FAIL"
		if p.Severity == Warn {
			mark = "WARN"
		} else {
			fails++
		}
		fmt.Fprintf(w, "%s  %s: %s\n", mark, p.Object, p.What)
		if p.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", p.Fix)
		}
	}
	switch {
	case len(problems) == 0:
		fmt.Fprintln(w, "ok: all checks passed")
	case fails == 0:
		fmt.Fprintf(w, "ok: %d warning(s), no failures\n", len(problems))
	default:
		fmt.Fprintf(w, "failed: %d problem(s), %d warning(s)\n", fails, len(problems)-fails)
	}
}

// HasFailures reports whether any problem has severity Fail.
func HasFailures(problems []Problem) bool {
	for _, p := range problems {
		if p.Severity == Fail {
			return true
		}
	}
	return false
}
