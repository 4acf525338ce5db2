package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a config file. Msg never contains a DSN or a value
// that came from a ${VAR}.
type Error struct {
	Pos  Pos    // where the problem is; Line is 0 when the value is absent from the file
	Path string // the value's path, e.g. "mappings[0].to[1].key"; "" for the file as a whole
	Msg  string // what is wrong, e.g. "must list at least one column"
}

// Error returns "file:line:col: path: msg", leaving out the parts that are
// empty.
func (e *Error) Error() string {
	var b strings.Builder
	if p := e.Pos.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config, in file order. Parse, Load and
// Validate return a non-empty Errors, never an empty one. errors.As finds it,
// and also its first *Error.
type Errors []*Error

// Shown problems: Errors.Error prints at most maxShownErrors of them, each
// cut at maxErrorLine bytes, so that a huge or garbled file (megabytes of
// one bad value, thousands of bad entries) gives a readable message in
// which the first problem stands out. errors.As still finds every one.
const (
	maxShownErrors = 20
	maxErrorLine   = 1000
)

// Error returns the first problems one per line (maxShownErrors, each cut
// at maxErrorLine bytes), and how many more there are.
func (es Errors) Error() string {
	lines := make([]string, 0, min(len(es), maxShownErrors)+1)
	for _, e := range es[:min(len(es), maxShownErrors)] {
		line := e.Error()
		if len(line) > maxErrorLine {
			line = strings.ToValidUTF8(line[:maxErrorLine], "") + fmt.Sprintf("... (%d bytes more)", len(line)-maxErrorLine)
		}
		lines = append(lines, line)
	}
	if more := len(es) - maxShownErrors; more > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more problems: fix these first", more))
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders errors by position, those without a line last, keeping
// the order of errors at the same place.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Pos.Line == 0) != (b.Pos.Line == 0) {
			if a.Pos.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}
