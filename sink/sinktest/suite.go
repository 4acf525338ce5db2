package sinktest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// Sink is the method set the suite drives: what every sink of tandem has.
// It is declared here, from the methods, rather than from the interfaces
// of the packages that use them (transform.Lookuper, reconcile.RowReader,
// capture/mysql.PositionStore), so that sinktest depends on package sink
// alone.
type Sink interface {
	sink.Sink
	sink.DeadLetterStore
	sink.BackfillStore
	sink.DriftStore
	RowReader
	// SetOffsets stores cp's offsets as they are, backwards too.
	SetOffsets(ctx context.Context, cp sink.Checkpoint) error
	// Forget drops cached table descriptions.
	Forget()
	// Lookup returns the row of table whose columns equal where's values.
	Lookup(ctx context.Context, table string, where map[string]any) (map[string]any, bool, error)
	// LoadPosition and SavePosition keep a capturer's source positions.
	LoadPosition(ctx context.Context, source string) (pos string, found bool, err error)
	SavePosition(ctx context.Context, source, pos string) error
}

// RowReader is the reconciler's reading of the target (reconcile.RowReader).
type RowReader interface {
	ColumnTypes(ctx context.Context, table string) (map[string]string, error)
	ReadKeys(ctx context.Context, table string, key, cols []string, keys []map[string]any) ([]map[string]any, error)
	ScanRows(ctx context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error)
}

// Harness makes targets of one kind of database for the suite.
type Harness interface {
	// NewTarget creates a fresh target database, runs ddl in it (portable
	// SQL, statements separated by semicolons) and opens a sink on it with
	// a state schema of its own. Everything is released when t ends.
	NewTarget(t *testing.T, ddl string) Target
}

// Target is one target database with a sink open on it.
type Target interface {
	// Sink is the sink opened with the target.
	Sink() Sink
	// OpenSink opens another sink on the same database and state schema,
	// as another process would; it is closed when t ends.
	OpenSink(t *testing.T) Sink
	// StartSinks opens n sinks on the same database at once, as n
	// processes starting together on a fresh target do: their state schema
	// does not exist yet. It returns the error each open gave (nil when it
	// opened), in no order; the sinks are closed when t ends.
	StartSinks(t *testing.T, n int) []error
	// Exec runs sql, which may hold several statements, in the target database.
	Exec(t *testing.T, sql string)
	// Rows returns what query selects, column -> the database's text form
	// of the value, nil for NULL.
	Rows(t *testing.T, query string) []Row
	// Tombstones returns the sink's tombstones as rows of target_table and
	// row_key, ordered by both. A harness checks there whatever else its
	// database stores beside them (a digest of the key, say).
	Tombstones(t *testing.T) []Row
	// Hold runs sql in a transaction it leaves open, holding its locks,
	// until the returned function (or the end of t) rolls it back.
	Hold(t *testing.T, sql string) (release func())
	// Secret is a string no error may hold: the target user's password.
	Secret() string
}

// Row is a target row: for writes, column -> Go value; as Target.Rows
// reads it back, column -> text or nil.
type Row = map[string]any

// Run runs the conformance suite against the sink h makes: one subtest per
// behaviour every sink must show, each on a target of its own, in parallel.
func Run(t *testing.T, h Harness) {
	for _, c := range []struct {
		name string
		test func(*testing.T, Harness)
	}{
		{"Writes", testWrites},
		{"SameBatchTwice", testSameBatchTwice},
		{"FailedBatchStoresNothing", testFailedBatchStoresNothing},
		{"RowsRefusedForTheirValuesAreRejected", testRejected},
		{"LargeBatches", testLargeBatches},
		{"MissingTableUntilCreated", testMissingTableUntilCreated},
		{"EmptyBatchWithoutOffsets", testEmptyBatchWithoutOffsets},
		{"ConcurrentConsumersOnDisjointKeys", testConcurrentConsumersOnDisjointKeys},
		{"Offsets", testOffsets},
		{"ProcessesStartingTogether", testProcessesStartingTogether},
		{"DriftCounts", testDriftCounts},
		{"PartitionNamedTwice", testPartitionNamedTwice},
		{"FencedBatchWritesNothing", testFencedBatchWritesNothing},
		{"ConcurrentFirstBatchesOfOnePartition", testConcurrentFirstBatches},
		{"DeadLettersStoredOnceWithTheirBatch", testDeadLettersStoredOnce},
		{"DeadLettersListAndDelete", testDeadLettersListAndDelete},
		{"ApplyWithoutCheckpoint", testApplyWithoutCheckpoint},
		{"Positions", testPositions},
		{"BackfillCopiesAndTombstones", testBackfillCopiesAndTombstones},
		{"TombstonesFollowTheBackfillState", testTombstonesFollowTheBackfillState},
		{"ResetBackfill", testResetBackfill},
		{"BackfillProgress", testBackfillProgress},
		{"LargeBackfillBatches", testLargeBackfillBatches},
		{"ReadKeys", testReadKeys},
		{"ReadKeysCompositeKey", testReadKeysCompositeKey},
		{"ReadKeysManyKeys", testReadKeysManyKeys},
		{"ReadErrors", testReadErrors},
		{"ReadsDoNotWaitForAWriter", testReadsDoNotWaitForAWriter},
		{"ScanRowsInKeyOrder", testScanRowsInKeyOrder},
		{"ScanRowsLeavesOutNullKeys", testScanRowsLeavesOutNullKeys},
		{"ColumnTypes", testColumnTypes},
		{"Lookup", testLookup},
		{"LookupErrors", testLookupErrors},
		{"CohortState", testCohortState},
		{"FenceHoldsBatches", testFenceHoldsBatches},
		{"BatchWithoutSideAppliesEverything", testBatchWithoutSideAppliesEverything},
		{"Guard", testGuard},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.test(t, h)
		})
	}
}

// shopDDL is the target schema most subtests write to, in SQL both
// databases take (order_lines, as LINES is a keyword of MySQL's).
const shopDDL = `CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), qty INT, note TEXT);
CREATE TABLE order_lines (order_id BIGINT, line INT, sku VARCHAR(20), PRIMARY KEY (order_id, line));
`

// The queries that read the whole of each shop table, in key order.
const (
	allItems = "SELECT * FROM items ORDER BY id"
	allLines = "SELECT * FROM order_lines ORDER BY order_id, line"
)

func write(op change.WriteOp, table string, r Row, key ...string) change.Write {
	return change.Write{Table: table, Op: op, Key: key, Row: r}
}

func item(op change.WriteOp, r Row) change.Write { return write(op, "items", r, "id") }

func line(op change.WriteOp, r Row) change.Write {
	return write(op, "order_lines", r, "order_id", "line")
}

func offset(topic string, partition int32, next int64) sink.Offset {
	return sink.Offset{Topic: topic, Partition: partition, Next: next}
}

func checkpoint(group, epoch string, offsets ...sink.Offset) sink.Checkpoint {
	return sink.Checkpoint{Group: group, Epoch: epoch, Offsets: offsets}
}

// apply applies writes through s with checkpoint cp and fails t on an error.
func apply(t *testing.T, s Sink, cp sink.Checkpoint, writes ...change.Write) {
	t.Helper()
	if err := s.Apply(t.Context(), sink.Batch{Writes: writes}, cp); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// applyErr applies writes through s with checkpoint cp and returns the
// error, failing t when there is none.
func applyErr(t *testing.T, s Sink, cp sink.Checkpoint, writes ...change.Write) error {
	t.Helper()
	err := s.Apply(t.Context(), sink.Batch{Writes: writes}, cp)
	if err == nil {
		t.Fatal("Apply succeeded, want an error")
	}
	return err
}

// wantRows fails t unless query selects exactly want on tg.
func wantRows(t *testing.T, tg Target, query string, want []Row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.Rows(t, query), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", query, diff)
	}
}

// wantOffsets fails t unless the stored offsets of group in epoch are want.
func wantOffsets(t *testing.T, s Sink, group, epoch string, want []sink.Offset) {
	t.Helper()
	got, err := s.Offsets(t.Context(), group, epoch)
	if err != nil {
		t.Fatalf("Offsets(%s, %s): %v", group, epoch, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Offsets(%s, %s) (-want +got):\n%s", group, epoch, diff)
	}
}

// wantSinkError fails t unless err is a *sink.Error with reason and table
// that wraps is (when not nil), names table and holds no secret.
func wantSinkError(t *testing.T, tg Target, err error, is error, reason sink.Reason, table string) {
	t.Helper()
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error = %v, want one wrapping %v", err, is)
	}
	var se *sink.Error
	if !errors.As(err, &se) {
		t.Errorf("error = %v (%T), want a *sink.Error", err, err)
	} else if se.Reason != reason || se.Table != table {
		t.Errorf("error = %v: reason %q table %q, want reason %q table %q", err, se.Reason, se.Table, reason, table)
	}
	if err != nil && !strings.Contains(err.Error(), table) {
		t.Errorf("error %q does not name table %s", err, table)
	}
	if err != nil && tg.Secret() != "" && strings.Contains(err.Error(), tg.Secret()) {
		t.Errorf("error %q holds the password", err)
	}
}
