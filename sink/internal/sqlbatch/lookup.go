package sqlbatch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tandemcdc/tandem/sink"
)

// LookupBy is the part of Lookup every sink shares: it checks where, sorts
// its columns (so a statement's text depends on the set of columns only),
// answers not found for a nil value without asking, and calls query, which
// returns the first row matching every column of cols (nil if none) and
// how many rows matched, up to 2. It turns two into a *sink.Error wrapping
// sink.ErrNotUnique (reason not_unique); query's errors it returns as they are.
func LookupBy(table string, where map[string]any, query func(cols []string) (row map[string]any, n int, err error)) (map[string]any, bool, error) {
	if len(where) == 0 {
		return nil, false, fmt.Errorf("lookup in %s: no columns to match", table)
	}
	cols := make([]string, 0, len(where))
	for c, v := range where {
		if v == nil {
			return nil, false, nil
		}
		cols = append(cols, c)
	}
	slices.Sort(cols)
	row, n, err := query(cols)
	switch {
	case err != nil:
		return nil, false, err
	case n > 1:
		return nil, false, &sink.Error{Table: table, Reason: sink.ReasonNotUnique,
			Err: fmt.Errorf("lookup in %s by (%s): %w", table, quoteJoin(cols), sink.ErrNotUnique)}
	}
	return row, n == 1, nil
}

// quoteJoin lists names quoted, so that "a,b" is not a and b.
func quoteJoin(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// KeyColumns is the part of a LookupKeys every sink shares: the columns
// of keys, sorted, which must be the same in every key (and at least one).
func KeyColumns(table string, keys []map[string]any) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cols := make([]string, 0, len(keys[0]))
	for c := range keys[0] {
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("lookup in %s: no columns to match", table)
	}
	slices.Sort(cols)
	for _, k := range keys[1:] {
		same := len(k) == len(cols)
		for _, c := range cols {
			if _, ok := k[c]; !ok {
				same = false
			}
		}
		if !same {
			return nil, fmt.Errorf("lookup in %s: keys of other columns than (%s)", table, quoteJoin(cols))
		}
	}
	return cols, nil
}
