package transform

import (
	"context"
	"fmt"
	"slices"

	"cel.dev/cel-go/common/types"

	"github.com/tandemcdc/tandem/internal/change"
)

// Writes turns one change into the target writes of mapping m: the stream's
// rule, which the backfill's copies and the dead-letter replay share. An
// error is a poison change: reason says why, for the dead-letter topic.
//
// What a change takes away from an output (a delete, an update that moves
// its key, or one that makes its `when` false) is a WriteDelete of the
// output's row, or, for an output with on_delete: clear, a WriteUpsert
// that sets the output's columns other than the key to NULL and keeps the
// row (another mapping owns the rest of it). A clear is never a delete: it
// leaves no tombstone, which would stop a backfill from copying the row of
// the mapping that owns it. A clear of a row that does not exist creates
// one (a row of NULLs but for the key), so a clear is
// written only when the before-image shows the output's `when` held (or
// cannot tell: a key-only before-image); an update without a before-image
// (PostgreSQL without REPLICA IDENTITY FULL) clears nothing when its
// `when` turns false.
//
// Compiled WithCohorts, every write carries the cohort of the source row
// it comes from: an upsert the after-image's, a removal the before-image's
// (a before-image without the cohort column is an error: cutover needs the
// full before-image).
func Writes(ctx context.Context, m *Mapping, ev *change.Event) ([]change.Write, string, error) {
	switch ev.Op {
	case change.OpCreate, change.OpUpdate, change.OpRead:
		out, err := m.upserts(ctx, ev)
		if err != nil {
			return nil, "transform", err
		}
		return out, "", nil
	case change.OpDelete:
		out, err := m.removals(ctx, ev.Before, nil)
		if err == nil {
			err = m.setCohorts(out, ev.Before, beforeImage)
		}
		if err != nil {
			return nil, "transform", err
		}
		return out, "", nil
	case change.OpTruncate:
		return nil, "truncate", fmt.Errorf("TRUNCATE of source table %s is not applied to the target: delete the target rows yourself if that is what you want", ev.Table)
	}
	return nil, "unsupported_op", fmt.Errorf("unsupported change op %q", ev.Op)
}

// upserts is Writes for an insert, an update or a backfilled row.
func (m *Mapping) upserts(ctx context.Context, ev *change.Event) ([]change.Write, error) {
	var (
		rows []Row
		gone []Key
		err  error
	)
	if ev.Op == change.OpUpdate {
		rows, gone, err = m.ApplyUpdate(ctx, ev.After, unsent(ev))
	} else {
		rows, err = m.Apply(ctx, ev.After)
	}
	if err != nil {
		return nil, err
	}
	var out []change.Write
	// Outputs the row no longer matches (`when` turned false) lose their row.
	// A clear output's are taken from the before-image below: only a row
	// it held is cleared, never one at a key it did not have.
	var deleted []Key
	for _, k := range gone {
		if k.Clear == nil {
			deleted = append(deleted, k)
			out = append(out, removal(k))
		}
	}
	if ev.Op == change.OpUpdate && ev.Before != nil {
		// The source key changed: take away target rows whose key moved.
		moved, err := m.removals(ctx, ev.Before, func(k Key) bool { return !producesKey(rows, k) && !slices.ContainsFunc(deleted, k.same) })
		if err != nil {
			return nil, err
		}
		out = append(out, moved...)
	}
	// What the change takes away has the cohort the row had, what it writes
	// the cohort it has now.
	if err := m.setCohorts(out, ev.Before, beforeImage); err != nil {
		return nil, err
	}
	removed := len(out)
	for _, r := range rows {
		op := change.WriteUpsert
		switch {
		case ev.Op == change.OpRead:
			op = change.WriteCopy // a backfilled row: the stream's rows win, its deletes stay
		case r.CreateIfAbsent:
			op = change.WriteInsertIfAbsent
		}
		out = append(out, change.Write{Table: r.Table, Op: op, Key: r.Key, Row: r.Columns})
	}
	if err := m.setCohorts(out[removed:], ev.After, afterImage); err != nil {
		return nil, err
	}
	return out, nil
}

// removals is the writes that take away the target rows before, a source
// row's before-image, produced (those of the keys that pass keep, when keep
// is not nil): each a removal, but for a clear whose output's `when` did not
// hold on before.
func (m *Mapping) removals(ctx context.Context, before change.Row, keep func(Key) bool) ([]change.Write, error) {
	keys, err := m.Keys(ctx, before)
	if err != nil {
		return nil, err
	}
	out := make([]change.Write, 0, len(keys))
	for _, k := range keys {
		if keep != nil && !keep(k) || k.Clear != nil && !m.held(ctx, k, before) {
			continue
		}
		out = append(out, removal(k))
	}
	return out, nil
}

// removal is the write that takes away the row of key k: a delete, or for
// on_delete: clear an upsert of NULLs into the output's other columns.
func removal(k Key) change.Write {
	if k.Clear == nil {
		return change.Write{Table: k.Table, Op: change.WriteDelete, Key: k.Key, Row: k.Columns}
	}
	row := make(map[string]any, len(k.Columns)+len(k.Clear))
	for c, v := range k.Columns {
		row[c] = v
	}
	for _, c := range k.Clear {
		row[c] = nil
	}
	return change.Write{Table: k.Table, Op: change.WriteUpsert, Key: k.Key, Row: row}
}

// held reports whether the `when` of k's output held on r, a before-image:
// true without a `when`, and when r lacks what `when` reads (a key-only
// before-image), so that a clear is never skipped for want of data.
func (m *Mapping) held(ctx context.Context, k Key, r change.Row) bool {
	i := slices.IndexFunc(m.outputs, func(o *output) bool { return o.table == k.Table && slices.Equal(o.key, k.Key) })
	if i < 0 || m.outputs[i].when == nil {
		return true
	}
	v, _, err := m.outputs[i].when.Eval(m.evaluation(ctx, r).vars)
	b, ok := v.(types.Bool)
	return err != nil || !ok || bool(b)
}

// unsent lists the columns an update did not carry (unchanged TOASTed
// values): those in the envelope's types but not in its after-image.
func unsent(ev *change.Event) map[string]bool {
	if len(ev.After) == len(ev.Types) {
		return nil // every column was sent
	}
	var out map[string]bool
	for c := range ev.Types {
		if _, ok := ev.After[c]; !ok {
			if out == nil {
				out = map[string]bool{}
			}
			out[c] = true
		}
	}
	return out
}

// same reports whether k and o are the key of one target row.
func (k Key) same(o Key) bool {
	return change.RowID(k.Table, k.Key, k.Columns) == change.RowID(o.Table, o.Key, o.Columns)
}

func producesKey(rows []Row, k Key) bool {
	id := change.RowID(k.Table, k.Key, k.Columns)
	return slices.ContainsFunc(rows, func(r Row) bool { return change.RowID(r.Table, r.Key, r.Columns) == id })
}
