package sqlbatch

import (
	"fmt"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
)

// Compact reduces writes to rounds: within a round each (table, key)
// appears once, and applying the rounds in order has the effect of applying
// the writes in order. A later Upsert merges into an earlier one (its
// columns win); a Delete replaces whatever came before; an InsertIfAbsent
// after an Upsert or InsertIfAbsent does nothing (the row exists). What
// cannot be merged (an Upsert or InsertIfAbsent after a Delete, an Upsert
// after an InsertIfAbsent) goes to the next round, so a partial-column
// upsert never resurrects a deleted row's other columns. Writes keep the
// order of their first appearance within a round.
func Compact(writes []change.Write) [][]change.Write {
	type place struct{ round, i int }
	last := make(map[string]place, len(writes))
	rounds := [][]change.Write{make([]change.Write, 0, len(writes))}
	for _, w := range writes {
		id := change.RowID(w.Table, w.Key, w.Row)
		p, seen := last[id]
		if !seen {
			last[id] = place{0, len(rounds[0])} // nothing earlier to order after
			rounds[0] = append(rounds[0], w)
			continue
		}
		prev := &rounds[p.round][p.i]
		switch {
		case w.Op == change.WriteDelete:
			*prev = w
		case w.Op == change.WriteUpsert && prev.Op == change.WriteUpsert:
			merged := make(map[string]any, len(prev.Row)+len(w.Row))
			for c, v := range prev.Row {
				merged[c] = v
			}
			for c, v := range w.Row {
				merged[c] = v
			}
			w.Row = merged
			*prev = w
		case (w.Op == change.WriteInsertIfAbsent || w.Op == change.WriteCopy) && prev.Op != change.WriteDelete:
			// the row exists: nothing to do.
		default:
			r := p.round + 1
			if r == len(rounds) {
				rounds = append(rounds, nil)
			}
			last[id] = place{r, len(rounds[r])}
			rounds[r] = append(rounds[r], w)
		}
	}
	return rounds
}

// Group is writes of one round that one statement can apply: same table,
// op, key and column set.
type Group struct {
	Op    change.WriteOp
	Table string
	Key   []string
	Cols  []string // the written columns, sorted (the key columns for a change.WriteDelete)
	Rows  []map[string]any
}

// fits reports whether w belongs in g: same op, table and key, and, but
// for a delete, the same set of columns.
func (g *Group) fits(w change.Write) bool {
	if w.Op != g.Op || w.Table != g.Table || !slices.Equal(w.Key, g.Key) {
		return false
	}
	if w.Op == change.WriteDelete {
		return true
	}
	if len(w.Row) != len(g.Cols) {
		return false
	}
	for _, c := range g.Cols {
		if _, ok := w.Row[c]; !ok {
			return false
		}
	}
	return true
}

// Groups splits a compacted round into Groups, in first-appearance order
// except that deletes come first: after compaction no key is both deleted
// and written in a round, and deleting first keeps unique indexes other
// than the key from tripping on a row that moves from one key to another.
// A delete's tombstones go with it, so they too come before every copy of
// the round (a copy of a key deleted earlier in the batch is in a later
// round anyway).
func Groups(round []change.Write) []*Group {
	var order []*Group
	byID := map[string]*Group{}
	var last *Group
	for _, w := range round {
		// A batch's writes mostly come in runs of one shape: the group of
		// the write before is checked first, without building an id.
		if last != nil && last.fits(w) {
			last.Rows = append(last.Rows, w.Row)
			continue
		}
		cols := w.Key
		if w.Op != change.WriteDelete {
			cols = make([]string, 0, len(w.Row))
			for c := range w.Row {
				cols = append(cols, c)
			}
			slices.Sort(cols)
		}
		// %q: column names may hold commas (a column "a,b" is not a and b)
		id := fmt.Sprintf("%d %q %q %q", w.Op, w.Table, w.Key, cols)
		g, ok := byID[id]
		if !ok {
			g = &Group{Op: w.Op, Table: w.Table, Key: w.Key, Cols: cols}
			byID[id] = g
			order = append(order, g)
		}
		g.Rows = append(g.Rows, w.Row)
		last = g
	}
	slices.SortStableFunc(order, func(a, b *Group) int {
		da, db := a.Op == change.WriteDelete, b.Op == change.WriteDelete
		switch {
		case da && !db:
			return -1
		case db && !da:
			return 1
		}
		return 0
	})
	return order
}
