package postgres_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/testenv"
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
		row{"id": int64(1)}, row{"id": int64(2)}, row{"id": int64(3)}, row{"id": int64(9000000000)})
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

// TestScanKeys_PagesThroughATimestampKey: a composite key ending in a
// timestamptz pages in key order, each page after the last key as
// ScanRows returned it (the suite pages through integer and text keys).
func TestScanKeys_PagesThroughATimestampKey(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE pairs (a integer, b text, at timestamptz, PRIMARY KEY (a, b, at));
INSERT INTO pairs SELECT g % 7, 'c' || (g % 100), '2024-01-01'::timestamptz + g * interval '1 hour'
	FROM generate_series(1, 1000) g ORDER BY random();`)
	var want []map[string]any
	for _, r := range tg.Rows(t, `SELECT a, b, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00') AS at
FROM pairs ORDER BY a, b, pairs.at`) {
		a, err := strconv.ParseInt(r["a"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, map[string]any{"a": a, "b": r["b"], "at": r["at"]})
	}
	if len(want) != 1000 {
		t.Fatalf("pairs holds %d rows, want 1000", len(want))
	}
	if diff := cmp.Diff(want, sinktest.ScanAll(t, tg.sink, "pairs", []string{"a", "b", "at"}, 64)); diff != "" {
		t.Errorf("ScanKeys(pairs) (-want +got):\n%s", diff)
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
