package transform

import (
	"context"
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
)

// OldKey returns the key of the old row a row of output table (as
// configured) is a part of: the source key columns it copies.
func (r *Reverse) OldKey(table string, row map[string]any) (map[string]any, error) {
	for i, o := range r.m.outputs {
		if o.table == table {
			return r.oldKey(i, table, row, afterImage)
		}
	}
	return nil, fmt.Errorf("mapping %s: %s is not one of its output tables", r.m.Name, table)
}

// Current returns the current rows of the new schema the old row with key
// is made of, read through current (an output without a row is left
// out), and whether the primary output (to[0]) has one: without it the
// old row should not exist.
func (r *Reverse) Current(ctx context.Context, key map[string]any, current CurrentRow) (rows []Row, primary bool, err error) {
	for j, o := range r.m.outputs {
		k := r.outputKey(j, key)
		cur, found, err := current(ctx, o.table, k)
		if err != nil {
			return nil, false, fmt.Errorf("mapping %s: read the current row of %s %s: %w", r.m.Name, o.table, change.KeyText(o.key, k), err)
		}
		if found {
			primary = primary || j == 0
			rows = append(rows, Row{Table: o.table, Key: o.key, Columns: cur})
		}
	}
	return rows, primary, nil
}

// Rebuild returns the write that makes the old row with key what the
// current rows of the new schema say, as Writes does for a change of one
// of them: an upsert of the inverse of the current rows, or a delete when
// the primary output has no row. cohort is the delete's cohort (the old
// row's); an upsert takes the cohort the inverse gives back.
func (r *Reverse) Rebuild(ctx context.Context, key map[string]any, cohort string, current CurrentRow) ([]change.Write, error) {
	changed := change.Row{}
	if col := r.cohorts[0]; col != "" {
		changed[col] = cohort
	}
	return r.rebuild(ctx, 0, changed, afterImage, key, current)
}
