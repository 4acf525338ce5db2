package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// Batch is target-row changes in the order they must take effect, and the
// dead letters of the same records.
type Batch struct {
	Writes      []change.Write
	DeadLetters []DeadLetter
	// Side is the side of the migration the sink's database is, when
	// cutover is configured: a write with a Cohort is applied only while
	// the stream into Side owns it (Ownership.Applies), as the stored
	// owners say inside the batch's transaction, whose rows it holds
	// share-locked so that a switch waits for the batch. "": every write.
	Side Side
}

// DeadLetter is a record that could not be transformed, or whose change the
// target refused (DeadLetterRejected). Sinks store it with
// the batch, so it is kept exactly when its offset is committed, whatever
// happens to the dead-letter topic (the embedded broker's is in memory).
// Storing the same record twice keeps one copy.
type DeadLetter struct {
	Mapping   string
	Reason    string // decode, transform, truncate, rejected (DeadLetterRejected), ...
	Error     string
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte // the original record value
}

// Offset is where a batch stands on one partition.
type Offset struct {
	Topic     string
	Partition int32
	Next      int64 // the next offset to consume after this batch
	// From is the batch's first offset on the partition. Apply refuses
	// (ErrFenced) a batch when the stored offset is already past From:
	// another consumer has applied these records, maybe newer ones too.
	From int64
}

// ErrFenced is returned by Apply when another consumer has stored offsets
// past the batch's start (a rebalance moved the partition while the batch
// was in flight). Nothing was written; the caller must drop the batch and
// resume from the stored offsets.
var ErrFenced = errors.New("offsets moved past this batch: another consumer applied it")

// ErrTableNotFound is wrapped when a target table does not exist (or is not visible).
var ErrTableNotFound = errors.New("target table not found")

// Error is a failed Apply or Offsets, classified by the sink that knows its
// database's errors, so callers label metrics and logs without knowing it.
type Error struct {
	Table  string // target table involved, if known
	Reason Reason
	// Row says the target refused the values of a row the batch writes:
	// too long or out of range for its column, not valid for its type, a
	// NULL written into a NOT NULL column, a CHECK constraint. That is the
	// row's fault, not the table's: the batch's other rows may be written
	// without it (see Rejected). A unique or foreign-key violation, or a
	// NOT NULL column the write leaves out, is not: those depend on other
	// rows or on the table, and waiting for them may mend them.
	Row bool
	Err error
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Rejected reports whether err is an *Error the target raised for the
// values of a row (Error.Row): applying the batch again fails the same way,
// and applying it without the row's change may succeed.
func Rejected(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.Row
}

// DeadLetterRejected is the DeadLetter.Reason of a change the target
// refused for its values (Rejected): the Error holds the database's error
// and the row's key.
const DeadLetterRejected = "rejected"

// ErrNotUnique is wrapped when a lookup matches more than one row.
var ErrNotUnique = errors.New("lookup matches more than one row: its columns must be unique")

// Reason classifies a failed write for tandem_apply_errors_total's reason
// label: one of the constants, or "sql_" and the database's SQLSTATE for
// an error of the database that no constant names.
type Reason string

// The reasons a write fails.
const (
	ReasonTableMissing  Reason = "table_missing"
	ReasonColumnMissing Reason = "column_missing"
	ReasonPermission    Reason = "permission"
	ReasonNoUniqueKey   Reason = "no_unique_key"
	ReasonConstraint    Reason = "constraint"
	ReasonData          Reason = "data"
	ReasonConnection    Reason = "connection"
	ReasonReadOnly      Reason = "read_only"
	ReasonNotUnique     Reason = "not_unique" // a lookup matched more than one row
	ReasonOther         Reason = "other"
)

// Retryable reports whether waiting may mend a write that failed for r: a
// lost connection, or a transaction the database rolled back (SQLSTATE
// class 40: a deadlock, a serialization failure).
func (r Reason) Retryable() bool {
	return r == ReasonConnection || strings.HasPrefix(string(r), "sql_40")
}

// ErrColumnNotFound is wrapped when a write names a column the target table lacks.
var ErrColumnNotFound = errors.New("target column not found")

// Checkpoint is where a consumer group stands, stored with the rows it
// produced. Epoch names the Kafka cluster the offsets belong to.
type Checkpoint struct {
	Group   string
	Epoch   string
	Offsets []Offset
}

// Validate refuses progress a store should never hold: an unknown state,
// no table.
func (p BackfillProgress) Validate() error {
	switch p.State {
	case BackfillRunning, BackfillCopied, BackfillDone:
	default:
		return fmt.Errorf("save the backfill progress of %s: unknown state %q", p.Table, p.State)
	}
	if p.Table == "" {
		return errors.New("save backfill progress: no table")
	}
	return nil
}

// TableUse is what the mappings need of one target table, for a sink's Check.
type TableUse struct {
	Table   string   // as configured
	Key     []string // the upsert's conflict target: must be covered by a unique index
	Columns []string // every written column
}

// Sink writes target rows.
type Sink interface {
	// Apply writes the batch and stores the checkpoint in one transaction:
	// both or neither. Stored offsets never move backwards. Applying the
	// same batch again leaves the target unchanged. A failure is an
	// *Error (Rejected when a row's values are at fault: nothing was
	// written) or wraps ErrFenced. Blocks; safe for concurrent use by
	// several consumers.
	Apply(ctx context.Context, b Batch, cp Checkpoint) error
	// Offsets returns the stored offsets of group that belong to epoch.
	Offsets(ctx context.Context, group, epoch string) ([]Offset, error)
	// Close releases connections.
	Close() error
}

// BackfillState is where a table's backfill stands, as BackfillStore
// keeps it.
type BackfillState string

// Backfill states.
const (
	// BackfillRunning: chunks are being copied; deletes leave tombstones.
	BackfillRunning BackfillState = "running"
	// BackfillCopied: every chunk was handed to Kafka, but apply may not
	// have written them all yet; deletes still leave tombstones. Only
	// backfills of tandem versions that copied through Kafka (to an
	// external cluster) end so; it is kept for the targets they left.
	BackfillCopied BackfillState = "copied"
	// BackfillDone: every copied row is in the target.
	BackfillDone BackfillState = "done"
)

// BackfillProgress is where one source table's backfill stands.
type BackfillProgress struct {
	Table   string // source table, "schema.table"
	State   BackfillState
	After   string // the last copied key, as the backfill encodes it; "" before the first chunk
	Rows    int64  // rows copied so far
	Started time.Time
	Updated time.Time
}

// BackfillStore keeps backfill progress in the target, beside the rows.
// While any table's backfill is running or copied, every Delete a sink
// applies also stores a tombstone (target table, change.KeyText) in the
// same transaction, and a Copy write is skipped when its tombstone exists;
// copies and deletes of one table are kept apart by the table's copy lock.
// The protocol and why it converges are written once, in package backfill.
type BackfillStore interface {
	// BackfillProgress returns every table's progress.
	BackfillProgress(ctx context.Context) ([]BackfillProgress, error)
	// SaveBackfill creates or replaces one table's progress.
	SaveBackfill(ctx context.Context, p BackfillProgress) error
	// ResetBackfill forgets every table's progress and every tombstone:
	// the start of a new backfill (once no earlier one's copies are in flight).
	ResetBackfill(ctx context.Context) error
}

// TextCopier is a sink that can write a backfill's chunk given as the
// source's COPY text, without decoding it: for a mapping that copies
// columns unchanged from a PostgreSQL source.
type TextCopier interface {
	// CopyText writes data, rows in COPY's text format holding the values
	// of cols, into table, as Copy writes of them would: the rows whose
	// key has a tombstone, or is the key of a row the table holds, are
	// left out. key, if not nil, says where each line's key is. CopyText
	// returns ErrNotVerbatim, having written nothing, when it cannot write
	// the rows as a plain insert: key is nil and the table has tombstones
	// or a row with one of the keys, or a row with one of them was written
	// while it looked.
	CopyText(ctx context.Context, table string, cols []string, data []byte, key *TextKey) error
}

// TextKey says where the key of a line of COPY text is, for keys whose
// text is their value (integers and strings): a KeyText of the lines'
// key values is the KeyText of the rows written.
type TextKey struct {
	At []int // the places in cols of the table's key columns, in key order
	// Ordered says the key columns are integers and the lines are in
	// their order, each key once, and there is no row of the source in
	// between: so the rows of the table that may hold a line's key are
	// those from the first line's key to the last's, one range to read.
	// Without it, CopyText tries the COPY first and looks for rows there
	// only when it fails.
	Ordered bool
}

// ErrNotVerbatim is returned by TextCopier.CopyText when the rows must be
// written as Copy writes instead.
var ErrNotVerbatim = errors.New("the copied rows must be written one by one")

// Classify names a failed write for tandem_apply_errors_total: the table
// and reason of a *Error (as the sink classified it), else connection (a timeout) or other.
func Classify(err error) (table string, reason Reason) {
	var se *Error
	if errors.As(err, &se) {
		return se.Table, se.Reason
	}
	var netErr interface{ Timeout() bool }
	if errors.As(err, &netErr) {
		return "", ReasonConnection
	}
	return "", ReasonOther
}
