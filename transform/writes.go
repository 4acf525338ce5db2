package transform

import (
	"context"
	"fmt"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
)

// Writes turns one change into the target writes of mapping m: the stream's
// rule, which the backfill's copies and the dead-letter replay share. An
// error is a poison change: reason says why, for the dead-letter topic.
func Writes(ctx context.Context, m *Mapping, ev *change.Event) ([]change.Write, string, error) {
	switch ev.Op {
	case change.OpCreate, change.OpUpdate, change.OpRead:
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
			return nil, "transform", err
		}
		var out []change.Write
		// Outputs the row no longer matches (`when` turned false) lose their row.
		for _, k := range gone {
			out = append(out, change.Write{Table: k.Table, Op: change.WriteDelete, Key: k.Key, Row: k.Columns})
		}
		if ev.Op == change.OpUpdate && ev.Before != nil {
			// The source key changed: delete target rows whose key moved.
			olds, err := m.Keys(ctx, ev.Before)
			if err != nil {
				return nil, "transform", err
			}
			for _, k := range olds {
				if !producesKey(rows, k) {
					out = append(out, change.Write{Table: k.Table, Op: change.WriteDelete, Key: k.Key, Row: k.Columns})
				}
			}
		}
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
		return out, "", nil
	case change.OpDelete:
		keys, err := m.Keys(ctx, ev.Before)
		if err != nil {
			return nil, "transform", err
		}
		out := make([]change.Write, 0, len(keys))
		for _, k := range keys {
			out = append(out, change.Write{Table: k.Table, Op: change.WriteDelete, Key: k.Key, Row: k.Columns})
		}
		return out, "", nil
	case change.OpTruncate:
		return nil, "truncate", fmt.Errorf("TRUNCATE of source table %s is not applied to the target: delete the target rows yourself if that is what you want", ev.Table)
	}
	return nil, "unsupported_op", fmt.Errorf("unsupported change op %q", ev.Op)
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

func producesKey(rows []Row, k Key) bool {
	id := change.RowID(k.Table, k.Key, k.Columns)
	return slices.ContainsFunc(rows, func(r Row) bool { return change.RowID(r.Table, r.Key, r.Columns) == id })
}
