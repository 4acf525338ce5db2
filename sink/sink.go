package sink

import (
	"context"
	"fmt"
	"strings"
)

// Op is what a Write does to its target row.
type Op int

// The write kinds.
const (
	// Upsert inserts the row or overwrites the named columns of an existing one.
	Upsert Op = iota + 1
	// InsertIfAbsent inserts the row unless one with the same key exists.
	InsertIfAbsent
	// Delete removes the row with the key, if any.
	Delete
)

// String names the op for logs and metrics.
func (o Op) String() string {
	switch o {
	case Upsert:
		return "upsert"
	case InsertIfAbsent:
		return "insert_if_absent"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Write is one change to one target row.
type Write struct {
	Table string         // target table, "schema.table" or "table"
	Op    Op             //
	Key   []string       // key column names; Row holds their values
	Row   map[string]any // columns to write (for Delete: the key columns only)
}

// Batch is target-row changes in the order they must take effect.
type Batch struct {
	Writes []Write
}

// Offset is the next Kafka offset to consume on one partition.
type Offset struct {
	Topic     string
	Partition int32
	Next      int64
}

// Checkpoint is where a consumer group stands, stored with the rows it
// produced. Epoch names the Kafka cluster the offsets belong to.
type Checkpoint struct {
	Group   string
	Epoch   string
	Offsets []Offset
}

// Sink writes target rows.
type Sink interface {
	// Apply writes the batch and stores the checkpoint in one transaction:
	// both or neither. Stored offsets never move backwards. Applying the
	// same batch again leaves the target unchanged. Blocks; safe for
	// concurrent use by several consumers.
	Apply(ctx context.Context, b Batch, cp Checkpoint) error
	// Offsets returns the stored offsets of group that belong to epoch.
	Offsets(ctx context.Context, group, epoch string) ([]Offset, error)
	// Close releases connections.
	Close() error
}

// Compact reduces writes to at most one per (table, key), keeping the
// effect of applying them in order: a later Upsert or Delete replaces what
// came before; an InsertIfAbsent after a Delete becomes an Upsert (the row
// is gone, so it is created), and after an Upsert or InsertIfAbsent it does
// nothing (the row exists). Writes keep the order of their first appearance.
func Compact(writes []Write) []Write {
	index := make(map[string]int, len(writes))
	out := make([]Write, 0, len(writes))
	var sb strings.Builder
	for _, w := range writes {
		sb.Reset()
		sb.WriteString(w.Table)
		for _, k := range w.Key {
			sb.WriteByte(0)
			fmt.Fprint(&sb, w.Row[k])
			sb.WriteByte(1)
			fmt.Fprintf(&sb, "%T", w.Row[k])
		}
		id := sb.String()
		i, seen := index[id]
		if !seen {
			index[id] = len(out)
			out = append(out, w)
			continue
		}
		prev := out[i]
		switch {
		case w.Op != InsertIfAbsent:
			out[i] = w
		case prev.Op == Delete:
			w.Op = Upsert
			out[i] = w
		default:
			// the row exists already: InsertIfAbsent does nothing.
		}
	}
	return out
}
