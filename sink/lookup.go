package sink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Lookuper reads one target row by column values, for mapping lookups
// (lookup("schema.table", {"legacy_id": row.customer_id}) finds the id the
// new system gave a row the old one knew by another).
type Lookuper interface {
	// Lookup returns the row of table whose columns equal where's values
	// (all of them), found=false when there is none. More than one
	// matching row is an error naming the table and columns, wrapping
	// ErrNotUnique (the lookup columns must be unique).
	//
	// Values come back as the capturers type them: int64 for integer
	// columns, float64 for floating point, bool, []byte for binary, and
	// the exact text form (string) for everything else (numeric, uuid,
	// timestamps, json...); NULL as nil.
	//
	// A nil value in where matches no row, as SQL's = does: the result is
	// found=false without a query. (IS NULL would not do: a unique index
	// admits any number of NULLs, and a source row without a reference
	// has no target row to find.) An empty where is an error. A table or
	// column the target lacks is a *Error wrapping ErrTableNotFound or
	// ErrColumnNotFound.
	//
	// Lookup blocks on one query and caches nothing but statement text;
	// callers cache rows. Safe for concurrent use.
	Lookup(ctx context.Context, table string, where map[string]any) (row map[string]any, found bool, err error)
}

// ErrNotUnique is wrapped when a lookup matches more than one row.
var ErrNotUnique = errors.New("lookup matches more than one row: its columns must be unique")

// LookupColumns returns where's columns, sorted, so a statement's text
// depends on the set of columns only. hasNil reports whether a value is
// nil (then nothing matches). An empty where is an error.
func LookupColumns(table string, where map[string]any) (cols []string, hasNil bool, err error) {
	if len(where) == 0 {
		return nil, false, fmt.Errorf("lookup in %s: no columns to match", table)
	}
	cols = make([]string, 0, len(where))
	for c, v := range where {
		cols = append(cols, c)
		hasNil = hasNil || v == nil
	}
	slices.Sort(cols)
	return cols, hasNil, nil
}

// NotUniqueError is the error of a lookup of table by cols that matched
// more than one row.
func NotUniqueError(table string, cols []string) error {
	return fmt.Errorf("lookup in %s by (%s): %w", table, strings.Join(cols, ", "), ErrNotUnique)
}
