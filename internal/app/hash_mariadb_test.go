package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/reconcile"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
)

// md5Columns are the columns of the md5 summaries' test table, each with
// its MariaDB and its PostgreSQL type: the families the summaries claim
// to write alike on both servers.
var md5Columns = []struct{ name, mariadb, postgres string }{
	{"id", "bigint PRIMARY KEY", "bigint PRIMARY KEY"},
	{"a", "varchar(50)", "varchar(50)"},
	{"c", "char(5)", "character(5)"},                  // MariaDB strips the padding, PostgreSQL's cast to text too
	{"l", "varchar(20) CHARACTER SET latin1", "text"}, // latin1 bytes on MariaDB, UTF-8 on PostgreSQL
	{"n", "bigint", "bigint"},
	{"d", "decimal(12,2)", "numeric(12,2)"},
	{"dt", "date", "date"},
	{"ts", "datetime", "timestamp"},
	{"ts6", "datetime(6)", "timestamptz"}, // "05.100000" on MariaDB, "05.1+00" on PostgreSQL
	{"f", "varbinary(20)", "bytea"},
	{"flag", "tinyint(1)", "boolean"},
}

// md5Rows are the test table's rows, in md5Columns' order: NULLs, empty
// strings, unicode, separators, extreme and negative numbers.
var md5Rows = [][]any{
	{1, "plain", "ab", "café", 0, "1.50", "2024-01-02", "2024-01-02 03:04:05", "2024-01-02 03:04:05.100000", []byte{0, 255}, true},
	{2, "", "", "", int64(-9223372036854775808), "-0.01", "1970-01-01", "1970-01-01 00:00:00", "2000-02-29 23:59:59.999999", []byte{}, false},
	{3, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
	{4, `quote " and \ back`, "x", "ñ", int64(9223372036854775807), "9999999999.99", "9999-12-31", "2038-01-19 03:14:08", "2024-06-01 12:00:00.000000", []byte("3:abc"), true},
	{5, "ünïcödé 😀", "ü", "ß", -1, "0.00", "2024-02-29", "2024-02-29 12:00:00", "2024-02-29 12:00:00.000001", nil, nil},
	{6, "3:abcN", "N", "N", 42, "-12345.67", "2024-03-01", "2024-03-01 00:00:01", "2024-03-01 00:00:01.5", []byte("N"), false},
	{7, "a,b:c", "1:", "0:", 7, "7.00", "2024-03-02", "2024-03-02 10:00:00", "2024-03-02 10:00:00.25", []byte("x"), true},
}

// md5Side is one server holding the test table, as a source (HashChunk)
// and as a target (HashRange and changes to its rows).
type md5Side struct {
	name  string
	chunk func(after []string) (pgtext.RowsHash, []string)
	rng   func(lo, hi any) pgtext.RowsHash
	exec  func(query string, args ...any) error // ? placeholders
}

// mariaDBSide creates the test table on a fresh MariaDB database.
func mariaDBSide(t *testing.T) md5Side {
	ctx := context.Background()
	dsn := testenv.NewMariaDBDatabase(t)
	db := openMySQL(t, dsn)
	defs := make([]string, len(md5Columns))
	for i, c := range md5Columns {
		defs[i] = c.name + " " + c.mariadb
	}
	exec := func(query string, args ...any) error {
		_, err := db.ExecContext(ctx, query, args...)
		return err
	}
	insertMD5Rows(t, exec, `CREATE TABLE t (`+strings.Join(defs, ", ")+`) CHARACTER SET utf8mb4`)
	cfg, _ := mysqlurl.Parse(dsn)
	reader, err := mycapture.NewTableReader(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	table, err := reader.Describe(ctx, change.Table{Schema: cfg.DBName, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := sinkmysql.New(ctx, sinkmysql.Config{DSN: dsn, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return md5Side{name: "mariadb", exec: exec,
		chunk: md5Chunk(t, reader, table),
		rng:   md5Range(t, sink, "t")}
}

// postgresSide creates the test table on a fresh PostgreSQL database.
func postgresSide(t *testing.T) md5Side {
	ctx := context.Background()
	dsn := testenv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	defs := make([]string, len(md5Columns))
	for i, c := range md5Columns {
		defs[i] = c.name + " " + c.postgres
	}
	exec := func(query string, args ...any) error {
		n := 0
		for strings.Contains(query, "?") {
			n++
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", n), 1)
		}
		_, err := conn.Exec(ctx, query, args...)
		return err
	}
	insertMD5Rows(t, exec, `SET TimeZone = 'UTC'`, `CREATE TABLE public.t (`+strings.Join(defs, ", ")+`)`)
	reader, err := pgcapture.NewTableReader(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	table, err := reader.Describe(ctx, change.Table{Schema: "public", Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	// The sink's sessions read times in another zone: the summaries'
	// own settings override it.
	sink, err := sinkpg.New(ctx, sinkpg.Config{DSN: dsn + "&options=-c%20TimeZone%3DAmerica/New_York", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return md5Side{name: "postgres", exec: exec,
		chunk: md5Chunk(t, reader, table),
		rng:   md5Range(t, sink, "public.t")}
}

// insertMD5Rows runs ddl, then inserts md5Rows.
func insertMD5Rows(t *testing.T, exec func(string, ...any) error, ddl ...string) {
	t.Helper()
	for _, q := range ddl {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, row := range md5Rows {
		if err := exec(insertMD5Row, row...); err != nil {
			t.Fatalf("insert %v: %v", row, err)
		}
	}
}

// insertMD5Row inserts a row of md5Rows.
const insertMD5Row = `INSERT INTO t (id, a, c, l, n, d, dt, ts, ts6, f, flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// md5Chunk summarises chunks of the reader's table in md5.
func md5Chunk(t *testing.T, h reconcile.KindChunkHasher, table *change.Schema) func([]string) (pgtext.RowsHash, []string) {
	return func(after []string) (pgtext.RowsHash, []string) {
		t.Helper()
		s, last, err := h.HashChunkKind(context.Background(), pgtext.HashMD5, table, table.Columns, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		return s, last
	}
}

// md5Range summarises key ranges of the sink's table in md5.
func md5Range(t *testing.T, h reconcile.KindRangeHasher, table string) func(lo, hi any) pgtext.RowsHash {
	names := make([]string, len(md5Columns))
	for i, c := range md5Columns {
		names[i] = c.name
	}
	return func(lo, hi any) pgtext.RowsHash {
		t.Helper()
		s, err := h.HashRangeKind(context.Background(), pgtext.HashMD5, table, "id", names, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// summaryChunk is one chunk of summaryChunks: the source's row count and
// whether both summaries are equal.
type summaryChunk struct {
	Rows  int64
	Equal bool
}

// summaryChunks summarises a source in chunks of size (src: the chunk
// after a key, and its last key) and the target's key ranges of the same
// chunks (tgt, bounds nil for none), as reconcile's sweep does.
func summaryChunks(size int64, src func(after []string) (pgtext.RowsHash, []string), tgt func(lo, hi any) pgtext.RowsHash) []summaryChunk {
	var out []summaryChunk
	var after []string
	for {
		sh, last := src(after)
		var lo, hi any
		if after != nil {
			lo = after[0]
		}
		final := sh.Rows < size
		if !final {
			hi = last[0]
		}
		out = append(out, summaryChunk{sh.Rows, sh == tgt(lo, hi)})
		if final {
			return out
		}
		after = last
	}
}

// differing returns the places of the chunks whose summaries differ.
func differing(chunks []summaryChunk) []int {
	out := []int{}
	for i, c := range chunks {
		if !c.Equal {
			out = append(out, i)
		}
	}
	return out
}

// TestChunkSummaries_MD5IsTheSameOnMariaDBAndPostgreSQL checks the md5
// summaries that reconcile compares across server families: a MariaDB or
// PostgreSQL source's HashChunkKind and a MariaDB or PostgreSQL target's
// HashRangeKind summarise equal rows alike, chunk by chunk, for every
// family md5Columns holds; and a change of one value (NULL to ”, a swap
// of two columns' values, a cent, a microsecond, a byte), a missing and
// an extra row make their chunk's summaries differ, and only its chunk's.
func TestChunkSummaries_MD5IsTheSameOnMariaDBAndPostgreSQL(t *testing.T) {
	maria, pg := mariaDBSide(t), postgresSide(t)
	maria2 := mariaDBSide(t)
	for _, pair := range []struct{ src, tgt md5Side }{{maria, pg}, {maria, maria2}, {pg, maria}} {
		t.Run(pair.src.name+"_to_"+pair.tgt.name, func(t *testing.T) {
			chunks := func() []summaryChunk { t.Helper(); return summaryChunks(3, pair.src.chunk, pair.tgt.rng) }
			if diff := cmp.Diff([]summaryChunk{{3, true}, {3, true}, {1, true}}, chunks()); diff != "" {
				t.Fatalf("equal tables: chunks (-want +got):\n%s", diff)
			}
			tgt := func(query string, args ...any) {
				t.Helper()
				if err := pair.tgt.exec(query, args...); err != nil {
					t.Fatalf("%s: %v", query, err)
				}
			}
			for _, tc := range []struct {
				name         string
				change, undo func()
				differ       []int // the chunks whose summaries differ
			}{
				{"NULL is not ''", func() { tgt(`UPDATE t SET a = '' WHERE id = 3`) }, func() { tgt(`UPDATE t SET a = NULL WHERE id = 3`) }, []int{0}},
				{"'' is not NULL", func() { tgt(`UPDATE t SET l = NULL WHERE id = 2`) }, func() { tgt(`UPDATE t SET l = '' WHERE id = 2`) }, []int{0}},
				{"a swap of two columns' values", func() { tgt(`UPDATE t SET a = 'ab', c = 'plain' WHERE id = 1`) }, func() { tgt(`UPDATE t SET a = 'plain', c = 'ab' WHERE id = 1`) }, []int{0}},
				{"a value moved past a separator", func() { tgt(`UPDATE t SET a = '3:abc', c = 'N' WHERE id = 6`) }, func() { tgt(`UPDATE t SET a = '3:abcN', c = 'N' WHERE id = 6`) }, []int{1}},
				{"a cent", func() { tgt(`UPDATE t SET d = d + 0.01 WHERE id = 6`) }, func() { tgt(`UPDATE t SET d = d - 0.01 WHERE id = 6`) }, []int{1}},
				{"a large integer", func() { tgt(`UPDATE t SET n = n - 1 WHERE id = 4`) }, func() { tgt(`UPDATE t SET n = n + 1 WHERE id = 4`) }, []int{1}},
				{"a microsecond", func() { tgt(`UPDATE t SET ts6 = ? WHERE id = 1`, "2024-01-02 03:04:05.100001") }, func() { tgt(`UPDATE t SET ts6 = ? WHERE id = 1`, "2024-01-02 03:04:05.1") }, []int{0}},
				{"a byte", func() { tgt(`UPDATE t SET f = ? WHERE id = 4`, []byte("3:abd")) }, func() { tgt(`UPDATE t SET f = ? WHERE id = 4`, []byte("3:abc")) }, []int{1}},
				{"a unicode character", func() { tgt(`UPDATE t SET l = ? WHERE id = 1`, "cafe") }, func() { tgt(`UPDATE t SET l = ? WHERE id = 1`, "café") }, []int{0}},
				{"a boolean", func() { tgt(`UPDATE t SET flag = ? WHERE id = 2`, true) }, func() { tgt(`UPDATE t SET flag = ? WHERE id = 2`, false) }, []int{0}},
				{"a missing row", func() { tgt(`DELETE FROM t WHERE id = 7`) }, func() { tgt(insertMD5Row, md5Rows[6]...) }, []int{2}},
				{"an extra row", func() { tgt(`INSERT INTO t (id) VALUES (8)`) }, func() { tgt(`DELETE FROM t WHERE id = 8`) }, []int{2}},
			} {
				tc.change()
				got := chunks()
				tc.undo()
				if diff := cmp.Diff(tc.differ, differing(got)); diff != "" {
					t.Errorf("%s: chunks whose summaries differ (-want +got):\n%s", tc.name, diff)
				}
			}
			if diff := cmp.Diff([]summaryChunk{{3, true}, {3, true}, {1, true}}, chunks()); diff != "" {
				t.Errorf("after undoing every change: chunks (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReconcile_MariaDBSweepsByMD5SummariesAndFindsSeededDriftExactly
// reconciles a copied table between MariaDB and PostgreSQL (and MariaDB
// and MariaDB) with a missing, an extra and a mismatched row seeded in
// the target: the sweep compares chunks by md5 summaries, reads only the
// three chunks that hold drift, and reports exactly the seeded rows.
func TestReconcile_MariaDBSweepsByMD5SummariesAndFindsSeededDriftExactly(t *testing.T) {
	ctx := context.Background()
	const (
		mariaDDL  = `CREATE TABLE accounts (id bigint PRIMARY KEY, email varchar(64) NOT NULL, balance decimal(12,2), seen datetime(6), note text) CHARACTER SET utf8mb4`
		mariaFill = `INSERT INTO accounts SELECT seq, CONCAT('u', seq, '@ex.ample'), seq / 4, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL seq * 1000 MICROSECOND,
IF(seq % 5 = 0, NULL, CONCAT('n', seq, ' é')) FROM seq_1_to_60`
		pgDDL  = `CREATE TABLE public.accounts (id bigint PRIMARY KEY, email varchar(64) NOT NULL, balance numeric(12,2), seen timestamp(6), note text)`
		pgFill = `INSERT INTO public.accounts SELECT g, 'u' || g || '@ex.ample', g / 4.0, timestamp '2024-01-01' + g * interval '1 minute' + g * interval '1 millisecond',
CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g || ' é' END FROM generate_series(1, 60) g`
	)
	type side struct {
		kind, dsn, table string
		exec             func(string)
	}
	maria := func() side {
		dsn := testenv.NewMariaDBDatabase(t)
		db := openMySQL(t, dsn)
		s := side{kind: "mysql", dsn: dsn, table: "accounts", exec: func(q string) {
			t.Helper()
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}}
		s.exec(mariaDDL)
		s.exec(mariaFill)
		return s
	}
	pg := func() side {
		dsn := testenv.NewDatabase(t)
		execPG(t, dsn, pgDDL+"; "+pgFill)
		return side{kind: "postgres", dsn: dsn, table: "public.accounts", exec: func(q string) { t.Helper(); execPG(t, dsn, q) }}
	}
	for _, pair := range []struct {
		name     string
		src, tgt func() side
	}{{"mariadb_to_postgres", maria, pg}, {"mariadb_to_mariadb", maria, maria}, {"postgres_to_mariadb", pg, maria}} {
		t.Run(pair.name, func(t *testing.T) {
			src, tgt := pair.src(), pair.tgt()
			for _, q := range []string{
				`DELETE FROM ` + tgt.table + ` WHERE id = 10`,
				`UPDATE ` + tgt.table + ` SET email = 'WRONG' WHERE id = 30`,
				`INSERT INTO ` + tgt.table + ` (id, email) VALUES (1000, 'extra@ex.ample')`,
			} {
				tgt.exec(q)
			}
			from, source := "shop.accounts", "  mysql: { server_id: 4343 }"
			if src.kind == "postgres" {
				from, source = "public.accounts", "  postgres: { slot: unused, publication: unused }"
			} else {
				cfg, _ := mysqlurl.Parse(src.dsn)
				from = cfg.DBName + ".accounts"
			}
			cfg := parseConfig(t, fmt.Sprintf(`source:
  kind: %s
  dsn: %q
  tables: [%s]
%s
target:
  kind: %s
  dsn: %q
reconcile:
  chunk_rows: 4
mappings:
  - from: %s
    to:
      - table: %s
        key: [id]
        columns:
          id: row.id
          email: row.email
          balance: row.balance
          seen: row.seen
          note: row.note
`, src.kind, src.dsn, from, source, tgt.kind, tgt.dsn, from, tgt.table))
			res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got := res.Report.Mappings[0]
			want := []driftKey{
				{Kind: "missing", Table: tgt.table, Key: "map[id:10]"},
				{Kind: "mismatch", Table: tgt.table, Key: "map[id:30]", Columns: []string{"email"}},
				{Kind: "extra", Table: tgt.table, Key: "map[id:1000]"},
			}
			if diff := cmp.Diff(want, driftKeys(got.Samples)); diff != "" {
				t.Errorf("drifted rows (-want +got):\n%s", diff)
			}
			// 15 chunks of 4 source rows and a last, empty one: the chunks
			// of ids 9-12 and 29-32 and the last (target id 1000) differ,
			// the 13 others are equal by their summaries, 8 rows each.
			type counts struct{ Checked, Summarised, Missing, Extra, Mismatch int64 }
			if diff := cmp.Diff(counts{120, 104, 1, 1, 1}, counts{got.Checked, got.Summarised, int64(got.Missing), int64(got.Extra), int64(got.Mismatch)}); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}
