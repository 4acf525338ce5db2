// Package preflight holds the result type of tandem's checks (`tandem check`
// and the checks `tandem run` makes before it creates or writes anything):
// what is wrong, on which object, and how to fix it. It is a leaf; the
// capturers and sinks produce Problems about their own databases.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
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
	// Unreachable marks a Fail that says only that a server could not be
	// reached (refused, timed out, starting up or shutting down): a
	// condition to wait out, not a configuration to correct, so a role
	// starting waits for it instead of refusing to start.
	Unreachable bool
}

// UnreachableProblem returns the Fail problem of obj that err, a failure to
// connect, is: marked Unreachable when IsUnreachable(err).
func UnreachableProblem(obj string, err error, fix string) Problem {
	return Problem{Severity: Fail, Object: obj, What: fmt.Sprintf("cannot connect: %v", err), Fix: fix, Unreachable: IsUnreachable(err)}
}

// IsUnreachable reports whether err, from connecting to a server, says the
// server could not be reached rather than that it refused tandem: a
// network error (connection refused, no route, a timeout), or a SQLSTATE
// of class 08 (connection exception) or 57P (the server is starting up or
// shutting down). A wrong password or database is not unreachable.
func IsUnreachable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		state := coded.SQLState()
		return strings.HasPrefix(state, "08") || strings.HasPrefix(state, "57P")
	}
	return false
}

// OnlyUnreachable reports whether problems fail, and only because servers
// could not be reached.
func OnlyUnreachable(problems []Problem) bool {
	fails := 0
	for _, p := range problems {
		if p.Severity != Fail {
			continue
		}
		if !p.Unreachable {
			return false
		}
		fails++
	}
	return fails > 0
}

// AnyUnreachable reports whether a problem says a server could not be
// reached.
func AnyUnreachable(problems []Problem) bool {
	for _, p := range problems {
		if p.Unreachable {
			return true
		}
	}
	return false
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
