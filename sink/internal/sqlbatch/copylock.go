package sqlbatch

import (
	"maps"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
)

// CopyLock is a table whose copy lock a batch takes (see Copy): to copy
// into it (Copies), or only to delete from it.
type CopyLock struct {
	Table  string
	Copies bool
	// Shared: the batch only copies (a backfill's chunk), so it may hold
	// the lock together with other such batches; a batch that deletes
	// from the table holds it alone.
	Shared bool
}

// OnlyCopies reports whether every write is a Copy, as in a backfill's
// chunk.
func OnlyCopies(writes []change.Write) bool {
	for i := range writes {
		if writes[i].Op != change.WriteCopy {
			return false
		}
	}
	return true
}

// CopyLocks returns the tables whose copy locks a batch of writes takes,
// in table order: a sink takes them in that order, first in the batch's
// transaction, so that two batches never wait for each other in a cycle.
func CopyLocks(writes []change.Write) []CopyLock {
	var copies map[string]bool
	for i := range writes {
		w := &writes[i]
		if w.Op != change.WriteCopy && w.Op != change.WriteDelete {
			continue
		}
		if copies == nil {
			copies = map[string]bool{}
		}
		copies[w.Table] = copies[w.Table] || w.Op == change.WriteCopy
	}
	out := make([]CopyLock, 0, len(copies))
	shared := OnlyCopies(writes)
	for _, t := range slices.Sorted(maps.Keys(copies)) {
		out = append(out, CopyLock{Table: t, Copies: copies[t], Shared: shared})
	}
	return out
}
