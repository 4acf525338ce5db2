package mysql_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink/mysql"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// readDDL is a table of most kinds of column the reconciler reads, with
// NULLs, and a table with a composite key.
const readDDL = `
SET time_zone = '+00:00';
CREATE TABLE accounts (
	id BIGINT PRIMARY KEY, n INT, amount DECIMAL(12, 3), name VARCHAR(20), ref CHAR(36),
	changed DATETIME(6), at TIMESTAMP(6) NULL, photo BLOB, active BOOL, doc JSON, ratio DOUBLE,
	big BIGINT UNSIGNED, note LONGTEXT, mood ENUM('sad', 'Happy'));
INSERT INTO accounts VALUES
	(1, -7, 1234.500, 'one', '6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c', '2024-03-01 10:02:03.654321',
	 '2024-03-01 01:02:03.654321', x'00ff10', TRUE, '{"b": 1, "a": [1, 2]}', 0.1, 18446744073709551615, 'x', 'Happy'),
	(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(3, 0, -0.001, '', NULL, '1970-01-01 00:00:00', NULL, '', FALSE, 'null', -2.5e-300, 0, '', 'sad'),
	(9000000000, 5, 0, 'big', NULL, NULL, NULL, NULL, NULL, NULL, NULL, 7, NULL, NULL);
CREATE TABLE ` + "`lines`" + ` (tenant INT, ref CHAR(36), qty INT, PRIMARY KEY (tenant, ref));
INSERT INTO ` + "`lines`" + ` VALUES
	(1, 'aaaaaaaa-0000-0000-0000-000000000001', 10),
	(1, 'bbbbbbbb-0000-0000-0000-000000000002', 20),
	(2, 'aaaaaaaa-0000-0000-0000-000000000001', 30);
`

// rowsOf is a statement that inserts the rows numbered 1 to n, each
// computed from its number g by the select list sel, into table, in random
// order.
func rowsOf(table string, n int, sel string) string {
	return fmt.Sprintf("SET SESSION max_recursive_iterations = %d;\n"+
		"INSERT INTO %s WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %d) SELECT %s FROM s ORDER BY RAND();\n",
		n+1, table, n, sel)
}

// The accounts rows of readDDL as ReadKeys returns them, by id.
var accounts = map[int64]row{
	1: {"id": int64(1), "n": int64(-7), "amount": "1234.500", "name": "one", "ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c",
		"changed": "2024-03-01 10:02:03.654321", "at": "2024-03-01 01:02:03.654321", "photo": []byte{0x00, 0xff, 0x10},
		"active": int64(1), "doc": `{"b": 1, "a": [1, 2]}`, "ratio": 0.1, "big": "18446744073709551615", "note": "x", "mood": "Happy"},
	2: {"id": int64(2), "n": nil, "amount": nil, "name": nil, "ref": nil, "changed": nil, "at": nil, "photo": nil,
		"active": nil, "doc": nil, "ratio": nil, "big": nil, "note": nil, "mood": nil},
	3: {"id": int64(3), "n": int64(0), "amount": "-0.001", "name": "", "ref": nil, "changed": "1970-01-01 00:00:00.000000",
		"at": nil, "photo": []byte{}, "active": int64(0), "doc": "null", "ratio": -2.5e-300, "big": "0", "note": "", "mood": "sad"},
	9000000000: {"id": int64(9000000000), "n": int64(5), "amount": "0.000", "name": "big", "ref": nil, "changed": nil, "at": nil,
		"photo": nil, "active": nil, "doc": nil, "ratio": nil, "big": "7", "note": nil, "mood": nil},
}

// accountColumns are the columns of accounts.
var accountColumns = []string{"id", "n", "amount", "name", "ref", "changed", "at", "photo", "active", "doc", "ratio", "big", "note", "mood"}

func TestReadKeys_ReturnsTheRequestedRowsTypedAsLookupTypesThem(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL)
	got := sinktest.ReadKeys(t, tg.sink, "accounts", []string{"id"}, accountColumns,
		row{"id": int64(1)}, row{"id": int64(2)}, row{"id": int64(3)}, row{"id": int64(9000000000)})
	want := []map[string]any{accounts[1], accounts[2], accounts[3], accounts[9000000000]}
	if diff := cmp.Diff(want, got, sinktest.ByKey("id")); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	// Each row is what Lookup returns for it.
	for _, r := range got {
		l, found, err := tg.sink.Lookup(t.Context(), "accounts", row{"id": r["id"]})
		if err != nil || !found {
			t.Fatalf("Lookup(id %v) = %v, %v, %v; want a row", r["id"], l, found, err)
		}
		if diff := cmp.Diff(l, r); diff != "" {
			t.Errorf("ReadKeys and Lookup of id %v differ (-Lookup +ReadKeys):\n%s", r["id"], diff)
		}
	}
	// Only the columns asked for, under the names asked for (MySQL's are
	// case-insensitive).
	got = sinktest.ReadKeys(t, tg.sink, tg.name+".accounts", []string{"ID"}, []string{"Amount", "ID"}, row{"ID": int64(3)})
	if diff := cmp.Diff([]map[string]any{{"ID": int64(3), "Amount": "-0.001"}}, got); diff != "" {
		t.Errorf("ReadKeys(Amount, ID) (-want +got):\n%s", diff)
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
		{"name", "ONE"}, // the column's collation is case-insensitive
		{"ref", "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c"},
		{"changed", "2024-03-01 10:02:03.654321"},
		{"changed", at.Add(9 * time.Hour).In(time.FixedZone("x", 3600))},
		{"at", at},
		{"at", "2024-03-01 10:02:03.654321+09"},
		{"photo", []byte{0x00, 0xff, 0x10}},
		{"active", true},
		{"ratio", 0.1},
		{"big", uint64(math.MaxUint64)},
		{"big", "18446744073709551615"},
		{"mood", "happy"},
	} {
		got := sinktest.ReadKeys(t, tg.sink, "accounts", []string{tt.col}, []string{"id"}, row{tt.col: tt.v})
		if diff := cmp.Diff([]map[string]any{{"id": int64(1)}}, got); diff != "" {
			t.Errorf("ReadKeys(%s = %#v) (-want +got):\n%s", tt.col, tt.v, diff)
		}
	}
}

func TestReadKeys_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	db := "Shop `Old` " + tg.name[len(tg.name)-6:]
	quoted := mysqlurl.QuoteIdent(db)
	tg.Exec(t, fmt.Sprintf(hostileDDL, strings.ReplaceAll(db, "`", "``"))+";\n"+
		"INSERT INTO "+quoted+".`order` VALUES (1, 'A', 'it''s \"q\"', '`', 'happy', 'comma', NULL, NULL, '語'), "+
		"(1, 'B', NULL, NULL, 'sad', NULL, 'x', 'y', NULL);\n"+
		"INSERT INTO "+quoted+".`tab``le` VALUES (1, 'one'), (2, 'two')")
	table := db + ".order"
	key := []string{"select", "MixedCase"}
	cols := []string{"select", "MixedCase", `"quoted"`, "back`tick", "Mood", "a,b", "a", "b", "日本"}
	got := sinktest.ReadKeys(t, tg.sink, table, key, cols,
		row{"select": int64(1), "MixedCase": "A"},
		row{"select": int64(1), "MixedCase": `A' OR 'x' = 'x`}) // a value, not SQL
	want := []map[string]any{{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "back`tick": "`",
		"Mood": "happy", "a,b": "comma", "a": nil, "b": nil, "日本": "語"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	got = sinktest.ReadKeys(t, tg.sink, db+".tab`le", []string{"k`ey"}, []string{"v"}, row{"k`ey": int64(2)})
	if diff := cmp.Diff([]map[string]any{{"v": "two"}}, got); diff != "" {
		t.Errorf("ReadKeys(tab`le) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]map[string]any{{"select": int64(1), "MixedCase": "A"}, {"select": int64(1), "MixedCase": "B"}},
		sinktest.ScanAll(t, tg.sink, table, key, 1)); diff != "" {
		t.Errorf("ScanKeys (-want +got):\n%s", diff)
	}
	types, err := tg.sink.ColumnTypes(t.Context(), table)
	if err != nil {
		t.Fatalf("ColumnTypes: %v", err)
	}
	wantTypes := map[string]string{"select": "bigint(20)", "MixedCase": "varchar(20)", `"quoted"`: "text", "back`tick": "text",
		"Mood": "enum('sad','happy')", "a,b": "text", "a": "text", "b": "text", "日本": "text"}
	if diff := cmp.Diff(wantTypes, types); diff != "" {
		t.Errorf("ColumnTypes (-want +got):\n%s", diff)
	}
}

// TestScanKeys_PagesThroughUnsignedAndDatetimeKeys: BIGINT UNSIGNED keys
// past int64 (read as text) and a composite key ending in a DATETIME page
// in key order (the suite pages through integer and text keys).
func TestScanKeys_PagesThroughUnsignedAndDatetimeKeys(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "SET time_zone = '+00:00';\n"+
		"CREATE TABLE huge (id BIGINT UNSIGNED PRIMARY KEY);\n"+
		rowsOf("huge", 1000, "18446744073709551615 - g * 3")+
		"CREATE TABLE pairs (a INT, b VARCHAR(10), at DATETIME(6), PRIMARY KEY (a, b, at));\n"+
		rowsOf("pairs", 1000, "g % 7, CONCAT('c', g % 100), TIMESTAMPADD(HOUR, g, '2024-01-01')"))
	var want []map[string]any
	for i := uint64(1000); i >= 1; i-- {
		want = append(want, map[string]any{"id": strconv.FormatUint(math.MaxUint64-3*i, 10)})
	}
	if diff := cmp.Diff(want, sinktest.ScanAll(t, tg.sink, "huge", []string{"id"}, 64)); diff != "" {
		t.Errorf("ScanKeys(huge) (-want +got):\n%s", diff)
	}
	want = nil
	for _, r := range tg.Rows(t, "SELECT a, b, at FROM pairs ORDER BY a, b, at") {
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

// TestScanKeys_APageReadsOnlyItsRows: a page in the middle of a composite
// key reads its own index entries, not those before it. It counts the rows
// read with MariaDB's user statistics (turned on for the shared server),
// by table, so other tests' reads do not count.
func TestScanKeys_APageReadsOnlyItsRows(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "SET GLOBAL userstat = 1;\n"+
		"CREATE TABLE big (id BIGINT PRIMARY KEY, a INT, b VARCHAR(20), UNIQUE (a, b));\n"+
		rowsOf("big", 100000, "g, g % 100, CONCAT('c', g)"))
	read := func() int64 {
		t.Helper()
		rs := tg.Rows(t, "SELECT ROWS_READ FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = '"+tg.name+"' AND TABLE_NAME = 'big'")
		if len(rs) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(rs[0]["ROWS_READ"].(string), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tt := range []struct {
		key   []string
		after row
	}{
		{[]string{"a", "b"}, row{"a": int64(50), "b": "c5050"}},
		{[]string{"id"}, row{"id": int64(50000)}},
	} {
		before := read()
		got, err := tg.sink.ScanRows(t.Context(), "big", tt.key, tt.key, tt.after, 64)
		if err != nil {
			t.Fatalf("ScanKeys: %v", err)
		}
		if len(got) != 64 {
			t.Fatalf("ScanKeys returned %d keys, want 64", len(got))
		}
		if n := read() - before; n > 65 {
			t.Errorf("ScanKeys(%v after %v, limit 64) read %d rows, want 64 or 65", tt.key, tt.after, n)
		}
	}
}

func TestColumnTypes_NamesEachColumnsType(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, readDDL+"ALTER TABLE accounts ADD COLUMN `Seen` TIMESTAMP(3) NULL, ADD COLUMN small FLOAT, "+
		"ADD COLUMN tag BINARY(4), ADD COLUMN checked LONGTEXT CHECK (checked <> '')")
	got, err := tg.sink.ColumnTypes(t.Context(), "accounts")
	if err != nil {
		t.Fatalf("ColumnTypes: %v", err)
	}
	want := map[string]string{
		"id": "bigint(20)", "n": "int(11)", "amount": "decimal(12,3)", "name": "varchar(20)", "ref": "char(36)",
		"changed": "datetime(6)", "at": "timestamp(6)", "photo": "blob", "active": "tinyint(1)", "doc": "json",
		"ratio": "double", "big": "bigint(20) unsigned", "note": "longtext", "mood": "enum('sad','Happy')",
		"Seen": "timestamp(3)", "small": "float", "tag": "binary(4)", "checked": "longtext",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ColumnTypes (-want +got):\n%s", diff)
	}
}

// BenchmarkReadKeys reads 5000 random keys of a 100,000-row table per op.
func BenchmarkReadKeys(b *testing.B) {
	dsn := testenv.NewMariaDBDatabase(b)
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	if err := testenv.SharedMariaDB(b).Exec(b.Context(), cfg.DBName,
		"CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40), qty INT, price DECIMAL(12,2), at DATETIME(6));\n"+
			rowsOf("items", 100000, "g, CONCAT('item ', g), g % 1000, g * 0.01, NOW(6)")); err != nil {
		b.Fatal(err)
	}
	s, err := mysql.New(b.Context(), mysql.Config{DSN: dsn, ReadOnly: true})
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
