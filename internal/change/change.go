package change

import (
	"fmt"
	"time"
)

// Op is the kind of a change, with Debezium's one-letter codes.
type Op byte

// The change kinds.
const (
	OpCreate   Op = 'c' // a row was inserted
	OpUpdate   Op = 'u' // a row was updated
	OpDelete   Op = 'd' // a row was deleted
	OpRead     Op = 'r' // a row was read by a snapshot or backfill
	OpTruncate Op = 't' // the whole table was truncated
)

// String returns the Debezium code ("c", "u", "d", "r", "t").
func (o Op) String() string { return string(rune(o)) }

// Name returns a word for metrics labels ("insert", "update", "delete", "read", "truncate").
func (o Op) Name() string {
	switch o {
	case OpCreate:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpRead:
		return "read"
	case OpTruncate:
		return "truncate"
	}
	return "unknown"
}

// ParseOp parses a Debezium op code.
func ParseOp(s string) (Op, error) {
	if len(s) == 1 {
		switch o := Op(s[0]); o {
		case OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate:
			return o, nil
		}
	}
	return 0, fmt.Errorf("unknown op %q (want c, u, d, r or t)", s)
}

// Row is a source row: column name to value. Values are nil (SQL NULL),
// int64, float64, bool, string or []byte. Types without a lossless Go scalar
// (numeric, timestamps, uuid, ...) are carried as the database's text form.
type Row map[string]any

// Position is a capturer's resumable place in the source's change stream
// (a PostgreSQL LSN, a binlog file:pos or GTID set). Each capturer defines its
// own type; String must round-trip through that capturer's Parse.
type Position interface {
	String() string
}

// Table names a source table.
type Table struct {
	Schema string
	Name   string
}

// String returns "schema.name".
func (t Table) String() string { return t.Schema + "." + t.Name }

// Event is one committed row change.
type Event struct {
	Op    Op
	Table Table
	Key   []string        // primary key column names, in the table's column order
	Types map[string]Type // column name -> logical type
	// Columns lists the table's columns in table order, for encoders; nil
	// when unknown (then they sort). Shared between events: read only.
	Columns []string
	// SQLTypes names each column's source type as Debezium's mapping
	// needs it ("timestamptz(6)", "datetime(3)", "numeric(12,2)", "bit(5)",
	// "bigint unsigned"); nil or a missing column when unknown (then the
	// value is written as tandem's logical type holds it). Shared between
	// events: read only.
	SQLTypes map[string]string
	Before   Row       // the row before the change: nil for inserts and for updates that keep their key (unless the source sends full before-images); the key columns for deletes
	After    Row       // the row after the change: nil for deletes; unchanged TOASTed columns are absent
	Pos      Position  // the commit position of the change's transaction, for information; acknowledge Batch.Pos, never this
	TxID     uint32    // source transaction id, 0 if unknown
	Commit   time.Time // source commit time
	// Oversize, when set, says why this is a marker (Encoder.Marker)
	// standing in for a change whose record was too large for Kafka: its
	// Before holds the row's key columns only, and the apply side
	// dead-letters it instead of applying it.
	Oversize string
}

// KeyRow returns the key columns of the event's row (After, or Before for deletes).
func (e *Event) KeyRow() Row {
	src := e.After
	if src == nil {
		src = e.Before
	}
	k := make(Row, len(e.Key))
	for _, c := range e.Key {
		k[c] = src[c]
	}
	return k
}

// Batch is the changes of one source transaction, in commit order. Pos is the
// position to acknowledge once every event of the batch is durable downstream.
type Batch struct {
	Events []Event
	Pos    Position
	Commit time.Time
}
