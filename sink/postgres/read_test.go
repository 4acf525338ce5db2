package postgres_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// readDDL is a table of most kinds of column the reconciler reads, with
// NULLs, and a table with a composite key.
const readDDL = `
CREATE SCHEMA crm;
CREATE TABLE crm.accounts (
	id bigint PRIMARY KEY, n integer, amount numeric(12, 3), name varchar(20), ref uuid,
	changed timestamptz(6), photo bytea, active boolean, doc jsonb, raw json, ratio double precision);
INSERT INTO crm.accounts VALUES
	(1, -7, 1234.500, 'one', '6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c', '2024-03-01 10:02:03.654321+09',
	 '\x00ff10', true, '{"b": 1, "a": [1, 2]}', '{"b":1,  "a":2}', 0.1),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(3, 0, -0.001, '', NULL, '1970-01-01 00:00:00+00', '\x', false, 'null', '[]', -2.5e-300),
	(9000000000, 5, 0, 'big', NULL, NULL, NULL, NULL, NULL, NULL, 'Infinity');
CREATE TABLE crm.lines (tenant integer, ref uuid, qty integer, PRIMARY KEY (tenant, ref));
INSERT INTO crm.lines VALUES
	(1, 'aaaaaaaa-0000-0000-0000-000000000001', 10),
	(1, 'bbbbbbbb-0000-0000-0000-000000000002', 20),
	(2, 'aaaaaaaa-0000-0000-0000-000000000001', 30);
`

// The accounts rows of readDDL as ReadKeys returns them, by id.
var accounts = map[int64]row{
	1: {"id": int64(1), "n": int64(-7), "amount": "1234.500", "name": "one", "ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c",
		"changed": "2024-03-01 01:02:03.654321+00", "photo": []byte{0x00, 0xff, 0x10}, "active": true,
		"doc": `{"a": [1, 2], "b": 1}`, "raw": `{"b":1,  "a":2}`, "ratio": 0.1},
	2: {"id": int64(2), "n": nil, "amount": nil, "name": nil, "ref": nil, "changed": nil, "photo": nil,
		"active": nil, "doc": nil, "raw": nil, "ratio": nil},
	3: {"id": int64(3), "n": int64(0), "amount": "-0.001", "name": "", "ref": nil, "changed": "1970-01-01 00:00:00+00",
		"photo": []byte{}, "active": false, "doc": "null", "raw": "[]", "ratio": -2.5e-300},
	9000000000: {"id": int64(9000000000), "n": int64(5), "amount": "0.000", "name": "big", "ref": nil, "changed": nil,
		"photo": nil, "active": nil, "doc": nil, "raw": nil, "ratio": math.Inf(1)},
}

// accountColumns are the columns of crm.accounts.
var accountColumns = []string{"id", "n", "amount", "name", "ref", "changed", "photo", "active", "doc", "raw", "ratio"}

func TestReadKeys_ReturnsTheRequestedRowsTypedAsLookupTypesThem(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	got := sinktest.ReadKeys(t, tg.sink, "crm.accounts", []string{"id"}, accountColumns,
		row{"id": int64(1)}, row{"id": int64(404)}, row{"id": uint64(9000000000)},
		row{"id": "3"}, row{"id": float64(2)}, row{"id": int64(1)}) // 404 is missing; 1 asked twice
	want := []map[string]any{accounts[1], accounts[2], accounts[3], accounts[9000000000]}
	if diff := cmp.Diff(want, got, sinktest.ByKey("id")); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	// Each row is what Lookup returns for it.
	for _, r := range got {
		l, found := lookup(t, tg.sink, "crm.accounts", row{"id": r["id"]})
		if !found {
			t.Fatalf("Lookup(id %v): not found", r["id"])
		}
		if diff := cmp.Diff(l, r); diff != "" {
			t.Errorf("ReadKeys and Lookup of id %v differ (-Lookup +ReadKeys):\n%s", r["id"], diff)
		}
	}
	// Only the columns asked for, under the names asked for.
	got = sinktest.ReadKeys(t, tg.sink, "crm.accounts", []string{"id"}, []string{"amount", "id"}, row{"id": int64(3)})
	if diff := cmp.Diff([]map[string]any{{"id": int64(3), "amount": "-0.001"}}, got); diff != "" {
		t.Errorf("ReadKeys(amount, id) (-want +got):\n%s", diff)
	}
	// No keys, no rows.
	if got := sinktest.ReadKeys(t, tg.sink, "crm.accounts", []string{"id"}, accountColumns); len(got) != 0 {
		t.Errorf("ReadKeys(no keys) = %v, want none", got)
	}
}

func TestReadKeys_ByKeysOfEveryColumnType(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	// Each column of row 1 as a key, given as a mapping would give it.
	at := time.Date(2024, 3, 1, 1, 2, 3, 654321000, time.UTC)
	for _, tt := range []struct {
		col string
		v   any
	}{
		{"n", int64(-7)},
		{"amount", "1234.5"},
		{"name", "one"},
		{"ref", "6F1C2A3E-52B4-4B8E-9D6A-0C1E2F3A4B5C"},
		{"changed", at.In(time.FixedZone("x", 3600))},
		{"changed", "2024-03-01 01:02:03.654321+00"},
		{"photo", []byte{0x00, 0xff, 0x10}},
		{"active", true},
		{"doc", `{"a":[1,2],"b":1}`},
		{"ratio", 0.1},
	} {
		got := sinktest.ReadKeys(t, tg.sink, "crm.accounts", []string{tt.col}, []string{"id"}, row{tt.col: tt.v})
		if diff := cmp.Diff([]map[string]any{{"id": int64(1)}}, got); diff != "" {
			t.Errorf("ReadKeys(%s = %#v) (-want +got):\n%s", tt.col, tt.v, diff)
		}
	}
}

func TestReadKeys_CompositeKeyMatchesAllItsColumns(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	const a, b = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
	key := []string{"tenant", "ref"}
	got := sinktest.ReadKeys(t, tg.sink, "crm.lines", key, []string{"tenant", "ref", "qty"},
		row{"tenant": int64(1), "ref": strings.ToUpper(a)},
		row{"tenant": int64(2), "ref": b}, // a row has each value, none both
		row{"tenant": int64(2), "ref": a},
		row{"tenant": int64(1), "ref": nil}, // NULL matches nothing
	)
	want := []map[string]any{
		{"tenant": int64(1), "ref": a, "qty": int64(10)},
		{"tenant": int64(2), "ref": a, "qty": int64(30)},
	}
	if diff := cmp.Diff(want, got, sinktest.ByKey(key...)); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
}

func TestReadKeys_FiveThousandKeysInOneCall(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE items (id bigint PRIMARY KEY, name text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10000) g;
CREATE TABLE pairs (a integer, b text, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT g % 10, 'b' || g FROM generate_series(1, 10000) g;`)
	var keys, pairs []row
	var want, wantPairs []map[string]any
	for i := int64(1); i <= 5000; i++ {
		id := 2 * i // evens, and 500 past the last row
		if i%10 == 0 {
			id = 100000 + i
		}
		keys = append(keys, row{"id": id})
		pairs = append(pairs, row{"a": id % 10, "b": "b" + strconv.FormatInt(id, 10)})
		if id <= 10000 {
			want = append(want, map[string]any{"id": id, "name": "item " + strconv.FormatInt(id, 10)})
			wantPairs = append(wantPairs, pairs[len(pairs)-1])
		}
	}
	if len(want) == len(keys) || len(want) < 4000 {
		t.Fatalf("%d of %d keys present: the test wants some missing", len(want), len(keys))
	}
	got := sinktest.ReadKeys(t, tg.sink, "items", []string{"id"}, []string{"id", "name"}, keys...)
	if diff := cmp.Diff(want, got, sinktest.ByKey("id")); diff != "" {
		t.Errorf("ReadKeys(items) (-want +got):\n%s", diff)
	}
	got = sinktest.ReadKeys(t, tg.sink, "pairs", []string{"a", "b"}, []string{"a", "b"}, pairs...)
	if diff := cmp.Diff(wantPairs, got, sinktest.ByKey("a", "b")); diff != "" {
		t.Errorf("ReadKeys(pairs) (-want +got):\n%s", diff)
	}
}

func TestReadKeys_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, hostileDDL+`INSERT INTO "Shop Old"."order" VALUES
		(1, 'A', 'it''s "q"', 'happy', 'comma', NULL, NULL),
		(1, 'B', NULL, 'sad', NULL, 'x', 'y');
	CREATE TABLE "Shop Old".u (c1 bigint, t text, u text, PRIMARY KEY (c1, t));
	INSERT INTO "Shop Old".u VALUES (1, 'x', 'y'), (2, 'x', 'z');`)
	// Columns named as the statement's own aliases are still the table's.
	got := sinktest.ReadKeys(t, tg.sink, "Shop Old.u", []string{"c1", "t"}, []string{"u", "t", "c1"}, row{"c1": int64(2), "t": "x"})
	if diff := cmp.Diff([]map[string]any{{"c1": int64(2), "t": "x", "u": "z"}}, got); diff != "" {
		t.Errorf("ReadKeys(Shop Old.u) (-want +got):\n%s", diff)
	}
	const table = "Shop Old.order"
	key := []string{"select", "MixedCase"}
	cols := []string{"select", "MixedCase", `"quoted"`, "Mood", "a,b", "a", "b"}
	got = sinktest.ReadKeys(t, tg.sink, table, key, cols,
		row{"select": int64(1), "MixedCase": "A"},
		row{"select": int64(1), "MixedCase": `A' OR 'x' = 'x`}) // a value, not SQL
	want := []map[string]any{{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma", "a": nil, "b": nil}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	// The enum-typed column as a key: cast to a type of a schema that needs quotes.
	got = sinktest.ReadKeys(t, tg.sink, table, []string{"Mood"}, []string{"MixedCase"}, row{"Mood": "sad"})
	if diff := cmp.Diff([]map[string]any{{"MixedCase": "B"}}, got); diff != "" {
		t.Errorf("ReadKeys(Mood) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]map[string]any{{"select": int64(1), "MixedCase": "A"}, {"select": int64(1), "MixedCase": "B"}},
		sinktest.ScanAll(t, tg.sink, table, key, 1)); diff != "" {
		t.Errorf("ScanKeys (-want +got):\n%s", diff)
	}
	types, err := tg.sink.ColumnTypes(t.Context(), table)
	if err != nil {
		t.Fatalf("ColumnTypes: %v", err)
	}
	wantTypes := map[string]string{"select": "bigint", "MixedCase": "text", `"quoted"`: "text",
		"Mood": `"Shop Old"."Mood"`, "a,b": "text", "a": "text", "b": "text"}
	if diff := cmp.Diff(wantTypes, types); diff != "" {
		t.Errorf("ColumnTypes (-want +got):\n%s", diff)
	}
}

func TestRowReader_MissingTableOrColumnAndBadValuesAreClassifiedErrors(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	id := []string{"id"}
	tests := []struct {
		name   string
		table  string
		call   func(r reconcile.RowReader, table string) error
		is     error
		reason string
	}{
		{"ReadKeys of a missing table", "crm.nope", func(r reconcile.RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, id, []map[string]any{{"id": int64(1)}})
			return err
		}, sink.ErrTableNotFound, "table_missing"},
		{"ReadKeys of a missing column", "crm.accounts", func(r reconcile.RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, []string{"id", "nope"}, []map[string]any{{"id": int64(1)}})
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ReadKeys by a missing column", "crm.accounts", func(r reconcile.RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, []string{"nope"}, id, []map[string]any{{"nope": int64(1)}})
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ReadKeys by a value the column cannot hold", "crm.accounts", func(r reconcile.RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, id, []map[string]any{{"id": "one"}})
			return err
		}, nil, "data"},
		{"ScanKeys of a missing table", "crm.nope", func(r reconcile.RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, id, id, nil, 10)
			return err
		}, sink.ErrTableNotFound, "table_missing"},
		{"ScanKeys by a missing column", "crm.accounts", func(r reconcile.RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, []string{"nope"}, []string{"nope"}, nil, 10)
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ScanKeys after a value the column cannot hold", "crm.accounts", func(r reconcile.RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, id, id, row{"id": "one"}, 10)
			return err
		}, nil, "data"},
		{"ColumnTypes of a missing table", "crm.nope", func(r reconcile.RowReader, table string) error {
			_, err := r.ColumnTypes(t.Context(), table)
			return err
		}, sink.ErrTableNotFound, "table_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(tg.sink, tt.table)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want %v", err, tt.is)
			}
			var se *sink.Error
			if !errors.As(err, &se) || se.Reason != tt.reason || se.Table != tt.table {
				t.Errorf("error = %#v, want a *sink.Error with reason %s, table %s", err, tt.reason, tt.table)
			}
			if !strings.Contains(err.Error(), tt.table) {
				t.Errorf("error %q does not name table %s", err, tt.table)
			}
			if pw := password(t, tg.dsn); strings.Contains(err.Error(), pw) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
}

// TestRowReader_DoesNotWaitForAWriter: with a write transaction holding a
// row, the reads answer at once with the committed row (a locking read
// would wait for the writer, here until the test's deadline).
func TestRowReader_DoesNotWaitForAWriter(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	tx, err := tg.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context()))
	if _, err := tx.Exec(t.Context(), `UPDATE crm.accounts SET name = 'changing' WHERE id = 1;
DELETE FROM crm.accounts WHERE id = 2; INSERT INTO crm.accounts (id) VALUES (4)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := tg.sink.ReadKeys(ctx, "crm.accounts", []string{"id"}, []string{"id", "name"},
		[]map[string]any{{"id": int64(1)}, {"id": int64(2)}, {"id": int64(4)}})
	if err != nil {
		t.Fatalf("ReadKeys: %v", err)
	}
	want := []map[string]any{{"id": int64(1), "name": "one"}, {"id": int64(2), "name": nil}}
	if diff := cmp.Diff(want, got, sinktest.ByKey("id")); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	keys, err := tg.sink.ScanRows(ctx, "crm.accounts", []string{"id"}, []string{"id"}, nil, 10)
	if err != nil {
		t.Fatalf("ScanKeys: %v", err)
	}
	if diff := cmp.Diff([]map[string]any{{"id": int64(1)}, {"id": int64(2)}, {"id": int64(3)}, {"id": int64(9000000000)}}, keys); diff != "" {
		t.Errorf("ScanKeys (-want +got):\n%s", diff)
	}
}

func TestScanKeys_PagesThroughEveryKeyOnceInKeyOrder(t *testing.T) {
	t.Parallel()
	// Rows inserted in random order; text keys whose order is not their
	// numbers' (c10 < c9); a composite key whose first column repeats.
	tg := newTarget(t, `CREATE TABLE items (id bigint PRIMARY KEY, name text);
INSERT INTO items SELECT g * 7, 'item' FROM generate_series(1, 1000) g ORDER BY random();
CREATE TABLE pairs (a integer, b text, at timestamptz, PRIMARY KEY (a, b, at));
INSERT INTO pairs SELECT g % 7, 'c' || (g % 100), '2024-01-01'::timestamptz + g * interval '1 hour'
	FROM generate_series(1, 1000) g ORDER BY random();`)
	var want []map[string]any
	for i := int64(1); i <= 1000; i++ {
		want = append(want, map[string]any{"id": 7 * i})
	}
	if diff := cmp.Diff(want, sinktest.ScanAll(t, tg.sink, "items", []string{"id"}, 64)); diff != "" {
		t.Errorf("ScanKeys(items) (-want +got):\n%s", diff)
	}
	want = nil
	for _, r := range tg.Rows(t, `SELECT a, b, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00') AS at
FROM pairs ORDER BY a, b, pairs.at`) {
		a, err := strconv.ParseInt(r["a"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, map[string]any{"a": a, "b": r["b"], "at": r["at"]})
	}
	if len(want) != 1000 || !slices.ContainsFunc(want, func(r map[string]any) bool { return r["b"] == "c10" }) {
		t.Fatalf("pairs holds %d rows, want 1000", len(want))
	}
	if diff := cmp.Diff(want, sinktest.ScanAll(t, tg.sink, "pairs", []string{"a", "b", "at"}, 64)); diff != "" {
		t.Errorf("ScanKeys(pairs) (-want +got):\n%s", diff)
	}
	// An exact number of pages ends with an empty one.
	if got := sinktest.ScanAll(t, tg.sink, "items", []string{"id"}, 100); len(got) != 1000 {
		t.Errorf("ScanKeys(items, limit 100) returned %d keys, want 1000", len(got))
	}
	// ScanRows: whole rows, in key order, after a key.
	rows, err := tg.sink.ScanRows(t.Context(), "items", []string{"id"}, []string{"id", "name"}, map[string]any{"id": int64(14)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []map[string]any{{"id": int64(21), "name": "item"}, {"id": int64(28), "name": "item"}, {"id": int64(35), "name": "item"}}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("ScanRows(items after 14) (-want +got):\n%s", diff)
	}
}

func TestScanKeys_LeavesOutKeysHoldingNull(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE codes (id bigint PRIMARY KEY, a integer, b text, UNIQUE (a, b));
INSERT INTO codes VALUES (1, 1, 'x'), (2, 1, NULL), (3, NULL, 'x'), (4, 2, 'y'), (5, 1, NULL), (6, NULL, NULL);`)
	want := []map[string]any{{"a": int64(1), "b": "x"}, {"a": int64(2), "b": "y"}}
	if diff := cmp.Diff(want, sinktest.ScanAll(t, tg.sink, "codes", []string{"a", "b"}, 1)); diff != "" {
		t.Errorf("ScanKeys (-want +got):\n%s", diff)
	}
	if got, err := tg.sink.ScanRows(t.Context(), "codes", []string{"id"}, []string{"id"}, nil, 0); err != nil || len(got) != 0 {
		t.Errorf("ScanKeys(limit 0) = %v, %v, want nothing", got, err)
	}
}

func TestColumnTypes_NamesEachColumnsTypeWithItsModifier(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL+`ALTER TABLE crm.accounts DROP COLUMN raw, ADD COLUMN "Tags" text[], ADD COLUMN code char(3),
	ADD COLUMN seen timestamp(3), ADD COLUMN small real;`)
	got, err := tg.sink.ColumnTypes(t.Context(), "crm.accounts")
	if err != nil {
		t.Fatalf("ColumnTypes: %v", err)
	}
	want := map[string]string{
		"id": "bigint", "n": "integer", "amount": "numeric(12,3)", "name": "character varying(20)", "ref": "uuid",
		"changed": "timestamp(6) with time zone", "photo": "bytea", "active": "boolean", "doc": "jsonb",
		"ratio": "double precision", "Tags": "text[]", "code": "character(3)", "seen": "timestamp(3) without time zone",
		"small": "real",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ColumnTypes (-want +got):\n%s", diff)
	}
}

// BenchmarkReadKeys reads 5000 random keys of a 100,000-row table per op.
func BenchmarkReadKeys(b *testing.B) {
	dsn := testenv.NewDatabase(b)
	db, err := pgxpool.New(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(b.Context(), `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer, price numeric(12,2), at timestamptz);
INSERT INTO items SELECT g, 'item ' || g, g % 1000, g * 0.01, now() FROM generate_series(1, 100000) g; ANALYZE items;`); err != nil {
		b.Fatal(err)
	}
	s, err := postgres.New(b.Context(), postgres.Config{DSN: dsn, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	key, cols := []string{"id"}, []string{"id", "name", "qty", "price", "at"}
	keys := make([]map[string]any, 5000)
	rows := 0
	for b.Loop() {
		for i := range keys {
			keys[i] = map[string]any{"id": rand.Int64N(100000) + 1}
		}
		got, err := s.ReadKeys(b.Context(), "items", key, cols, keys)
		if err != nil {
			b.Fatal(err)
		}
		rows += len(got)
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
