package capturetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
)

// streamTimeout bounds every wait for the stream.
const streamTimeout = 20 * time.Second

// The portable kinds of column the suite stores, each mapped by a
// SourceHarness to a column type of its database.
const (
	KindInt     = "int"     // a 32-bit integer
	KindBigInt  = "bigint"  // a 64-bit integer
	KindDecimal = "decimal" // an exact number, 30 digits, 10 after the point
	KindFloat   = "float"   // a double
	KindText    = "text"    // unbounded UTF-8 text
	KindKeyText = "keytext" // UTF-8 text that may be part of a primary key
	KindTime    = "time"    // a timestamp with microseconds
	KindBytes   = "bytes"   // a byte string
	KindBool    = "bool"    // true or false
	KindJSON    = "json"    // a JSON document
)

// kindColumns are the columns of the suite's table of every kind, in table
// order (not sorted, so that a capturer that sorts them is caught), each
// named after its kind's column: (txt, id, big, ...), id being KindInt.
var kindColumns = []struct{ name, kind string }{
	{"txt", KindText}, {"id", KindInt}, {"big", KindBigInt}, {"num", KindDecimal}, {"flt", KindFloat},
	{"ts", KindTime}, {"raw", KindBytes}, {"flag", KindBool}, {"doc", KindJSON}, {"code", KindKeyText},
}

// portableTypes are the change.Types the contract fixes for a kind on
// every database. The kinds missing here are typed as each database's
// column type is (MariaDB's BOOLEAN is TINYINT(1), an integer; its JSON is
// LONGTEXT, a string), which the harness declares.
var portableTypes = map[string]change.Type{
	KindInt: change.TypeInt, KindBigInt: change.TypeInt, KindDecimal: change.TypeDecimal,
	KindFloat: change.TypeFloat, KindText: change.TypeString, KindKeyText: change.TypeString,
	KindTime: change.TypeTime, KindBytes: change.TypeBytes,
}

// Kind is how one database stores and captures a portable kind.
type Kind struct {
	SQL  string      // the column type
	Type change.Type // the capturer's type for it
	// Literals are two distinct values of the kind, neither NULL, as SQL;
	// Values are the same as the capturer and the snapshot reader give
	// them (an int64, float64, bool, string or []byte).
	Literals [2]string
	Values   [2]any
}

// SourceHarness is what RunSource needs of one database: fresh databases,
// the column type of each kind, and where its capturer legitimately
// differs from the other's.
type SourceHarness struct {
	// NewDatabase creates an empty database for t.
	NewDatabase func(t *testing.T) SourceDB
	// Kinds maps every Kind* constant to this database's column type.
	Kinds map[string]Kind
	// FullBeforeImages says the source logs whole old rows (MySQL's
	// binlog_row_image=FULL): an update's Before is the old row and a
	// delete's the whole deleted row. Otherwise (PostgreSQL's REPLICA
	// IDENTITY DEFAULT) an update that keeps its key has no Before, and a
	// delete's Before holds the key columns only: change.Event's rule.
	FullBeforeImages bool
	// Analyze is the statement that refreshes a table's statistics, with
	// %s for the table's name.
	Analyze string
}

// SourceDB is a fresh database of a harness. The suite's SQL names tables
// unqualified, so it runs in the database; it keeps to SQL both databases
// read alike, besides the column types and literals of Kinds.
type SourceDB interface {
	// Table returns the change.Table of the database's table name.
	Table(name string) change.Table
	// Exec runs sql: one statement, or several separated by ';' in their
	// own BEGIN; ...; COMMIT. It fails t on an error.
	Exec(t *testing.T, sql string)
	// Source returns a capturer of cfg's tables, set up (publication,
	// slot, saved position), and closed when t ends. Capturers of one
	// database share its acknowledged position: a second one resumes where
	// the first, stopped and closed, was acknowledged.
	Source(t *testing.T, cfg SourceConfig) capture.Source
	// Reader returns a snapshot reader (NewTableReader), closed when t ends.
	Reader(t *testing.T) SnapshotReader
}

// SourceConfig is what a SourceDB's capturer captures.
type SourceConfig struct {
	Tables   []change.Table
	MaxBatch int // events per batch at most; 0: the capturer's default
}

// SnapshotReader is a capturer's snapshot reader: backfill's chunks, and
// single rows as reconcile and the copy lock read them.
type SnapshotReader interface {
	Locker
	Row(ctx context.Context, t *change.Schema, key change.Row) (change.Row, error)
}

// RunSource proves on h's database what every capturer and its snapshot
// reader promise (capture.Source, backfill.Reader): one subtest per
// behaviour, each comparing whole events and rows.
func RunSource(t *testing.T, h SourceHarness) {
	for _, kc := range kindColumns {
		k, ok := h.Kinds[kc.kind]
		if !ok {
			t.Fatalf("the harness maps no column type to kind %q", kc.kind)
		}
		if want, ok := portableTypes[kc.kind]; ok && k.Type != want {
			t.Fatalf("the harness types kind %q as %q: the contract says %q", kc.kind, k.Type, want)
		}
	}
	s := &suite{h: h}
	t.Run("InsertsUpdatesDeletesOfEveryKind", s.insertsUpdatesDeletes)
	t.Run("KeyChangeIsDeleteThenCreate", s.keyChange)
	t.Run("TransactionIsOneBatch", s.transaction)
	t.Run("LargeTransactionInInterimBatches", s.largeTransaction)
	t.Run("RestartResumesAfterTheAcknowledgedPosition", s.restart)
	t.Run("AddColumnMidStream", s.addColumn)
	t.Run("CancelReturnsContextError", s.cancel)
	t.Run("TableWithoutKeyFailsTheStream", s.noKey)
	t.Run("SnapshotReadsWhatTheStreamCaptures", s.snapshot)
	t.Run("SnapshotPagesInKeyOrder", s.snapshotPaging)
}

type suite struct{ h SourceHarness }

// kindsTable creates the table of every kind, with id as its key.
func (s *suite) kindsTable(db SourceDB, t *testing.T, name string) {
	t.Helper()
	cols := make([]string, len(kindColumns))
	for i, c := range kindColumns {
		cols[i] = c.name + " " + s.h.Kinds[c.kind].SQL
	}
	db.Exec(t, fmt.Sprintf("CREATE TABLE %s (%s, PRIMARY KEY (id))", name, strings.Join(cols, ", ")))
}

// kindsSchema is the expected column list and types of the table of
// every kind.
func (s *suite) kindsSchema() ([]string, map[string]change.Type) {
	cols, types := make([]string, len(kindColumns)), map[string]change.Type{}
	for i, c := range kindColumns {
		cols[i], types[c.name] = c.name, s.h.Kinds[c.kind].Type
	}
	return cols, types
}

// kindsRow is row id of the table of every kind with sample i of each kind
// (i < 0: NULLs), as SQL values in table order and as captured.
func (s *suite) kindsRow(id int64, i int) (string, change.Row) {
	lits, row := make([]string, len(kindColumns)), change.Row{}
	for j, c := range kindColumns {
		switch {
		case c.name == "id":
			lits[j], row[c.name] = fmt.Sprint(id), id
		case i < 0:
			lits[j], row[c.name] = "NULL", nil
		default:
			k := s.h.Kinds[c.kind]
			lits[j], row[c.name] = k.Literals[i], k.Values[i]
		}
	}
	return "(" + strings.Join(lits, ", ") + ")", row
}

// deleted is the Before of a delete of row, keyed by key.
func (s *suite) deleted(key []string, row change.Row) change.Row {
	if s.h.FullBeforeImages {
		return row
	}
	return capture.KeyOnly(key, row)
}

// updated is the Before of an update of row that keeps its key.
func (s *suite) updated(row change.Row) change.Row {
	if s.h.FullBeforeImages {
		return row
	}
	return nil
}

// eventOpts compares events in full but for their source stamps, which
// checkStamps covers: Pos (informational; the batch's is acknowledged),
// TxID (0 where the source has none) and Commit.
// SQLTypes are the capturer's own names, checked by its unit tests and the golden records.
var eventOpts = cmpopts.IgnoreFields(change.Event{}, "Pos", "TxID", "Commit", "SQLTypes")

// shape builds events of one table.
type shape struct {
	table change.Table
	key   []string
	cols  []string
	types map[string]change.Type
}

func (sh shape) ev(op change.Op, before, after change.Row) change.Event {
	return change.Event{Op: op, Table: sh.table, Key: sh.key, Types: sh.types, Columns: sh.cols, Before: before, After: after}
}

func (s *suite) insertsUpdatesDeletes(t *testing.T) {
	db := s.h.NewDatabase(t)
	s.kindsTable(db, t, "kinds")
	src := db.Source(t, SourceConfig{Tables: []change.Table{db.Table("kinds")}})
	st := StartStream(t, src)

	v1, row1 := s.kindsRow(1, 0)
	v2, row2 := s.kindsRow(2, -1)
	db.Exec(t, "INSERT INTO kinds VALUES "+v1+", "+v2)
	sets, row1b := []string{}, change.Row{}
	for _, c := range kindColumns {
		if c.name == "id" {
			row1b["id"] = int64(1)
			continue
		}
		k := s.h.Kinds[c.kind]
		sets, row1b[c.name] = append(sets, c.name+" = "+k.Literals[1]), k.Values[1]
	}
	db.Exec(t, "UPDATE kinds SET "+strings.Join(sets, ", ")+" WHERE id = 1")
	db.Exec(t, "DELETE FROM kinds WHERE id = 2")

	cols, types := s.kindsSchema()
	sh := shape{table: db.Table("kinds"), key: []string{"id"}, cols: cols, types: types}
	for i, want := range [][]change.Event{
		{sh.ev(change.OpCreate, nil, row1), sh.ev(change.OpCreate, nil, row2)},
		{sh.ev(change.OpUpdate, s.updated(row1), row1b)},
		{sh.ev(change.OpDelete, s.deleted(sh.key, row2), nil)},
	} {
		if diff := cmp.Diff(want, st.Events(), eventOpts); diff != "" {
			t.Errorf("transaction %d: events (-want +got):\n%s", i+1, diff)
		}
	}
}

func (s *suite) keyChange(t *testing.T) {
	db := s.h.NewDatabase(t)
	intT, textT, keyT := s.h.Kinds[KindInt], s.h.Kinds[KindText], s.h.Kinds[KindKeyText]
	db.Exec(t, fmt.Sprintf("CREATE TABLE moves (id %s, v %s, PRIMARY KEY (id))", intT.SQL, textT.SQL))
	db.Exec(t, fmt.Sprintf("CREATE TABLE pairs (a %s, b %s, v %s, PRIMARY KEY (a, b))", intT.SQL, keyT.SQL, textT.SQL))
	db.Exec(t, "INSERT INTO moves VALUES (1, 'x')")
	db.Exec(t, "INSERT INTO pairs VALUES (1, 'a', 'x')")
	st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{db.Table("moves"), db.Table("pairs")}}))

	moves := shape{table: db.Table("moves"), key: []string{"id"}, cols: []string{"id", "v"},
		types: map[string]change.Type{"id": intT.Type, "v": textT.Type}}
	pairs := shape{table: db.Table("pairs"), key: []string{"a", "b"}, cols: []string{"a", "b", "v"},
		types: map[string]change.Type{"a": intT.Type, "b": keyT.Type, "v": textT.Type}}
	for _, tc := range []struct {
		sql  string
		want []change.Event
	}{
		{"UPDATE moves SET id = 2, v = 'y' WHERE id = 1", []change.Event{
			moves.ev(change.OpDelete, s.deleted(moves.key, change.Row{"id": int64(1), "v": "x"}), nil),
			moves.ev(change.OpCreate, nil, change.Row{"id": int64(2), "v": "y"}),
		}},
		{"UPDATE moves SET v = 'z' WHERE id = 2", []change.Event{
			moves.ev(change.OpUpdate, s.updated(change.Row{"id": int64(2), "v": "y"}), change.Row{"id": int64(2), "v": "z"}),
		}},
		{"UPDATE pairs SET b = 'b' WHERE a = 1", []change.Event{
			pairs.ev(change.OpDelete, s.deleted(pairs.key, change.Row{"a": int64(1), "b": "a", "v": "x"}), nil),
			pairs.ev(change.OpCreate, nil, change.Row{"a": int64(1), "b": "b", "v": "x"}),
		}},
	} {
		db.Exec(t, tc.sql)
		bs := st.Tx()
		if len(bs) != 1 {
			t.Errorf("%s: %d batches, want one", tc.sql, len(bs))
		}
		if diff := cmp.Diff(tc.want, Flatten(bs), eventOpts); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", tc.sql, diff)
		}
	}
}

// itemsTable creates items (id, name), and other, which is not captured.
func (s *suite) itemsTable(db SourceDB, t *testing.T) shape {
	t.Helper()
	intT, textT := s.h.Kinds[KindInt], s.h.Kinds[KindText]
	db.Exec(t, fmt.Sprintf("CREATE TABLE items (id %s, name %s, PRIMARY KEY (id))", intT.SQL, textT.SQL))
	db.Exec(t, fmt.Sprintf("CREATE TABLE other (id %s, PRIMARY KEY (id))", intT.SQL))
	return shape{table: db.Table("items"), key: []string{"id"}, cols: []string{"id", "name"},
		types: map[string]change.Type{"id": intT.Type, "name": textT.Type}}
}

func item(id int64, name string) change.Row { return change.Row{"id": id, "name": name} }

func (s *suite) transaction(t *testing.T) {
	db := s.h.NewDatabase(t)
	items := s.itemsTable(db, t)
	st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{items.table}}))

	db.Exec(t, "INSERT INTO items VALUES (1, 'one')")
	db.Exec(t, "BEGIN; INSERT INTO items VALUES (2, 'two'); INSERT INTO other VALUES (1); "+
		"UPDATE items SET name = 'uno' WHERE id = 1; DELETE FROM items WHERE id = 2; COMMIT")
	if diff := cmp.Diff([]change.Event{items.ev(change.OpCreate, nil, item(1, "one"))}, st.Events(), eventOpts); diff != "" {
		t.Errorf("first transaction (-want +got):\n%s", diff)
	}
	bs := st.Tx()
	if len(bs) != 1 {
		t.Fatalf("%d batches for one transaction, want one: %+v", len(bs), bs)
	}
	want := []change.Event{
		items.ev(change.OpCreate, nil, item(2, "two")),
		items.ev(change.OpUpdate, s.updated(item(1, "one")), item(1, "uno")),
		items.ev(change.OpDelete, s.deleted(items.key, item(2, "two")), nil),
	}
	if diff := cmp.Diff(want, bs[0].Events, eventOpts); diff != "" {
		t.Errorf("events of the transaction (-want +got):\n%s", diff)
	}
}

func (s *suite) largeTransaction(t *testing.T) {
	for _, tc := range []struct {
		rows  int
		sizes []int // events per batch
	}{
		{rows: 25, sizes: []int{10, 10, 5}},
		// An exact multiple: the commit comes after the last interim batch,
		// so the batch that carries the position is empty.
		{rows: 20, sizes: []int{10, 10, 0}},
		{rows: 9, sizes: []int{9}},
	} {
		t.Run(fmt.Sprint(tc.rows, "rows"), func(t *testing.T) {
			db := s.h.NewDatabase(t)
			items := s.itemsTable(db, t)
			st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{items.table}, MaxBatch: 10}))
			var vals []string
			var want []change.Event
			for i := 1; i <= tc.rows; i++ {
				vals = append(vals, fmt.Sprintf("(%d, 'n%d')", i, i))
				want = append(want, items.ev(change.OpCreate, nil, item(int64(i), fmt.Sprint("n", i))))
			}
			db.Exec(t, "INSERT INTO items VALUES "+strings.Join(vals, ", "))
			bs := st.Tx()
			var sizes []int
			for _, b := range bs {
				sizes = append(sizes, len(b.Events))
			}
			if diff := cmp.Diff(tc.sizes, sizes); diff != "" {
				t.Errorf("batch sizes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, Flatten(bs), eventOpts); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func (s *suite) restart(t *testing.T) {
	db := s.h.NewDatabase(t)
	items := s.itemsTable(db, t)
	cfg := SourceConfig{Tables: []change.Table{items.table}}
	created := func(ids ...int64) []change.Event {
		var evs []change.Event
		for _, id := range ids {
			evs = append(evs, items.ev(change.OpCreate, nil, item(id, fmt.Sprint("n", id))))
		}
		return evs
	}
	insert := func(ids ...int64) {
		var vals []string
		for _, id := range ids {
			vals = append(vals, fmt.Sprintf("INSERT INTO items VALUES (%d, 'n%d')", id, id))
		}
		if len(vals) == 1 {
			db.Exec(t, vals[0])
			return
		}
		db.Exec(t, "BEGIN; "+strings.Join(vals, "; ")+"; COMMIT")
	}
	expect := func(what string, st *Stream, want []change.Event) change.Position {
		t.Helper()
		bs := st.Tx()
		if diff := cmp.Diff(want, Flatten(bs), eventOpts); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", what, diff)
		}
		return bs[len(bs)-1].Pos
	}
	stop := func(src capture.Source, st *Stream) {
		t.Helper()
		if err := st.Stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream returned %v after cancel, want context.Canceled", err)
		}
		if err := src.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}

	// Nothing acknowledged: a restart replays every transaction.
	src := db.Source(t, cfg)
	st := StartStream(t, src)
	insert(1)
	expect("first transaction", st, created(1))
	stop(src, st)
	src = db.Source(t, cfg)
	st = StartStream(t, src)
	pa := expect("the unacknowledged transaction after a restart", st, created(1))

	// Acknowledged up to the second of three: a restart resumes with the
	// third, and an older acknowledgement does not move it back.
	insert(2, 3)
	pb := expect("the second transaction", st, created(2, 3))
	insert(4)
	expect("the third transaction", st, created(4))
	if err := src.Ack(pb); err != nil {
		t.Fatalf("Ack(%v): %v", pb, err)
	}
	if err := src.Ack(pa); err != nil {
		t.Fatalf("Ack of an older position (%v): %v", pa, err)
	}
	stop(src, st)
	insert(5) // while no capturer runs: not lost
	src = db.Source(t, cfg)
	st = StartStream(t, src)
	expect("the unacknowledged third transaction after a restart", st, created(4))
	expect("the transaction written while stopped", st, created(5))
	insert(6)
	expect("a transaction after the restart", st, created(6))
}

func (s *suite) addColumn(t *testing.T) {
	db := s.h.NewDatabase(t)
	items := s.itemsTable(db, t)
	st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{items.table}}))
	db.Exec(t, "INSERT INTO items VALUES (1, 'one')")
	db.Exec(t, "ALTER TABLE items ADD COLUMN qty "+s.h.Kinds[KindInt].SQL+" DEFAULT 5")
	db.Exec(t, "INSERT INTO items VALUES (2, 'two', 7)")
	db.Exec(t, "UPDATE items SET name = 'uno' WHERE id = 1")

	wide := items
	wide.cols = []string{"id", "name", "qty"}
	wide.types = map[string]change.Type{"id": items.types["id"], "name": items.types["name"], "qty": s.h.Kinds[KindInt].Type}
	want := []change.Event{
		items.ev(change.OpCreate, nil, item(1, "one")),
		wide.ev(change.OpCreate, nil, change.Row{"id": int64(2), "name": "two", "qty": int64(7)}),
		wide.ev(change.OpUpdate, s.updated(change.Row{"id": int64(1), "name": "one", "qty": int64(5)}),
			change.Row{"id": int64(1), "name": "uno", "qty": int64(5)}),
	}
	var got []change.Event
	for range 3 {
		got = append(got, st.Events()...)
	}
	if diff := cmp.Diff(want, got, eventOpts); diff != "" {
		t.Errorf("across ADD COLUMN (-want +got):\n%s", diff)
	}
}

func (s *suite) cancel(t *testing.T) {
	db := s.h.NewDatabase(t)
	items := s.itemsTable(db, t)
	cfg := SourceConfig{Tables: []change.Table{items.table}}

	t.Run("idle", func(t *testing.T) {
		st := StartStream(t, db.Source(t, cfg))
		db.Exec(t, "INSERT INTO items VALUES (1, 'one')")
		st.Events() // streaming, and now idle
		if err := st.Stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Stream returned %v, want context.Canceled", err)
		}
	})
	t.Run("before connecting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := db.Source(t, cfg).Stream(ctx, func(context.Context, change.Batch) error { return errors.New("a batch after cancel") })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Stream returned %v, want context.Canceled", err)
		}
	})
	t.Run("emit blocked", func(t *testing.T) {
		src := db.Source(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		entered := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- src.Stream(ctx, func(ctx context.Context, b change.Batch) error {
				if len(b.Events) == 0 {
					return nil
				}
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		db.Exec(t, "INSERT INTO items VALUES (2, 'two')")
		select {
		case <-entered:
		case err := <-done:
			t.Fatalf("Stream returned before emitting: %v", err)
		case <-time.After(streamTimeout):
			t.Fatal("no batch emitted")
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Stream returned %v, want context.Canceled", err)
			}
		case <-time.After(streamTimeout):
			t.Fatal("Stream did not return after cancel")
		}
	})
}

func (s *suite) noKey(t *testing.T) {
	db := s.h.NewDatabase(t)
	db.Exec(t, fmt.Sprintf("CREATE TABLE nokey (id %s, v %s)", s.h.Kinds[KindInt].SQL, s.h.Kinds[KindText].SQL))
	st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{db.Table("nokey")}}))
	db.Exec(t, "INSERT INTO nokey VALUES (1, 'a')")
	err := st.Wait()
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nokey") {
		t.Errorf("Stream returned %v, want an error naming the table without a key", err)
	}
	for len(st.Batches()) > 0 {
		if b := <-st.Batches(); len(b.Events) > 0 {
			t.Errorf("Stream emitted %v before failing, want no change of the table", b.Events)
		}
	}
}

func (s *suite) snapshot(t *testing.T) {
	db := s.h.NewDatabase(t)
	s.kindsTable(db, t, "kinds")
	table := db.Table("kinds")
	st := StartStream(t, db.Source(t, SourceConfig{Tables: []change.Table{table}}))
	var streamed []change.Row
	for i, id := range []int64{1, 2, 10} { // 10: keys order as numbers, not as text
		lit, _ := s.kindsRow(id, []int{0, -1, 1}[i])
		db.Exec(t, "INSERT INTO kinds VALUES "+lit)
		evs := st.Events()
		if len(evs) != 1 {
			t.Fatalf("insert of row %d: %d events, want 1", id, len(evs))
		}
		streamed = append(streamed, evs[0].After)
	}
	ctx := t.Context()
	r := db.Reader(t)

	cols, types := s.kindsSchema()
	tb, err := r.Describe(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&change.Schema{Name: table, Columns: cols, Types: types, Key: []string{"id"}}, tb); diff != "" {
		t.Errorf("Describe (-as streamed +got):\n%s", diff)
	}
	for _, c := range []struct {
		after, last []string
		rows        []change.Row
	}{
		{nil, []string{"2"}, streamed[:2]},
		{[]string{"2"}, []string{"10"}, streamed[2:]},
		{[]string{"10"}, nil, nil},
	} {
		rows, last, err := r.Chunk(ctx, tb, c.after, 2)
		if err != nil {
			t.Fatalf("Chunk after %q: %v", c.after, err)
		}
		if diff := cmp.Diff(c.rows, rows, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Chunk after %q: rows (-as streamed +read):\n%s", c.after, diff)
		}
		if len(rows) > 0 && !slices.Equal(c.last, last) {
			t.Errorf("Chunk after %q: last key %q, want %q", c.after, last, c.last)
		}
	}
	for _, want := range streamed {
		key := change.Row{"id": want["id"]}
		got, err := r.Row(ctx, tb, key)
		if err != nil {
			t.Fatalf("Row(%v): %v", key, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Row(%v) (-as streamed +read):\n%s", key, diff)
		}
	}
	if got, err := r.Row(ctx, tb, change.Row{"id": int64(3)}); err != nil || got != nil {
		t.Errorf("Row of an absent key = %v, %v; want nil, nil", got, err)
	}
	LockRowReadsAsChunk(t, r, table, change.Row{"id": int64(3)})

	db.Exec(t, fmt.Sprintf(s.h.Analyze, "kinds"))
	if n, err := r.Estimate(ctx, table); err != nil || n != 3 {
		t.Errorf("Estimate of 3 rows after analyzing = %d, %v; want 3", n, err)
	}
	if n, err := r.Estimate(ctx, db.Table("missing")); err == nil {
		t.Errorf("Estimate of a missing table = %d, want an error", n)
	}
}

func (s *suite) snapshotPaging(t *testing.T) {
	db := s.h.NewDatabase(t)
	// The key in another order than the columns: (b, a).
	db.Exec(t, fmt.Sprintf("CREATE TABLE pairs (a %s, b %s, v %s, PRIMARY KEY (b, a))",
		s.h.Kinds[KindInt].SQL, s.h.Kinds[KindKeyText].SQL, s.h.Kinds[KindText].SQL))
	var vals []string
	for g := 1; g <= 12; g++ {
		vals = append(vals, fmt.Sprintf("(%d, 'k%d', 'v%d')", g%3, g%4, g))
	}
	db.Exec(t, "INSERT INTO pairs VALUES "+strings.Join(vals, ", "))
	ctx := t.Context()
	r := db.Reader(t)
	tb, err := r.Describe(ctx, db.Table("pairs"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b", "a"}, tb.Key); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}
	var seen, lasts []string
	var after []string
	for range 4 {
		rows, last, err := r.Chunk(ctx, tb, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			seen = append(seen, fmt.Sprintf("%v/%v", row["b"], row["a"]))
		}
		if len(rows) == 0 {
			break
		}
		lasts = append(lasts, strings.Join(last, "/"))
		after = last
	}
	want := []string{"k0/0", "k0/1", "k0/2", "k1/0", "k1/1", "k1/2", "k2/0", "k2/1", "k2/2", "k3/0", "k3/1", "k3/2"}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("rows in key order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k1/1", "k3/0", "k3/2"}, lasts); diff != "" {
		t.Errorf("last keys of the chunks (-want +got):\n%s", diff)
	}
}

// Stream is a capturer's Stream running in a goroutine, for tests: its
// batches are read with Next, Tx and Events, or from Batches.
type Stream struct {
	t       *testing.T
	cancel  context.CancelFunc
	batches chan change.Batch
	done    chan struct{} // closed when Stream has returned err
	err     error
}

// StartStream runs src.Stream until the test ends or Stop is called.
func StartStream(t *testing.T, src capture.Source) *Stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stream{t: t, cancel: cancel, batches: make(chan change.Batch, 1000), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = src.Stream(ctx, func(ctx context.Context, b change.Batch) error {
			select {
			case s.batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Batches are the batches emitted and not read yet.
func (s *Stream) Batches() <-chan change.Batch { return s.batches }

// Stop cancels the stream and returns what Stream returned. It may be
// called again.
func (s *Stream) Stop() error {
	s.t.Helper()
	s.cancel()
	return s.Wait()
}

// Wait returns what Stream returned, failing the test when it does not
// return in time.
func (s *Stream) Wait() error {
	s.t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(streamTimeout):
		s.t.Fatalf("Stream did not return within %v", streamTimeout)
		return nil
	}
}

// Next returns the next batch, failing the test when none comes in time or
// the stream ends.
func (s *Stream) Next() change.Batch {
	s.t.Helper()
	select {
	case b := <-s.batches:
		return b
	case <-s.done:
		select {
		case b := <-s.batches: // emitted just before Stream returned
			return b
		default:
		}
		s.t.Fatalf("Stream returned while a batch was expected: %v", s.err)
	case <-time.After(streamTimeout):
		s.t.Fatalf("no batch within %v", streamTimeout)
	}
	return change.Batch{}
}

// Tx returns the batches of the next transaction that has events: up to
// and including the first with a position. It skips positions alone (a
// capturer may emit them for transactions on tables it does not capture,
// so that they get acknowledged), and checks the stamps of the batches.
func (s *Stream) Tx() []change.Batch {
	s.t.Helper()
	var bs []change.Batch
	for {
		b := s.Next()
		if b.Pos != nil && len(b.Events) == 0 && len(bs) == 0 {
			continue
		}
		bs = append(bs, b)
		if b.Pos != nil {
			checkStamps(s.t, bs)
			return bs
		}
	}
}

// Events returns the events of the next transaction.
func (s *Stream) Events() []change.Event {
	s.t.Helper()
	return Flatten(s.Tx())
}

// Flatten returns the events of bs, in order.
func Flatten(bs []change.Batch) []change.Event {
	var evs []change.Event
	for _, b := range bs {
		evs = append(evs, b.Events...)
	}
	return evs
}

// checkStamps checks what eventOpts ignores, as far as every capturer
// promises it: only the last batch of a transaction has a position; every
// batch and event has a commit time.
func checkStamps(t *testing.T, bs []change.Batch) {
	t.Helper()
	for i, b := range bs {
		if last := i == len(bs)-1; last != (b.Pos != nil) || last && b.Pos.String() == "" {
			t.Errorf("batch %d of %d has position %#v: want one on the last batch only", i+1, len(bs), b.Pos)
		}
		if b.Commit.IsZero() {
			t.Errorf("batch %d of %d has no commit time", i+1, len(bs))
		}
		for j, e := range b.Events {
			if e.Commit.IsZero() {
				t.Errorf("batch %d event %d has no commit time", i+1, j)
			}
		}
	}
}
