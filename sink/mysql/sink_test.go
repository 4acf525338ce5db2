package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// row is a target row: for writes, column -> Go value; as read back,
// column -> MariaDB's text form, nil for NULL.
type row = map[string]any

// shopDDL is the target schema most tests write to.
const shopDDL = `
CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), qty INT, note TEXT);
CREATE TABLE ` + "`lines`" + ` (order_id BIGINT, line INT, sku VARCHAR(20), PRIMARY KEY (order_id, line));
`

// The queries that read the whole of each shop table, in key order.
const (
	allItems = "SELECT * FROM items ORDER BY id"
	allLines = "SELECT * FROM `lines` ORDER BY order_id, line"
)

// stateCounter names each target's state database: the server is shared
// by the whole test binary, and each test keeps its offsets apart.
var stateCounter atomic.Int64

// target is a fresh database holding a schema, and a Sink writing to it
// with a state database of its own.
type target struct {
	dsn   string
	name  string // the database
	state string // the sink's state database
	db    *sql.DB
	sink  *mysql.Sink
}

func newTarget(t *testing.T, ddl string) *target {
	t.Helper()
	dsn := testenv.NewMariaDBDatabase(t)
	tg := &target{dsn: dsn, db: openDB(t, dsn), state: fmt.Sprintf("tandem_state_%d", stateCounter.Add(1))}
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	tg.name = cfg.DBName
	if strings.TrimSpace(ddl) != "" {
		tg.Exec(t, ddl)
	}
	tg.sink = tg.newSink(t, mysql.Config{DSN: dsn, StateSchema: tg.state})
	return tg
}

// openDB opens a pool on dsn (UTC, text protocol for queries without
// arguments), closed when the test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MultiStatements = true
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// newSink opens another Sink on the target, closed when the test ends.
func (tg *target) newSink(t *testing.T, cfg mysql.Config) *mysql.Sink {
	t.Helper()
	s, err := mysql.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("mysql.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exec runs sql, which may hold several statements, in the target database.
func (tg *target) Exec(t *testing.T, sql string) {
	t.Helper()
	if err := testenv.SharedMariaDB(t).Exec(t.Context(), tg.name, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Rows returns what query selects, every column in MariaDB's text form.
func (tg *target) Rows(t *testing.T, query string) []row {
	t.Helper()
	return queryRows(t, tg.db, query)
}

func queryRows(t *testing.T, db *sql.DB, query string) []row {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rs.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		r := row{}
		for i, c := range cols {
			r[c] = nil
			if vals[i] != nil {
				r[c] = string(vals[i])
			}
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// wantRows fails the test unless query selects exactly want.
func (tg *target) wantRows(t *testing.T, query string, want []row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.Rows(t, query), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", query, diff)
	}
}

// wantOffsets fails the test unless the stored offsets of group in epoch are want.
func (tg *target) wantOffsets(t *testing.T, group, epoch string, want []sink.Offset) {
	t.Helper()
	got, err := tg.sink.Offsets(t.Context(), group, epoch)
	if err != nil {
		t.Fatalf("Offsets(%s, %s): %v", group, epoch, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Offsets(%s, %s) (-want +got):\n%s", group, epoch, diff)
	}
}

// apply applies writes with checkpoint cp and fails the test on an error.
func (tg *target) apply(t *testing.T, cp sink.Checkpoint, writes ...change.Write) {
	t.Helper()
	if err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// applyErr applies writes with checkpoint cp and returns the error, failing
// the test when there is none.
func (tg *target) applyErr(t *testing.T, cp sink.Checkpoint, writes ...change.Write) error {
	t.Helper()
	err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp)
	if err == nil {
		t.Fatal("Apply succeeded, want an error")
	}
	return err
}

// wantSinkError fails the test unless err is a *sink.Error with reason and table.
func wantSinkError(t *testing.T, err error, reason, table string) {
	t.Helper()
	var se *sink.Error
	if !errors.As(err, &se) {
		t.Errorf("error = %v (%T), want a *sink.Error", err, err)
		return
	}
	if se.Reason != reason || se.Table != table {
		t.Errorf("error = %v: reason %q table %q, want reason %q table %q", err, se.Reason, se.Table, reason, table)
	}
}

// wantServerError fails the test unless err wraps a server error number.
func wantServerError(t *testing.T, err error, number uint16) {
	t.Helper()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != number {
		t.Errorf("error = %v, want server error %d", err, number)
	}
}

func write(op change.WriteOp, table string, r row, key ...string) change.Write {
	return change.Write{Table: table, Op: op, Key: key, Row: r}
}

func item(op change.WriteOp, r row) change.Write { return write(op, "items", r, "id") }

func line(op change.WriteOp, r row) change.Write { return write(op, "lines", r, "order_id", "line") }

func offset(topic string, partition int32, next int64) sink.Offset {
	return sink.Offset{Topic: topic, Partition: partition, Next: next}
}

func TestApply_EndStateIsThatOfApplyingTheWritesInOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		seed    string           // SQL run before the batches
		batches [][]change.Write // each applied by one Apply, in order
		items   []row            // allItems afterwards
		lines   []row            // allLines afterwards
	}{
		{
			name: "upsert inserts, then overwrites only the columns it names",
			batches: [][]change.Write{
				{item(change.WriteUpsert, row{"id": int64(1), "name": "pen", "qty": int64(2)}),
					item(change.WriteUpsert, row{"id": int64(2), "name": "ink", "qty": int64(5), "note": "blue"})},
				// another mapping writes another column of row 1
				{item(change.WriteUpsert, row{"id": int64(1), "note": "from mapping B"})},
				{item(change.WriteUpsert, row{"id": int64(1), "qty": int64(3)}),
					item(change.WriteUpsert, row{"id": int64(2), "name": "ink cartridge"})},
			},
			items: []row{
				{"id": "1", "name": "pen", "qty": "3", "note": "from mapping B"},
				{"id": "2", "name": "ink cartridge", "qty": "5", "note": "blue"},
			},
		},
		{
			name: "an upsert of the key alone inserts the row and leaves an existing one alone",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'kept')`,
			batches: [][]change.Write{
				{item(change.WriteUpsert, row{"id": int64(1)}), item(change.WriteUpsert, row{"id": int64(2)})},
			},
			items: []row{
				{"id": "1", "name": "old", "qty": "1", "note": "kept"},
				{"id": "2", "name": nil, "qty": nil, "note": nil},
			},
		},
		{
			name: "insert-if-absent keeps an existing row and inserts an absent one",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'kept')`,
			batches: [][]change.Write{
				{item(change.WriteInsertIfAbsent, row{"id": int64(1), "name": "new", "qty": int64(9), "note": nil}),
					item(change.WriteInsertIfAbsent, row{"id": int64(2), "name": "new", "qty": int64(2)})},
				{item(change.WriteInsertIfAbsent, row{"id": int64(2), "name": "newer", "qty": int64(3)})},
			},
			items: []row{
				{"id": "1", "name": "old", "qty": "1", "note": "kept"},
				{"id": "2", "name": "new", "qty": "2", "note": nil},
			},
		},
		{
			name: "delete removes by key, composite keys too, and an absent key is fine",
			seed: `INSERT INTO items VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL);
INSERT INTO ` + "`lines`" + ` VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')`,
			batches: [][]change.Write{{
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteDelete, row{"id": int64(99)}),
				line(change.WriteDelete, row{"order_id": int64(1), "line": int64(2)}),
				line(change.WriteDelete, row{"order_id": int64(7), "line": int64(7)}),
				// (1, 1) and (2, 1) stay: a delete matches whole keys, not their parts
				line(change.WriteDelete, row{"order_id": int64(2), "line": int64(2)}),
			}},
			items: []row{{"id": "2", "name": "b", "qty": "2", "note": nil}},
			lines: []row{
				{"order_id": "1", "line": "1", "sku": "x"},
				{"order_id": "2", "line": "1", "sku": "z"},
			},
		},
		{
			name: "insert, update, delete and re-insert of one key in one batch",
			seed: `INSERT INTO items VALUES (1, 'seed', 1, 'seed note'), (2, 'two', 2, NULL);
INSERT INTO ` + "`lines`" + ` VALUES (1, 1, 'x')`,
			batches: [][]change.Write{{
				item(change.WriteUpsert, row{"id": int64(1), "name": "a", "qty": int64(1), "note": "n1"}),
				item(change.WriteUpsert, row{"id": int64(3), "name": "three", "qty": int64(3), "note": nil}),
				item(change.WriteUpsert, row{"id": int64(1), "name": "b", "qty": int64(2), "note": "n2"}),
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteDelete, row{"id": int64(2)}),
				item(change.WriteInsertIfAbsent, row{"id": int64(1), "name": "c", "qty": int64(3), "note": nil}),
				item(change.WriteDelete, row{"id": int64(3)}),
				item(change.WriteInsertIfAbsent, row{"id": int64(2), "name": "two again", "qty": nil, "note": nil}),
				item(change.WriteInsertIfAbsent, row{"id": int64(2), "name": "ignored", "qty": int64(9), "note": "x"}),
				line(change.WriteDelete, row{"order_id": int64(1), "line": int64(1)}),
				line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(1), "sku": "x2"}),
				line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(2), "sku": "y"}),
			}},
			items: []row{
				{"id": "1", "name": "c", "qty": "3", "note": nil},
				{"id": "2", "name": "two again", "qty": nil, "note": nil},
			},
			lines: []row{
				{"order_id": "1", "line": "1", "sku": "x2"},
				{"order_id": "1", "line": "2", "sku": "y"},
			},
		},
		{
			name: "a partial upsert after a delete does not resurrect the deleted row's other columns",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'old note')`,
			batches: [][]change.Write{{
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteUpsert, row{"id": int64(1), "qty": int64(5)}),
			}},
			items: []row{{"id": "1", "name": nil, "qty": "5", "note": nil}},
		},
		{
			name: "a row moving from one key to another on a unique column",
			seed: `ALTER TABLE items ADD UNIQUE KEY (name); INSERT INTO items VALUES (1, 'pen', 1, NULL)`,
			batches: [][]change.Write{{
				item(change.WriteUpsert, row{"id": int64(2), "name": "pen", "qty": int64(1)}),
				item(change.WriteDelete, row{"id": int64(1)}),
			}},
			items: []row{{"id": "2", "name": "pen", "qty": "1", "note": nil}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, shopDDL+tc.seed)
			for _, b := range tc.batches {
				tg.apply(t, sink.Checkpoint{}, b...)
			}
			tg.wantRows(t, allItems, tc.items)
			tg.wantRows(t, allLines, tc.lines)
		})
	}
}

func TestApply_SameBatchTwiceLeavesTheTargetAsOnce(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`INSERT INTO items VALUES (1, 'a', 1, NULL), (2, 'b', 2, 'bee');
INSERT INTO `+"`lines`"+` VALUES (1, 1, 'x'), (1, 2, 'y')`)
	b := []change.Write{
		item(change.WriteUpsert, row{"id": int64(1), "qty": int64(10)}),
		item(change.WriteDelete, row{"id": int64(2)}),
		item(change.WriteInsertIfAbsent, row{"id": int64(3), "name": "c", "qty": int64(3)}),
		item(change.WriteUpsert, row{"id": int64(4), "name": "d", "qty": int64(4), "note": "dee"}),
		item(change.WriteDelete, row{"id": int64(4)}),
		item(change.WriteInsertIfAbsent, row{"id": int64(4), "name": "d again", "qty": int64(5), "note": nil}),
		line(change.WriteDelete, row{"order_id": int64(1), "line": int64(1)}),
		line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(3), "sku": "z"}),
	}
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("orders", 0, 42)}}
	tg.apply(t, cp, b...)
	wantItems := []row{
		{"id": "1", "name": "a", "qty": "10", "note": nil},
		{"id": "3", "name": "c", "qty": "3", "note": nil},
		{"id": "4", "name": "d again", "qty": "5", "note": nil},
	}
	wantLines := []row{
		{"order_id": "1", "line": "2", "sku": "y"},
		{"order_id": "1", "line": "3", "sku": "z"},
	}
	tg.wantRows(t, allItems, wantItems)
	tg.wantRows(t, allLines, wantLines)
	// The writes themselves are idempotent...
	tg.apply(t, sink.Checkpoint{}, b...)
	tg.wantRows(t, allItems, wantItems)
	tg.wantRows(t, allLines, wantLines)
	// ...and the same batch with its offsets again is fenced off: it was applied.
	if err := tg.applyErr(t, cp, b...); !errors.Is(err, sink.ErrFenced) {
		t.Errorf("applying a batch whose offsets are stored already = %v, want ErrFenced", err)
	}
	tg.wantRows(t, allItems, wantItems)
	tg.wantRows(t, allLines, wantLines)
	tg.wantOffsets(t, "g", "e", cp.Offsets)
}

func TestApply_LargeBatchesAreSplitUnderThePlaceholderLimit(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	// 4 columns x 20,000 rows = 80,000 placeholders; 70,000 deletes by one key column.
	const n = 20000
	var ws []change.Write
	var want []row
	for i := range n {
		ws = append(ws, item(change.WriteUpsert, row{"id": int64(i), "name": fmt.Sprint("n", i), "qty": int64(i % 7), "note": strings.Repeat("x", i%300)}))
		if i%2 == 0 {
			want = append(want, row{"id": fmt.Sprint(i), "name": fmt.Sprint("n", i), "qty": fmt.Sprint(i % 7), "note": strings.Repeat("x", i%300)})
		}
	}
	tg.apply(t, sink.Checkpoint{}, ws...)
	ws = ws[:0]
	for i := range 70000 {
		if i%2 == 1 {
			ws = append(ws, item(change.WriteDelete, row{"id": int64(i)}))
		}
	}
	for i := range 70000 {
		ws = append(ws, line(change.WriteDelete, row{"order_id": int64(i), "line": int64(1)}))
	}
	tg.apply(t, sink.Checkpoint{}, ws...)
	tg.wantRows(t, allItems, want)
}

func TestApply_FailedBatchStoresNeitherRowsNorOffsets(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`ALTER TABLE items MODIFY name VARCHAR(100) NOT NULL`)
	tg.apply(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("items", 0, 10)}},
		item(change.WriteUpsert, row{"id": int64(1), "name": "one"}))
	err := tg.applyErr(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "items", Partition: 0, From: 10, Next: 20}, offset("items", 1, 5)}},
		line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(1), "sku": "x"}),
		item(change.WriteUpsert, row{"id": int64(2), "name": "two"}),
		item(change.WriteUpsert, row{"id": int64(3), "name": nil}))
	wantServerError(t, err, 1048) // column cannot be null
	wantSinkError(t, err, "constraint", "items")
	tg.wantRows(t, allItems, []row{{"id": "1", "name": "one", "qty": nil, "note": nil}})
	tg.wantRows(t, allLines, nil)
	tg.wantOffsets(t, "g", "e", []sink.Offset{offset("items", 0, 10)})
}

func TestApply_StoresOffsetsByGroupAndEpoch(t *testing.T) {
	t.Parallel()
	type step struct {
		set    bool // SetOffsets instead of Apply
		fenced bool // Apply must fail with ErrFenced and change nothing
		cp     sink.Checkpoint
	}
	from := func(o sink.Offset, from int64) sink.Offset { o.From = from; return o }
	cp := func(group, epoch string, offsets ...sink.Offset) sink.Checkpoint {
		return sink.Checkpoint{Group: group, Epoch: epoch, Offsets: offsets}
	}
	type groupEpoch struct{ group, epoch string }
	tests := []struct {
		name  string
		steps []step
		want  map[groupEpoch][]sink.Offset
	}{
		{
			name: "a batch starting at the stored offset moves it on",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{cp: cp("g", "e1", from(offset("t", 0, 12), 10), from(offset("t", 1, 15), 10), offset("u", 0, 1))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 12), offset("t", 1, 15), offset("u", 0, 1)},
			},
		},
		{
			name: "a batch starting before the stored offset is fenced and changes nothing",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{fenced: true, cp: cp("g", "e1", from(offset("t", 0, 5), 2), from(offset("t", 1, 15), 10), offset("u", 0, 1))},
				{fenced: true, cp: cp("g", "e1", from(offset("t", 1, 11), 9))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 10), offset("t", 1, 10)},
			},
		},
		{
			name: "offsets never move backwards",
			steps: []step{
				{cp: cp("g", "e", offset("t", 0, 100))},
				{cp: cp("g", "e", from(offset("t", 0, 120), 100))},
				{fenced: true, cp: cp("g", "e", from(offset("t", 0, 110), 100))},
				{fenced: true, cp: cp("g", "e", from(offset("t", 0, 50), 40))},
			},
			want: map[groupEpoch][]sink.Offset{{"g", "e"}: {offset("t", 0, 120)}},
		},
		{
			name: "another epoch replaces them, and each epoch reads only its own",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{cp: cp("g", "e2", offset("t", 0, 3))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 1, 10)},
				{"g", "e2"}: {offset("t", 0, 3)},
			},
		},
		{
			name: "groups are apart, and topics differing in case are two topics",
			steps: []step{
				{cp: cp("g", "e", offset("t", 0, 10))},
				{cp: cp("h", "e", offset("t", 0, 3))},
				{cp: cp("g", "e", offset("T", 0, 4))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e"}:     {offset("T", 0, 4), offset("t", 0, 10)},
				{"h", "e"}:     {offset("t", 0, 3)},
				{"G", "e"}:     nil,
				{"other", "e"}: nil,
			},
		},
		{
			name: "SetOffsets overwrites, backwards too",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{set: true, cp: cp("g", "e1", offset("t", 0, 2), offset("t", 2, 7))},
				{set: true, cp: cp("g", "e2", offset("t", 1, 1))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 2), offset("t", 2, 7)},
				{"g", "e2"}: {offset("t", 1, 1)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, "")
			for _, st := range tc.steps {
				if st.set {
					if err := tg.sink.SetOffsets(t.Context(), st.cp); err != nil {
						t.Fatalf("SetOffsets: %v", err)
					}
					continue
				}
				if st.fenced {
					if err := tg.applyErr(t, st.cp); !errors.Is(err, sink.ErrFenced) {
						t.Fatalf("Apply = %v, want ErrFenced", err)
					}
					continue
				}
				tg.apply(t, st.cp)
			}
			for ge, want := range tc.want {
				tg.wantOffsets(t, ge.group, ge.epoch, want)
			}
		})
	}
}

func TestApply_ACheckpointNamingAPartitionTwiceIsRefused(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	err := tg.applyErr(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 1), offset("t", 0, 2)}},
		item(change.WriteUpsert, row{"id": int64(1)}))
	if errors.Is(err, sink.ErrFenced) {
		t.Errorf("Apply = %v, want an error other than ErrFenced", err)
	}
	tg.wantRows(t, allItems, nil)
	tg.wantOffsets(t, "g", "e", nil)
}

func TestApply_AnOlderBatchOfASecondConsumerIsFencedAndWritesNothing(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	// Consumer A owned partition 0 and applied records 0..9; a rebalance
	// gave it to B, which read from 5 before A's commit and now applies
	// records 5..14.
	a, b := tg.sink, tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	cp := func(from, next int64) sink.Checkpoint {
		return sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "items", Partition: 0, From: from, Next: next}}}
	}
	if err := a.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		item(change.WriteUpsert, row{"id": int64(1), "name": "by A"}),
	}}, cp(0, 10)); err != nil {
		t.Fatal(err)
	}
	err := b.Apply(t.Context(), sink.Batch{
		Writes: []change.Write{
			item(change.WriteUpsert, row{"id": int64(1), "name": "by B"}),
			item(change.WriteUpsert, row{"id": int64(2), "name": "by B"}),
		},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "transform", Error: "x", Topic: "items", Partition: 0, Offset: 7}},
	}, cp(5, 15))
	if !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("B's Apply = %v, want ErrFenced", err)
	}
	var se *sink.Error
	if errors.As(err, &se) {
		t.Errorf("ErrFenced came as a *sink.Error (%v): callers tell them apart", se)
	}
	tg.wantRows(t, allItems, []row{{"id": "1", "name": "by A", "qty": nil, "note": nil}})
	tg.wantRows(t, "SELECT count(*) AS n FROM `"+tg.state+"`.dead_letters", []row{{"n": "0"}})
	tg.wantOffsets(t, "g", "e", []sink.Offset{offset("items", 0, 10)})
	// B resumes from the stored offset.
	if err := b.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		item(change.WriteUpsert, row{"id": int64(2), "name": "by B"}),
	}}, cp(10, 15)); err != nil {
		t.Fatal(err)
	}
	tg.wantOffsets(t, "g", "e", []sink.Offset{offset("items", 0, 15)})
}

func TestApply_ConcurrentFirstBatchesOfOnePartition_OneWinsTheOthersAreFenced(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	const consumers = 6
	sinks := make([]*mysql.Sink, consumers)
	for i := range sinks {
		sinks[i] = tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	}
	start := make(chan struct{})
	errs := make([]error, consumers)
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() {
			<-start
			errs[i] = s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
				item(change.WriteUpsert, row{"id": int64(1), "name": fmt.Sprint("consumer ", i)}),
				item(change.WriteUpsert, row{"id": int64(100 + i), "name": fmt.Sprint("consumer ", i)}),
			}}, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "items", Partition: 3, From: 0, Next: 10}}})
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("consumers %d and %d both applied the batch", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, sink.ErrFenced):
			t.Errorf("consumer %d: %v, want success or ErrFenced", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no consumer applied the batch")
	}
	name := fmt.Sprint("consumer ", winner)
	tg.wantRows(t, allItems, []row{
		{"id": "1", "name": name, "qty": nil, "note": nil},
		{"id": fmt.Sprint(100 + winner), "name": name, "qty": nil, "note": nil},
	})
	tg.wantOffsets(t, "g", "e", []sink.Offset{offset("items", 3, 10)})
}

func TestApply_ConcurrentConsumersOnDisjointKeys(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	const consumers, batches, perBatch = 4, 20, 10
	var want []row
	g, ctx := errgroup.WithContext(t.Context())
	for c := range consumers {
		for b := range batches {
			for i := range perBatch {
				id := c*batches*perBatch + b*perBatch + i
				want = append(want, row{"id": fmt.Sprint(id), "name": fmt.Sprintf("c%d b%d", c, b), "qty": fmt.Sprint(i), "note": nil})
			}
		}
		g.Go(func() error {
			for b := range batches {
				var ws []change.Write
				for i := range perBatch {
					id := int64(c*batches*perBatch + b*perBatch + i)
					// each row is written twice, the second time with its final
					// values, and the consumer also deletes keys of its own that
					// do not exist: gaps another consumer inserts into
					ws = append(ws, item(change.WriteUpsert, row{"id": id, "name": "draft", "qty": int64(-1), "note": "draft"}))
					ws = append(ws, item(change.WriteUpsert, row{"id": id, "name": fmt.Sprintf("c%d b%d", c, b), "qty": int64(i), "note": nil}))
					ws = append(ws, item(change.WriteDelete, row{"id": 100000 + id}))
				}
				cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "items", Partition: int32(c), Next: int64(b + 1), From: int64(b)}}}
				if err := tg.sink.Apply(ctx, sink.Batch{Writes: ws}, cp); err != nil {
					return fmt.Errorf("consumer %d batch %d: %w", c, b, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, allItems, want)
	var offsets []sink.Offset
	for c := range consumers {
		offsets = append(offsets, offset("items", int32(c), batches))
	}
	tg.wantOffsets(t, "g", "e", offsets)
}

func TestApply_DeadLettersAreStoredOnceAndOnlyWithTheirBatch(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	dl := sink.DeadLetter{Mapping: "m", Reason: "transform", Error: "no such key: x", Topic: "t", Partition: 1, Offset: 7,
		Key: []byte(`{"id":7}`), Value: []byte(`{"after":{"id":7}}`)}
	// A message quoting a binary record is not valid UTF-8.
	binary := sink.DeadLetter{Mapping: "m", Reason: "decode", Error: "bad byte \xff in record", Topic: "t", Partition: 1, Offset: 8,
		Key: nil, Value: []byte{0, 0xff, 0xfe}}
	stored := "SELECT mapping, reason, error, topic, `partition`, `offset`, record_key AS `key`, record AS value FROM `" + tg.state +
		"`.dead_letters ORDER BY `offset`"
	want := []row{
		{"mapping": "m", "reason": "transform", "error": "no such key: x", "topic": "t", "partition": "1", "offset": "7",
			"key": `{"id":7}`, "value": `{"after":{"id":7}}`},
		{"mapping": "m", "reason": "decode", "error": "bad byte \uFFFD in record", "topic": "t", "partition": "1", "offset": "8",
			"key": nil, "value": "\x00\xff\xfe"},
	}
	// A batch that fails (NOT NULL) stores no dead letter either.
	bad := change.Write{Table: "items", Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": int64(1), "name": nil}}
	if err := tg.sink.Apply(t.Context(), sink.Batch{Writes: []change.Write{bad}, DeadLetters: []sink.DeadLetter{dl}}, sink.Checkpoint{}); err == nil {
		t.Fatal("Apply of a NOT NULL violation succeeded")
	}
	tg.wantRows(t, stored, nil)
	changed := dl
	changed.Error = "a later copy"
	for _, dls := range [][]sink.DeadLetter{{dl, binary}, {changed}, {dl, dl}} {
		if err := tg.sink.Apply(t.Context(), sink.Batch{DeadLetters: dls}, sink.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, stored, want)
	// Another mapping's dead letter of the same record is its own.
	other := dl
	other.Mapping = "m2"
	if err := tg.sink.Apply(t.Context(), sink.Batch{DeadLetters: []sink.DeadLetter{other}}, sink.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, "SELECT mapping FROM `"+tg.state+"`.dead_letters WHERE `offset` = 7 ORDER BY mapping", []row{{"mapping": "m"}, {"mapping": "m2"}})
}

func TestPositions_SaveReplacesAndLoadReadsBack(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	ctx := t.Context()
	if pos, found, err := tg.sink.LoadPosition(ctx, "shop"); err != nil || found || pos != "" {
		t.Fatalf("LoadPosition before any save = %q, %v, %v; want \"\", false, nil", pos, found, err)
	}
	long := strings.Repeat("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-99999,", 2000) // a GTID set of many servers
	steps := []struct{ source, pos string }{
		{"shop", "mysql-bin.000003:4"},
		{"Shop", "other source, other case"},
		{"shop", "0-1-42"},
		{"shop`s", long},
	}
	for _, st := range steps {
		if err := tg.sink.SavePosition(ctx, st.source, st.pos); err != nil {
			t.Fatalf("SavePosition(%q): %v", st.source, err)
		}
	}
	want := map[string]string{"shop": "0-1-42", "Shop": "other source, other case", "shop`s": long}
	// A new Sink reads what the first saved.
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	for source, pos := range want {
		got, found, err := s.LoadPosition(ctx, source)
		if err != nil || !found || got != pos {
			t.Errorf("LoadPosition(%q) = %.40q, %v, %v; want %.40q, true, nil", source, got, found, err, pos)
		}
	}
}

func TestNew_CreatesTheStateTablesOnceAndReusesThem(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	tg.apply(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 5)}})
	// Another process starting on the same state database keeps its contents.
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	got, err := s.Offsets(t.Context(), "g", "e")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sink.Offset{offset("t", 0, 5)}, got); diff != "" {
		t.Errorf("Offsets (-want +got):\n%s", diff)
	}
	tg.wantRows(t, "SELECT TABLE_NAME AS name, TABLE_COLLATION AS collation FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+tg.state+"' ORDER BY 1", []row{
		{"name": "backfills", "collation": "utf8mb4_bin"},
		{"name": "copy_locks", "collation": "utf8mb4_bin"},
		{"name": "dead_letters", "collation": "utf8mb4_bin"},
		{"name": "kafka_offsets", "collation": "utf8mb4_bin"},
		{"name": "source_positions", "collation": "utf8mb4_bin"},
		{"name": "tombstones", "collation": "utf8mb4_bin"},
	})
}

func TestApply_EmptyBatchWithoutOffsetsIsANoOp(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Nothing to do: not even a connection is needed.
	if err := tg.sink.Apply(ctx, sink.Batch{}, sink.Checkpoint{Group: "g", Epoch: "e"}); err != nil {
		t.Errorf("Apply of nothing = %v", err)
	}
}
