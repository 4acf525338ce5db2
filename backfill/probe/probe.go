// Package probe writes a backfill's sample chunks where nothing is
// visible: into session-temporary copies of the target tables (CREATE
// TEMPORARY TABLE ... LIKE, with the real table's columns and indexes),
// which no other session sees and which go when the session ends. `tandem
// backfill --estimate` times the target's side of the copy with it.
//
// A probe is a sink.Sink whose Apply writes a batch's copies as the
// target's sink writes them (PostgreSQL: COPY FROM STDIN, the statement a
// verbatim chunk goes in by; MariaDB: multi-row INSERT ... ON DUPLICATE
// KEY UPDATE, in statements as large as the sink's), one transaction per
// batch, but into the temporary copies and without the state reads a
// real copy adds (tombstones, the copy lock), and the PostgreSQL probe a
// sink.TextCopier. Every connection of its pool holds its own copies, so
// chunks are written several at once, as the copy writes them.
package probe

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
)

// tempName is the name of the temporary copy of target table table.
func tempName(table string) string {
	h := fnv.New64a()
	h.Write([]byte(table))
	return fmt.Sprintf("tandem_estimate_%016x", h.Sum64())
}

// group is copies of one table with one column set.
type group struct {
	table string
	key   []string
	cols  []string // sorted
	rows  []map[string]any
}

// groups groups the copies of a batch by table and column set, in the
// order they come.
func groups(writes []change.Write) ([]*group, error) {
	var out []*group
	at := map[string]*group{}
	for _, w := range writes {
		if w.Op != change.WriteCopy {
			return nil, fmt.Errorf("probe: a write of op %v into %s: only copies are written", w.Op, w.Table)
		}
		cols := slices.Sorted(maps.Keys(w.Row))
		k := w.Table + "\x00" + strings.Join(cols, "\x00")
		g := at[k]
		if g == nil {
			g = &group{table: w.Table, key: w.Key, cols: cols}
			at[k] = g
			out = append(out, g)
		}
		g.rows = append(g.rows, w.Row)
	}
	return out, nil
}
