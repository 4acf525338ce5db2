package config

import (
	"cmp"
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

// Error returns the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
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
