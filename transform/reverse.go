package transform

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// Reverse is a mapping run backwards, for the reverse stream of a cutover:
// a change of a row of one of the mapping's output tables (the new schema)
// becomes the write that brings the old schema's row in step. It does not
// replay the change: it rebuilds the old row from the current rows of
// every output, through the mapping's inverse, so changes of the several
// tables an old row became may arrive in any order and in any number.
// A Reverse is pure but for the CurrentRow it is handed: safe for
// concurrent use.
type Reverse struct {
	m         *Mapping
	sourceKey []string
	// copies[i][s] is the column of output i that copies source key column
	// s as it is; keys[i][k] the source key column output i's key column k
	// copies.
	copies []map[string]string
	keys   []map[string]string
	// cohorts[i] is the column of output i holding a row's cohort; "" when
	// the mapping has none.
	cohorts []string
}

// CurrentRow reads the current row of a table of the new schema (an output
// table, as configured) by the values of its key columns. found is false
// when there is no such row.
type CurrentRow func(ctx context.Context, table string, key map[string]any) (row map[string]any, found bool, err error)

// NewReverse returns the reverse of m, whose source table's key is
// sourceKey. It refuses a mapping a change of a new row cannot lead back
// to its old row with: one without an inverse, one with an output whose key
// is not the source key copied as it is or that does not copy every column
// of the source key as it is, and, when the mapping has a cohort, one
// whose inverse does not give the cohort back or whose output has no
// cohort column.
func NewReverse(m *Mapping, sourceKey []string) (*Reverse, error) {
	if m.inverse == nil {
		return nil, fmt.Errorf("mapping %s has no inverse: the reverse stream rebuilds the old row of %s through it; add inverse.columns computing each of its columns from the new rows", m.Name, m.From)
	}
	if len(sourceKey) == 0 {
		return nil, fmt.Errorf("mapping %s: source table %s has no key: the reverse stream needs it to find the old row", m.Name, m.From)
	}
	r := &Reverse{m: m, sourceKey: slices.Clone(sourceKey)}
	var errs []error
	for _, o := range m.outputs {
		copies, keys := map[string]string{}, map[string]string{}
		for _, c := range o.columns {
			if slices.Contains(sourceKey, c.direct) {
				if _, ok := copies[c.direct]; !ok {
					copies[c.direct] = c.name
				}
			}
			if !slices.Contains(o.key, c.name) {
				continue
			}
			if !slices.Contains(sourceKey, c.direct) {
				errs = append(errs, fmt.Errorf("%s: mapping %s: key column %s of %s is %s, not a column of the source key (%s) copied as it is: the reverse stream finds the old row by it; make it row.<key column>, or give %s a key that is",
					o.pos, m.Name, c.name, o.table, c.text, strings.Join(sourceKey, ", "), o.table))
				continue
			}
			keys[c.name] = c.direct
		}
		for _, s := range sourceKey {
			if _, ok := copies[s]; !ok {
				errs = append(errs, fmt.Errorf("%s: mapping %s: %s does not copy source key column %s as it is, so a change of its rows does not tell which old row it is of; add a column such as %s: row.%s to %s",
					o.pos, m.Name, o.table, s, s, s, o.table))
			}
		}
		r.copies, r.keys = append(r.copies, copies), append(r.keys, keys)
		col, err := m.OutputCohortColumn(o.table)
		if err != nil {
			errs = append(errs, err)
		}
		r.cohorts = append(r.cohorts, col)
	}
	if m.cohort != "" && !slices.ContainsFunc(m.inverse.columns, func(c column) bool { return c.name == m.cohort }) {
		errs = append(errs, fmt.Errorf("mapping %s: the inverse does not give back the cohort column %s, so the old rows the reverse stream writes would have no cohort; add inverse.columns.%s",
			m.Name, m.cohort, m.cohort))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Tables returns the output tables whose changes the reverse consumes, as
// configured, in file order.
func (r *Reverse) Tables() []string {
	out := make([]string, len(r.m.outputs))
	for i, o := range r.m.outputs {
		out[i] = o.table
	}
	return out
}

// Writes turns a change of a row of table, one of Tables, into the writes
// of the old row it is a part of: the old row's key is read from the
// changed row (ev.After, or ev.Before for a delete), the current row of
// every output is read by it through current, and
//   - when the primary output (to[0], the row the old row's key comes from)
//     has no row, the old row is deleted: a WriteDelete of the source table
//     by sourceKey;
//   - otherwise the old row is the inverse of the current rows (an output
//     without a row is an empty map, as for Mapping.Inverse): a WriteUpsert
//     of every column the inverse gives back, and the key.
//
// An update that moves the changed row to another old key (its before-image
// has another) rebuilds the old row of the key it left first. Each write's
// Cohort is the old row's cohort (CohortOf of its cohort column), that of a
// delete taken from the changed row's cohort column; config.DefaultCohort
// when the mapping has no cohort.
func (r *Reverse) Writes(ctx context.Context, table string, ev *change.Event, current CurrentRow) ([]change.Write, error) {
	i, olds, err := r.oldRows(table, ev)
	if err != nil {
		return nil, err
	}
	var out []change.Write
	for _, o := range olds {
		ws, err := r.rebuild(ctx, i, o.changed, o.image, o.key, current)
		if err != nil {
			return nil, err
		}
		out = append(out, ws...)
	}
	return out, nil
}

// KeyRead is a current row of the new schema that Writes reads: an output
// table, as configured, and the values of its key columns, the key
// Writes hands its CurrentRow.
type KeyRead struct {
	Table string
	Key   map[string]any
}

// Reads returns the current rows Writes reads through its CurrentRow for
// the same change, in the order it reads them: those of every output by
// the old row's key, and first, for an update that moves the changed row
// to another old key, by the key it left. It reads nothing itself, so a
// caller can read the rows of many changes at once (one query a table)
// and hand Writes a CurrentRow that answers from them. A change Writes
// refuses (a truncate, a row without its key) is an error, the same.
func (r *Reverse) Reads(table string, ev *change.Event) ([]KeyRead, error) {
	_, olds, err := r.oldRows(table, ev)
	if err != nil {
		return nil, err
	}
	out := make([]KeyRead, 0, len(olds)*len(r.m.outputs))
	for _, o := range olds {
		for j, ot := range r.m.outputs {
			out = append(out, KeyRead{Table: ot.table, Key: r.outputKey(j, o.key)})
		}
	}
	return out, nil
}

// oldRow is an old row a change of a new row leads to: its key, and the
// image (named by image) of the changed row it was read from.
type oldRow struct {
	changed change.Row
	image   string
	key     map[string]any
}

// oldRows returns the index of table among the outputs and the old rows
// the change ev of one of its rows leads to, in the order Writes rebuilds
// them: for an update that moves the row to another old key, the one it
// left first.
func (r *Reverse) oldRows(table string, ev *change.Event) (int, []oldRow, error) {
	i := slices.IndexFunc(r.m.outputs, func(o *output) bool { return o.table == table })
	if i < 0 {
		return 0, nil, fmt.Errorf("mapping %s: a change of %s, which is not one of its output tables (%s)", r.m.Name, table, strings.Join(r.Tables(), ", "))
	}
	var row change.Row
	image := afterImage
	switch ev.Op {
	case change.OpCreate, change.OpUpdate, change.OpRead:
		row = ev.After
	case change.OpDelete:
		row, image = ev.Before, beforeImage
	case change.OpTruncate:
		return 0, nil, fmt.Errorf("mapping %s: TRUNCATE of %s is not applied to the old schema's %s: delete its rows yourself if that is what you want", r.m.Name, table, r.m.From)
	default:
		return 0, nil, fmt.Errorf("mapping %s: unsupported change op %q of %s", r.m.Name, ev.Op, table)
	}
	if row == nil {
		return 0, nil, fmt.Errorf("mapping %s: a change (op %c) of %s without its %s", r.m.Name, ev.Op, table, image)
	}
	key, err := r.oldKey(i, table, row, image)
	if err != nil {
		return 0, nil, err
	}
	var out []oldRow
	if ev.Op == change.OpUpdate && ev.Before != nil {
		before, err := r.oldKey(i, table, ev.Before, beforeImage)
		if err != nil {
			return 0, nil, err
		}
		if change.RowID("", r.sourceKey, before) != change.RowID("", r.sourceKey, key) {
			out = append(out, oldRow{changed: ev.Before, image: beforeImage, key: before})
		}
	}
	return i, append(out, oldRow{changed: row, image: image, key: key}), nil
}

// oldKey reads the old row's key from row, an image (named by image) of a
// row of output i.
func (r *Reverse) oldKey(i int, table string, row change.Row, image string) (map[string]any, error) {
	key := make(map[string]any, len(r.sourceKey))
	for _, s := range r.sourceKey {
		col := r.copies[i][s]
		v, ok := row[col]
		if !ok {
			return nil, fmt.Errorf("mapping %s: the %s of the %s row has no column %s (the old row's key column %s)%s",
				r.m.Name, image, table, col, s, fullImage(image))
		}
		key[s] = v
	}
	return key, nil
}

// fullImage is what to do about a before-image that lacks a column.
func fullImage(image string) string {
	if image != beforeImage {
		return ""
	}
	return ": with cutover the new schema's tables need their full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)"
}

// rebuild returns the write of the old row of key from the current rows;
// changed is the image (named by image) of the row of output i the change
// is of, for a delete's cohort.
func (r *Reverse) rebuild(ctx context.Context, i int, changed change.Row, image string, key map[string]any, current CurrentRow) ([]change.Write, error) {
	rows, primary, err := r.Current(ctx, key, current)
	if err != nil {
		return nil, err
	}
	from := r.m.From.String()
	if !primary {
		cohort, err := r.changedCohort(i, changed, image)
		if err != nil {
			return nil, err
		}
		return []change.Write{{Table: from, Op: change.WriteDelete, Key: r.sourceKey, Row: key, Cohort: cohort}}, nil
	}
	back, err := r.m.Inverse(ctx, rows)
	if err != nil {
		return nil, err
	}
	for s, v := range key {
		back[s] = v
	}
	cohort := config.DefaultCohort
	if r.m.cohort != "" {
		cohort = CohortOf(back[r.m.cohort])
	}
	return []change.Write{{Table: from, Op: change.WriteUpsert, Key: r.sourceKey, Row: back, Cohort: cohort}}, nil
}

// outputKey is the key of output j's row of the old row of key: the
// values of its key columns, each the source key column it copies.
func (r *Reverse) outputKey(j int, key map[string]any) map[string]any {
	o := r.m.outputs[j]
	k := make(map[string]any, len(o.key))
	for _, c := range o.key {
		k[c] = key[r.keys[j][c]]
	}
	return k
}

// changedCohort is the cohort of changed, an image (named by image) of a
// row of output i: config.DefaultCohort when the mapping has no cohort.
func (r *Reverse) changedCohort(i int, changed change.Row, image string) (string, error) {
	col := r.cohorts[i]
	if col == "" {
		return config.DefaultCohort, nil
	}
	v, ok := changed[col]
	if !ok {
		return "", fmt.Errorf("mapping %s: the %s of the %s row has no cohort column %s%s",
			r.m.Name, image, r.m.outputs[i].table, col, fullImage(image))
	}
	return CohortOf(v), nil
}
