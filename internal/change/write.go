package change

import (
	"fmt"
	"strconv"
	"strings"
)

// WriteOp is what a Write does to its target row.
type WriteOp int

// The write kinds.
const (
	// WriteUpsert inserts the row or overwrites the named columns of an existing one.
	WriteUpsert WriteOp = iota + 1
	// WriteInsertIfAbsent inserts the row unless one with the same key exists.
	WriteInsertIfAbsent
	// WriteDelete removes the row with the key, if any. While a backfill is
	// active (see sink.BackfillStore) it also leaves a tombstone for the key.
	WriteDelete
	// WriteCopy is a row copied by backfill: inserted unless a row with the key
	// exists (the stream wins) or a tombstone says the stream deleted it
	// while the backfill was active (it must not come back). Copies are
	// applied beside the stream, in no order with it: a sink holds a
	// table's copy lock through a transaction that copies into it, and
	// through one that deletes from it while a backfill is active, so that
	// the two never overlap (see sink.BackfillStore).
	WriteCopy
)

// String names the op for logs and metrics.
func (o WriteOp) String() string {
	switch o {
	case WriteUpsert:
		return "upsert"
	case WriteInsertIfAbsent:
		return "insert_if_absent"
	case WriteDelete:
		return "delete"
	case WriteCopy:
		return "copy"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Write is one change to one target row.
type Write struct {
	Table string         // target table, "schema.table" or "table"
	Op    WriteOp        //
	Key   []string       // key column names; Row holds their values
	Row   map[string]any // columns to write (for Delete: the key columns only)
	// Cohort is the cohort of the source row the write comes from, when
	// cutover is configured: a sink applies the write only while the
	// batch's direction owns the cohort (see sink.Batch.Side). "": always.
	Cohort string
}

// KeyText is the canonical text of a target row's key values, as sinks
// store it in tombstones: a JSON array of each value's text ("[\"42\"]"),
// so int 42 and int64 42 are one key, as SQL compares them once cast.
func KeyText(key []string, row map[string]any) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, k := range key {
		if i > 0 {
			sb.WriteByte(',')
		}
		v := row[k]
		if b, ok := v.([]byte); ok {
			v = fmt.Sprintf("\\x%x", b)
		}
		sb.WriteString(strconv.Quote(fmt.Sprint(v)))
	}
	sb.WriteByte(']')
	return sb.String()
}

// RowID identifies a target row: its table and key values. Values compare
// by their text, as SQL compares them once cast: int 1 and int64 1 are one
// key.
func RowID(table string, key []string, row map[string]any) string {
	b := make([]byte, 0, len(table)+24*len(key))
	b = append(b, table...)
	for _, k := range key {
		b = append(b, 0)
		switch v := row[k].(type) { // as fmt.Sprint writes them, without its cost
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			b = append(b, v...)
		default:
			b = fmt.Append(b, v)
		}
	}
	return string(b)
}
