package postgres_test

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// row is a target row: for writes, column -> Go value; as read back,
// column -> PostgreSQL's text form, nil for NULL.
type row = map[string]any

// shopDDL is the target schema most tests write to.
const shopDDL = `
CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer, note text);
CREATE TABLE lines (order_id bigint, line integer, sku text, PRIMARY KEY (order_id, line));
`

// The queries that read the whole of each shop table, in key order.
const (
	allItems = "SELECT * FROM items ORDER BY id"
	allLines = "SELECT * FROM lines ORDER BY order_id, line"
)

// target is a fresh database holding a schema, and a Sink writing to it.
type target struct {
	dsn  string
	db   *pgxpool.Pool
	sink *postgres.Sink
}

func newTarget(t *testing.T, ddl string) *target {
	t.Helper()
	dsn := testenv.NewDatabase(t)
	db, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to the target: %v", err)
	}
	t.Cleanup(db.Close)
	tg := &target{dsn: dsn, db: db}
	tg.Exec(t, ddl)
	tg.sink = tg.newSink(t, postgres.Config{DSN: dsn})
	return tg
}

// newSink opens another Sink on the target, closed when the test ends.
func (tg *target) newSink(t *testing.T, cfg postgres.Config) *postgres.Sink {
	t.Helper()
	s, err := postgres.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exec runs sql, which may hold several statements.
func (tg *target) Exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := tg.db.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Rows returns what query selects, every column in PostgreSQL's text form.
func (tg *target) Rows(t *testing.T, query string) []row {
	t.Helper()
	// not a cached statement: tests alter tables between reads
	rs, err := tg.db.Query(t.Context(), query, pgx.QueryExecModeDescribeExec, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		r := row{}
		for i, f := range rs.FieldDescriptions() {
			r[f.Name] = nil
			if v := rs.RawValues()[i]; v != nil {
				r[f.Name] = string(v)
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

// wantPgError fails the test unless err wraps a PostgreSQL error with code.
func wantPgError(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("error = %v, want SQLSTATE %s", err, code)
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
INSERT INTO lines VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')`,
			batches: [][]change.Write{{
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteDelete, row{"id": int64(99)}),
				line(change.WriteDelete, row{"order_id": int64(1), "line": int64(2)}),
				line(change.WriteDelete, row{"order_id": int64(7), "line": int64(7)}),
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
INSERT INTO lines VALUES (1, 1, 'x')`,
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
INSERT INTO lines VALUES (1, 1, 'x'), (1, 2, 'y')`)
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
	items, lines := tg.Rows(t, allItems), tg.Rows(t, allLines)
	// The writes themselves are idempotent...
	tg.apply(t, sink.Checkpoint{}, b...)
	tg.wantRows(t, allItems, items)
	tg.wantRows(t, allLines, lines)
	// ...and the same batch with its offsets again is fenced off: it was applied.
	if err := tg.applyErr(t, cp, b...); !errors.Is(err, sink.ErrFenced) {
		t.Errorf("applying a batch whose offsets are stored already = %v, want ErrFenced", err)
	}
	tg.wantRows(t, allItems, items)
	tg.wantRows(t, allLines, lines)
	tg.wantOffsets(t, "g", "e", cp.Offsets)
}

// typesDDL has a column of each type the sink must write through text casts.
const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
	id integer PRIMARY KEY, i8 bigint, i4 integer, n numeric(65,30), f double precision, b boolean,
	t text, by bytea, js jsonb, jm jsonb, ts timestamptz, d date, u uuid, m mood, c char(3), v varchar(5));
`

// withNulls sets every column of kinds that r does not name to nil: what a
// row inserted without them holds, or a write of NULL to each.
func withNulls(r row) row {
	for _, c := range []string{"i8", "i4", "n", "f", "b", "t", "by", "js", "jm", "ts", "d", "u", "m", "c", "v"} {
		if _, ok := r[c]; !ok {
			r[c] = nil
		}
	}
	return r
}

func TestApply_TypesGoThroughTextCasts(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, typesDDL)
	kind := func(r row) change.Write { return write(change.WriteUpsert, "kinds", r, "id") }
	tg.apply(t, sink.Checkpoint{},
		kind(row{
			"id": int64(1), "i8": int64(math.MinInt64), "i4": int32(math.MaxInt32),
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": 0.1, "b": true, "t": "naïve 🐘 日本語のテキスト",
			"by": []byte{0x00, 0x01, '\\', '\'', 0xff},
			"js": `{"b": [1, 2.50], "a": "x"}`,
			"jm": map[string]any{"k": "v", "n": 1.5, "nested": map[string]any{"z": nil}, "list": []any{1, "two"}},
			"ts": time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("JST", 9*3600)),
			"d":  "2024-02-29", "u": "6f1c8a5e-3b7d-4c2a-9e1f-0a1b2c3d4e5f", "m": "happy", "c": "ab", "v": "日本語です",
		}),
		kind(row{"id": int64(2), "i8": uint64(math.MaxInt64), "i4": int(-7), "n": 0.1, "f": math.NaN(), "b": false,
			"d": time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "by": []byte{}, "t": ""}),
		kind(row{"id": int64(3), "f": math.Inf(1), "n": "NaN"}),
		kind(row{"id": int64(4), "f": math.Inf(-1)}),
		kind(withNulls(row{"id": int64(5)})),
	)
	tg.wantRows(t, "SELECT * FROM kinds ORDER BY id", []row{
		{
			"id": "1", "i8": "-9223372036854775808", "i4": "2147483647",
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": "0.1", "b": "t", "t": "naïve 🐘 日本語のテキスト",
			"by": `\x00015c27ff`,
			"js": `{"a": "x", "b": [1, 2.50]}`,
			"jm": `{"k": "v", "n": 1.5, "list": [1, "two"], "nested": {"z": null}}`,
			"ts": "2024-02-29 14:59:59.123457+00",
			"d":  "2024-02-29", "u": "6f1c8a5e-3b7d-4c2a-9e1f-0a1b2c3d4e5f", "m": "happy", "c": "ab ", "v": "日本語です",
		},
		withNulls(row{"id": "2", "i8": "9223372036854775807", "i4": "-7", "n": "0.100000000000000000000000000000", "f": "NaN", "b": "f",
			"d": "2024-03-01", "by": `\x`, "t": ""}),
		withNulls(row{"id": "3", "f": "Infinity", "n": "NaN"}),
		withNulls(row{"id": "4", "f": "-Infinity"}),
		withNulls(row{"id": "5"}),
	})
}

func TestApply_TooLongValueIsAnErrorNotATruncation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    row
	}{
		{"varchar(5) given 6 characters", row{"id": int64(1), "v": "abcdef"}},
		{"varchar(5) given 6 Japanese characters", row{"id": int64(1), "v": "日本語のテキ"}},
		{"char(3) given 4 characters", row{"id": int64(1), "c": "abcd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, typesDDL)
			err := tg.applyErr(t, sink.Checkpoint{}, write(change.WriteUpsert, "kinds", tc.r, "id"))
			wantPgError(t, err, "22001") // string_data_right_truncation
			tg.wantRows(t, "SELECT * FROM kinds", nil)
		})
	}
}

// hostileDDL names a schema, a type, a table and columns as badly as PostgreSQL allows.
const hostileDDL = `
CREATE SCHEMA "Shop Old";
CREATE TYPE "Shop Old"."Mood" AS ENUM ('sad', 'happy');
CREATE TABLE "Shop Old"."order" (
	"select" bigint, "MixedCase" text, """quoted""" text, "Mood" "Shop Old"."Mood",
	"a,b" text, a text, b text,
	PRIMARY KEY ("select", "MixedCase"));
`

func TestApply_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, hostileDDL)
	const table = "Shop Old.order"
	key := []string{"select", "MixedCase"}
	order := func(op change.WriteOp, r row) change.Write { return write(op, table, r, key...) }
	// Another state schema, as badly named.
	s := tg.newSink(t, postgres.Config{DSN: tg.dsn, StateSchema: `Tandem "State"`})
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("shop.order", 0, 7)}}
	err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteUpsert, row{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma"}),
		// the same columns as above but for "a,b", and a and b instead
		order(change.WriteUpsert, row{"select": int64(2), "MixedCase": "b", `"quoted"`: "q2", "Mood": "sad", "a": "x", "b": "y"}),
		order(change.WriteInsertIfAbsent, row{"select": int64(3), "MixedCase": "C"}),
		order(change.WriteUpsert, row{"select": int64(4), "MixedCase": "d", "a": "gone"}),
	}}, cp)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteDelete, row{"select": int64(4), "MixedCase": "d"}),
		order(change.WriteUpsert, row{"select": int64(3), "MixedCase": "C", "Mood": "sad"}),
	}}, sink.Checkpoint{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	tg.wantRows(t, `SELECT * FROM "Shop Old"."order" ORDER BY 1, 2`, []row{
		{"select": "1", "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma", "a": nil, "b": nil},
		{"select": "2", "MixedCase": "b", `"quoted"`: "q2", "Mood": "sad", "a,b": nil, "a": "x", "b": "y"},
		{"select": "3", "MixedCase": "C", `"quoted"`: nil, "Mood": "sad", "a,b": nil, "a": nil, "b": nil},
	})
	got, err := s.Offsets(t.Context(), "g", "e")
	if err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	if diff := cmp.Diff(cp.Offsets, got); diff != "" {
		t.Errorf("Offsets (-want +got):\n%s", diff)
	}
	uses := []sink.TableUse{{Table: table, Key: key, Columns: []string{"select", "MixedCase", `"quoted"`, "Mood", "a,b", "a", "b"}}}
	if diff := cmp.Diff([]preflight.Problem(nil), postgres.Check(t.Context(), postgres.Config{DSN: tg.dsn}, uses)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestApply_FailedBatchStoresNeitherRowsNorOffsets(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`ALTER TABLE items ALTER name SET NOT NULL`)
	tg.apply(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("items", 0, 10)}},
		item(change.WriteUpsert, row{"id": int64(1), "name": "one"}))
	err := tg.applyErr(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("items", 0, 20), offset("items", 1, 5)}},
		line(change.WriteUpsert, row{"order_id": int64(1), "line": int64(1), "sku": "x"}),
		item(change.WriteUpsert, row{"id": int64(2), "name": "two"}),
		item(change.WriteUpsert, row{"id": int64(3), "name": nil}))
	wantPgError(t, err, "23502") // not_null_violation
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
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 10), offset("t", 1, 10)},
			},
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
			name: "groups are apart",
			steps: []step{
				{cp: cp("g", "e", offset("t", 0, 10))},
				{cp: cp("h", "e", offset("t", 0, 3))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e"}:     {offset("t", 0, 10)},
				{"h", "e"}:     {offset("t", 0, 3)},
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

func TestApply_MissingTableIsErrTableNotFoundUntilCreated(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 1)}}
	for _, table := range []string{"later", "nope.later"} {
		err := tg.applyErr(t, cp, write(change.WriteUpsert, table, row{"id": int64(1), "v": "a"}, "id"))
		if !errors.Is(err, postgres.ErrTableNotFound) {
			t.Errorf("Apply to %s: error = %v, want one wrapping ErrTableNotFound", table, err)
		}
	}
	tg.wantOffsets(t, "g", "e", nil)

	tg.Exec(t, `CREATE TABLE later (id bigint PRIMARY KEY, v text)`)
	tg.sink.Forget()
	tg.apply(t, cp, write(change.WriteUpsert, "later", row{"id": int64(1), "v": "a"}, "id"))
	tg.wantRows(t, "SELECT * FROM later", []row{{"id": "1", "v": "a"}})
	tg.wantOffsets(t, "g", "e", cp.Offsets)

	// A column added after the table was described needs Forget too.
	added := write(change.WriteUpsert, "later", row{"id": int64(1), "w": "b"}, "id")
	tg.Exec(t, `ALTER TABLE later ADD COLUMN w text`)
	tg.applyErr(t, sink.Checkpoint{}, added)
	tg.sink.Forget()
	tg.apply(t, sink.Checkpoint{}, added)
	tg.wantRows(t, "SELECT * FROM later", []row{{"id": "1", "v": "a", "w": "b"}})
}

func TestCheck_ReportsWhatTheTargetLacks(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `
CREATE TABLE good (id bigint PRIMARY KEY, name text);
CREATE TABLE nokey (id bigint, name text);
CREATE TABLE partial (id bigint, name text);
CREATE UNIQUE INDEX ON partial (id) WHERE id > 0;
CREATE TABLE wide (id bigint, tenant integer, name text);
CREATE UNIQUE INDEX ON wide (tenant, id);
CREATE TABLE covering (id bigint, name text);
CREATE UNIQUE INDEX ON covering (id) INCLUDE (name);
CREATE TABLE deferred (id bigint, name text, UNIQUE (id) DEFERRABLE);
`)
	use := func(table string, key ...string) sink.TableUse {
		return sink.TableUse{Table: table, Key: key, Columns: append([]string{"name"}, key...)}
	}
	noKey := func(table, key, fix string) preflight.Problem {
		return preflight.Problem{Severity: preflight.Fail, Object: "target table " + table,
			What: "has no primary key or unique index on the mapping key (" + key + "), which upserts need", Fix: fix}
	}
	tests := []struct {
		name string
		uses []sink.TableUse
		want []preflight.Problem
	}{
		{"a good table", []sink.TableUse{use("good", "id"), use("public.good", "id")}, nil},
		{"a key in another order than the unique index's", []sink.TableUse{use("wide", "id", "tenant")}, nil},
		{"a unique index with included columns", []sink.TableUse{use("covering", "id")}, nil},
		{"a missing table", []sink.TableUse{use("missing", "id"), use("nope.good", "id")}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target table missing", What: "does not exist", Fix: "create it in the target, or correct the mapping's table"},
			{Severity: preflight.Fail, Object: "target table nope.good", What: "does not exist", Fix: "create it in the target, or correct the mapping's table"},
		}},
		{"a missing column", []sink.TableUse{{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name", "Name", "price"}}}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target column good.Name", What: "does not exist", Fix: `ALTER TABLE "good" ADD COLUMN "Name" <type>; or correct the mapping`},
			{Severity: preflight.Fail, Object: "target column good.price", What: "does not exist", Fix: `ALTER TABLE "good" ADD COLUMN "price" <type>; or correct the mapping`},
		}},
		{"no unique index on the key", []sink.TableUse{use("nokey", "id")}, []preflight.Problem{
			noKey("nokey", "id", `CREATE UNIQUE INDEX ON "nokey" ("id");`),
		}},
		{"a key of a column that is not unique alone", []sink.TableUse{use("wide", "id"), use("good", "id", "name")}, []preflight.Problem{
			noKey("wide", "id", `CREATE UNIQUE INDEX ON "wide" ("id");`),
			noKey("good", "id, name", `CREATE UNIQUE INDEX ON "good" ("id", "name");`),
		}},
		{"a partial unique index", []sink.TableUse{use("partial", "id")}, []preflight.Problem{
			noKey("partial", "id", `CREATE UNIQUE INDEX ON "partial" ("id");`),
		}},
		{"a deferrable unique constraint", []sink.TableUse{use("deferred", "id")}, []preflight.Problem{
			noKey("deferred", "id", `CREATE UNIQUE INDEX ON "deferred" ("id");`),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, postgres.Check(t.Context(), postgres.Config{DSN: tg.dsn}, tc.uses)); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck_ReportsAUserWhoMayNotWrite(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE good (id bigint PRIMARY KEY, name text)`)
	cfg, err := pgconn.ParseConfig(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Roles belong to the server, so the name comes from the test's database.
	role := "reader_" + cfg.Database
	tg.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader-pw'; GRANT SELECT, INSERT ON good TO %[1]s`,
		pgx.Identifier{role}.Sanitize()))
	u, err := url.Parse(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "reader-pw")
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "target table good",
		What: "the target user may not insert, update and delete rows", Fix: `GRANT INSERT, UPDATE, DELETE, SELECT ON "good" TO <target user>;`}}
	got := postgres.Check(t.Context(), postgres.Config{DSN: u.String()}, []sink.TableUse{{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name"}}})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
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
					// each row is written twice, the second time with its final values
					ws = append(ws, item(change.WriteUpsert, row{"id": id, "name": "draft", "qty": int64(-1), "note": "draft"}))
					ws = append(ws, item(change.WriteUpsert, row{"id": id, "name": fmt.Sprintf("c%d b%d", c, b), "qty": int64(i), "note": nil}))
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
	tg := newTarget(t, `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)`)
	dl := sink.DeadLetter{Mapping: "m", Reason: "transform", Error: "no such key: x", Topic: "t", Partition: 1, Offset: 7,
		Key: []byte(`{"id":7}`), Value: []byte(`{"after":{"id":7}}`)}
	const stored = `SELECT mapping, reason, error, topic, partition, "offset", convert_from(record_key, 'UTF8') AS key, convert_from(record, 'UTF8') AS value FROM tandem.dead_letters`
	want := []row{{"mapping": "m", "reason": "transform", "error": "no such key: x", "topic": "t", "partition": "1", "offset": "7",
		"key": `{"id":7}`, "value": `{"after":{"id":7}}`}}
	// A batch that fails (NOT NULL) stores no dead letter either.
	bad := change.Write{Table: "items", Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": int64(1), "name": nil}}
	if err := tg.sink.Apply(t.Context(), sink.Batch{Writes: []change.Write{bad}, DeadLetters: []sink.DeadLetter{dl}}, sink.Checkpoint{}); err == nil {
		t.Fatal("Apply of a NOT NULL violation succeeded")
	}
	tg.wantRows(t, stored, nil)
	for range 2 {
		if err := tg.sink.Apply(t.Context(), sink.Batch{DeadLetters: []sink.DeadLetter{dl}}, sink.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, stored, want)
}

func TestPositionStore_SavesAndLoadsPerSource(t *testing.T) {
	tg := newTarget(t, "")
	ctx := t.Context()
	if pos, found, err := tg.sink.LoadPosition(ctx, "a"); err != nil || found || pos != "" {
		t.Fatalf("LoadPosition before any save = %q, %v, %v; want nothing", pos, found, err)
	}
	for _, p := range []struct{ source, pos string }{{"a", "binlog.000001:4"}, {"b", "x"}, {"a", "binlog.000002:120;gtid=0-1-9"}} {
		if err := tg.sink.SavePosition(ctx, p.source, p.pos); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{}
	for _, src := range []string{"a", "b"} {
		pos, found, err := tg.sink.LoadPosition(ctx, src)
		if err != nil || !found {
			t.Fatalf("LoadPosition(%s) = %v, %v", src, found, err)
		}
		got[src] = pos
	}
	if diff := cmp.Diff(map[string]string{"a": "binlog.000002:120;gtid=0-1-9", "b": "x"}, got); diff != "" {
		t.Errorf("saved positions (-want +got):\n%s", diff)
	}
	// A second sink on the same database reads what the first saved.
	other := tg.newSink(t, postgres.Config{DSN: tg.dsn})
	if pos, _, err := other.LoadPosition(ctx, "a"); err != nil || pos != got["a"] {
		t.Errorf("another sink reads %q, %v; want %q", pos, err, got["a"])
	}
}
