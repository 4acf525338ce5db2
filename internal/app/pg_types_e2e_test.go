package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// pgTypesColumns are the columns of the PostgreSQL type matrix, in table order.
var pgTypesColumns = []string{"id", "i2", "i4", "i8", "n", "n60", "f4", "f8", "b", "t", "vc", "ch", "bt", "u",
	"j", "jb", "d", "ts", "tstz", "tm", "iv", "ia", "ta", "e", "ip", "cr"}

// pgTypesDDL creates the type matrix, on the source and on a PostgreSQL target.
const pgTypesDDL = `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE types (id integer PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, n numeric, n60 numeric(60,30),
	f4 real, f8 double precision, b boolean, t text, vc varchar(20), ch char(5), bt bytea, u uuid, j json, jb jsonb,
	d date, ts timestamp(6), tstz timestamptz(6), tm time(6), iv interval, ia integer[], ta text[], e mood,
	ip inet, cr cidr)`

// pgTypesRows writes the type matrix in a session whose time zone is not
// UTC: timestamptz values are instants, whatever zone wrote them.
const pgTypesRows = `SET TimeZone = 'Asia/Tokyo';
INSERT INTO types (id) VALUES (1);
INSERT INTO types VALUES (2, -32768, -2147483648, -9223372036854775808,
	'-99999999999999999999999999999999999999999999999999999999999999999999999999999999.5',
	'-123456789012345678901234567890.123456789012345678901234567890', '-0', '-0', false, '', '', '', '\x',
	'00000000-0000-0000-0000-000000000000', '[]', '{}', '0001-01-01', '0001-01-01 00:00:00',
	'1970-01-01 09:00:00', '00:00:00', '-1 year -2 mons +3 days -04:05:06.000001', '{}', '{}', 'sad',
	'0.0.0.0', '0.0.0.0/0');
INSERT INTO types VALUES (3, 32767, 2147483647, 9223372036854775807,
	'12345678901234567890123456789012345678901234567890.00000000000000000000000000000000000000000000000001',
	'999999999999999999999999999999.999999999999999999999999999999', '3.4028235e+38', '1.7976931348623157e+308',
	true, 'héllo 🐘 日本語', 'ＵＴＦ８ 😀 テスト', 'ab', '\x00ff000102', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
	'{"a": 1,  "a": [1, 2.5, "x"], "b": null}', '{"b": [1, 2.5, "x"], "a": {"c": "日本"}, "e": "q\"uote"}',
	'2024-02-29', '2024-02-29 23:59:58.123456', '2024-03-01 10:02:03.654321', '23:59:59.999999',
	'1 year 2 mons 3 days 04:05:06.789', '{1,NULL,-3}', '{"a b","q\"uote",NULL,"","NULL",x,"日本"}', 'happy',
	'2001:db8::1/64', '192.168.0.0/24');
INSERT INTO types (id, n, f4, f8) VALUES (4, 'NaN', 'NaN', 'Infinity'), (5, '-Infinity', '-Infinity', 'NaN');
INSERT INTO types (id, n, n60, f4, f8, b, tm, iv, e, tstz) VALUES
	(6, '0', '0.000000000000000000000000000001', '1.1', '0.1', true, '24:00:00', '0', 'ok', '2024-06-30 23:30:00-02:30'),
	(7, '1e-40', '-0.5', '1e-45', '4.9406564584124654e-324', false, '12:00:00.000001', '-00:00:00.000001', 'ok',
		'2024-01-01 00:00:00.000001+00')`

// pgTypesUpdates gives row 1 the values of row 3 and row 3 NULLs: an
// update to and from NULL is written as such.
var pgTypesUpdates = "SET TimeZone = 'America/St_Johns'; UPDATE types SET (" + strings.Join(pgTypesColumns[1:], ", ") +
	") = (SELECT " + strings.Join(pgTypesColumns[1:], ", ") + " FROM types WHERE id = 3) WHERE id = 1; " +
	"UPDATE types SET (" + strings.Join(pgTypesColumns[1:], ", ") + ") = ROW(" +
	strings.TrimSuffix(strings.Repeat("NULL, ", len(pgTypesColumns)-1), ", ") + ") WHERE id = 3"

// pgTypesWant is the type matrix as the source holds it, read as text in
// a UTC session (char(n) with its padding). Row 1 is all NULL.
var pgTypesWant = [][]string{
	pgNulls("1"),
	{"2", "-32768", "-2147483648", "-9223372036854775808",
		"-99999999999999999999999999999999999999999999999999999999999999999999999999999999.5",
		"-123456789012345678901234567890.123456789012345678901234567890", "-0", "-0", "false", "", "", "     ", `\x`,
		"00000000-0000-0000-0000-000000000000", "[]", "{}", "0001-01-01", "0001-01-01 00:00:00",
		"1970-01-01 00:00:00+00", "00:00:00", "-1 years -2 mons +3 days -04:05:06.000001", "{}", "{}", "sad",
		"0.0.0.0", "0.0.0.0/0"},
	{"3", "32767", "2147483647", "9223372036854775807",
		"12345678901234567890123456789012345678901234567890.00000000000000000000000000000000000000000000000001",
		"999999999999999999999999999999.999999999999999999999999999999", "3.4028235e+38", "1.7976931348623157e+308",
		"true", "héllo 🐘 日本語", "ＵＴＦ８ 😀 テスト", "ab   ", `\x00ff000102`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		`{"a": 1,  "a": [1, 2.5, "x"], "b": null}`, `{"a": {"c": "日本"}, "b": [1, 2.5, "x"], "e": "q\"uote"}`,
		"2024-02-29", "2024-02-29 23:59:58.123456", "2024-03-01 01:02:03.654321+00", "23:59:59.999999",
		"1 year 2 mons 3 days 04:05:06.789", "{1,NULL,-3}", `{"a b","q\"uote",NULL,"","NULL",x,日本}`, "happy",
		"2001:db8::1/64", "192.168.0.0/24"},
	pgRow("4", map[string]string{"n": "NaN", "f4": "NaN", "f8": "Infinity"}),
	pgRow("5", map[string]string{"n": "-Infinity", "f4": "-Infinity", "f8": "NaN"}),
	pgRow("6", map[string]string{"n": "0", "n60": "0.000000000000000000000000000001", "f4": "1.1", "f8": "0.1",
		"b": "true", "tm": "24:00:00", "iv": "00:00:00", "e": "ok", "tstz": "2024-07-01 02:00:00+00"}),
	pgRow("7", map[string]string{"n": "0.0000000000000000000000000000000000000001", "n60": "-0.500000000000000000000000000000",
		"f4": "1e-45", "f8": "5e-324", "b": "false", "tm": "12:00:00.000001", "iv": "-00:00:00.000001", "e": "ok",
		"tstz": "2024-01-01 00:00:00.000001+00"}),
}

// pgNulls is a row of the matrix with only its id.
func pgNulls(id string) []string { return pgRow(id, nil) }

// pgRow is a row of the matrix with the given values and NULL elsewhere.
func pgRow(id string, vals map[string]string) []string {
	row := make([]string, len(pgTypesColumns))
	row[0] = id
	for i, c := range pgTypesColumns[1:] {
		row[i+1] = cart.Null
		if v, ok := vals[c]; ok {
			row[i+1] = v
		}
	}
	return row
}

// afterUpdates is want after pgTypesUpdates: row 1 holds row 3's values
// and row 3 NULLs.
func afterUpdates(want [][]string) [][]string {
	out := slices.Clone(want)
	out[0] = append([]string{"1"}, want[2][1:]...)
	out[2] = pgNulls("3")
	return out
}

// pgTypesText reads the matrix from a PostgreSQL table as text in a UTC
// session. char(n) and inet go through their output functions, as
// pgoutput sends them: a cast to text strips char's padding and adds a
// /32 to an inet host address.
func pgTypesText(ctx context.Context, conn *pgx.Conn) ([][]string, error) {
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, err
	}
	sel := make([]string, len(pgTypesColumns))
	for i, c := range pgTypesColumns {
		sel[i] = c + "::text"
		if c == "ch" || c == "ip" {
			sel[i] = fmt.Sprintf("CASE WHEN %s IS NOT NULL THEN format('%%s', %s) END", c, c)
		}
	}
	return cart.PGText(ctx, conn, "SELECT "+strings.Join(sel, ", ")+" FROM types ORDER BY id")
}

// pgTypesConfig maps the source's types table onto the target's, column by
// column; exprs overrides the expression of some columns.
func pgTypesConfig(srcDSN, slot, kind, tgtDSN string, exprs map[string]string) string {
	var cols strings.Builder
	for _, c := range pgTypesColumns {
		e, ok := exprs[c]
		if !ok {
			e = "row." + c
		}
		fmt.Fprintf(&cols, "          %s: %s\n", c, e)
	}
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [public.types]
  postgres: { slot: %s, publication: %s }
kafka:
  topic_prefix: pgtypes
  partitions: 2
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: public.types
    to:
      - table: types
        key: [id]
        columns:
%s`, srcDSN, slot, slot, kind, tgtDSN, cols.String())
}

// pgTypesSource creates a source database holding the matrix's table and
// returns its DSN, a connection to it and a replication slot name of its
// own, dropped when the test ends.
func pgTypesSource(t *testing.T) (string, *pgx.Conn, string) {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.NewDatabase(t)
	conn := pgConnect(t, dsn)
	if _, err := conn.Exec(ctx, pgTypesDDL); err != nil {
		t.Fatal(err)
	}
	slot := strings.ToLower(dbOfDSN(t, dsn))
	if len(slot) > 63 {
		slot = slot[len(slot)-63:]
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	return dsn, conn, slot
}

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitText polls read until it returns want, and fails with the last
// difference otherwise.
func waitText(t *testing.T, what string, want [][]string, read func() ([][]string, error)) {
	t.Helper()
	var got [][]string
	_, err := poll.Until(context.Background(), 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		var err error
		got, err = read()
		return cmp.Equal(want, got), err
	})
	if err != nil {
		t.Fatalf("%s: %v (-want +got):\n%s", what, err, cmp.Diff(want, got))
	}
}

// checkClean fails the test when tandem check finds a problem in cfg.
func checkClean(t *testing.T, cfg *config.Config) {
	t.Helper()
	ps, err := app.Check(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 {
		t.Fatalf("tandem check: %v", ps)
	}
}

func TestRun_PGTypeMatrixRoundTripsToPostgres(t *testing.T) {
	ctx := context.Background()
	srcDSN, src, slot := pgTypesSource(t)
	tgtDSN := testenv.NewDatabase(t)
	tgt := pgConnect(t, tgtDSN)
	if _, err := tgt.Exec(ctx, pgTypesDDL); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, pgTypesConfig(srcDSN, slot, "postgres", tgtDSN, nil))
	checkClean(t, cfg)
	start(t, cfg)

	for _, step := range []struct {
		name, sql string
		want      [][]string
	}{
		{"inserts", pgTypesRows, pgTypesWant},
		{"updates to and from NULL", pgTypesUpdates, afterUpdates(pgTypesWant)},
	} {
		if _, err := src.Exec(ctx, step.sql); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, err := pgTypesText(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Fatalf("%s: the source holds other text than expected (-want +got):\n%s", step.name, diff)
		}
		waitText(t, step.name+": PostgreSQL -> PostgreSQL", got, func() ([][]string, error) { return pgTypesText(ctx, tgt) })
	}
}

// pgTypesMariaDDL is the matrix's table on a MariaDB target, in the
// natural MariaDB type of each column. Unconstrained numeric has no
// DECIMAL that holds all of it (65 digits at most, no NaN): TEXT.
const pgTypesMariaDDL = "CREATE TABLE types (id INT PRIMARY KEY, i2 SMALLINT, i4 INT, i8 BIGINT, n TEXT, " +
	"n60 DECIMAL(60,30), f4 FLOAT, f8 DOUBLE, b BOOLEAN, t TEXT, vc VARCHAR(20), ch CHAR(5), bt BLOB, u CHAR(36), " +
	"j JSON, jb JSON, d DATE, ts DATETIME(6), tstz DATETIME(6), tm TIME(6), iv VARCHAR(100), ia TEXT, ta TEXT, " +
	"e ENUM('sad', 'ok', 'happy'), ip VARCHAR(43), cr VARCHAR(43)) CHARACTER SET utf8mb4"

// mariaPGTypesText reads the matrix from MariaDB as text, bytes in hex.
func mariaPGTypesText(ctx context.Context, db *sql.DB) ([][]string, error) {
	sel := make([]string, len(pgTypesColumns))
	for i, c := range pgTypesColumns {
		sel[i] = "CAST(" + c + " AS CHAR)"
		if c == "bt" {
			sel[i] = "HEX(bt)"
		}
	}
	return cart.SQLText(ctx, db, "SELECT "+strings.Join(sel, ", ")+" FROM types ORDER BY id")
}

// finiteOrNull is the mapping of a floating point column into MariaDB,
// which has no NaN or infinities: those become NULL (x - x is 0 for every
// finite x and NaN otherwise). Mapped as row.x, such a change could not be
// written and would go to the dead-letter topic.
const finiteOrNull = "'row.%[1]s == null || row.%[1]s - row.%[1]s == 0.0 ? row.%[1]s : null'"

func TestRun_PGTypeMatrixRoundTripsToMariaDB(t *testing.T) {
	ctx := context.Background()
	srcDSN, src, slot := pgTypesSource(t)
	tgtDSN := testenv.NewMariaDBDatabase(t)
	tgt := openMySQL(t, tgtDSN)
	if _, err := tgt.ExecContext(ctx, pgTypesMariaDDL); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, pgTypesConfig(srcDSN, slot, "mysql", tgtDSN, map[string]string{
		"f4": fmt.Sprintf(finiteOrNull, "f4"), "f8": fmt.Sprintf(finiteOrNull, "f8")}))
	checkClean(t, cfg)
	start(t, cfg)

	// What MariaDB holds of each PostgreSQL value: the same text but for
	// booleans (0, 1), char(n) (MariaDB strips the padding), bytea (read
	// in hex here), DATETIME and TIME (six fraction digits; timestamptz in
	// UTC, the sink's session zone, without an offset), -0 (MariaDB stores
	// 0), FLOAT (shown to 6 digits) and the NaN and infinite floats, NULL
	// by the mapping.
	want := [][]string{
		pgNulls("1"),
		{"2", "-32768", "-2147483648", "-9223372036854775808",
			"-99999999999999999999999999999999999999999999999999999999999999999999999999999999.5",
			// MariaDB stores -0 as 0.
			"-123456789012345678901234567890.123456789012345678901234567890", "0", "0", "0", "", "", "", "",
			"00000000-0000-0000-0000-000000000000", "[]", "{}", "0001-01-01", "0001-01-01 00:00:00.000000",
			"1970-01-01 00:00:00.000000", "00:00:00.000000", "-1 years -2 mons +3 days -04:05:06.000001", "{}", "{}", "sad",
			"0.0.0.0", "0.0.0.0/0"},
		{"3", "32767", "2147483647", "9223372036854775807",
			"12345678901234567890123456789012345678901234567890.00000000000000000000000000000000000000000000000001",
			"999999999999999999999999999999.999999999999999999999999999999", "3.40282e38", "1.7976931348623157e308",
			"1", "héllo 🐘 日本語", "ＵＴＦ８ 😀 テスト", "ab", "00FF000102", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
			`{"a": 1,  "a": [1, 2.5, "x"], "b": null}`, `{"a": {"c": "日本"}, "b": [1, 2.5, "x"], "e": "q\"uote"}`,
			"2024-02-29", "2024-02-29 23:59:58.123456", "2024-03-01 01:02:03.654321", "23:59:59.999999",
			"1 year 2 mons 3 days 04:05:06.789", "{1,NULL,-3}", `{"a b","q\"uote",NULL,"","NULL",x,日本}`, "happy",
			"2001:db8::1/64", "192.168.0.0/24"},
		pgRow("4", map[string]string{"n": "NaN"}),
		pgRow("5", map[string]string{"n": "-Infinity"}),
		pgRow("6", map[string]string{"n": "0", "n60": "0.000000000000000000000000000001", "f4": "1.1", "f8": "0.1",
			"b": "1", "tm": "24:00:00.000000", "iv": "00:00:00", "e": "ok", "tstz": "2024-07-01 02:00:00.000000"}),
		pgRow("7", map[string]string{"n": "0.0000000000000000000000000000000000000001", "n60": "-0.500000000000000000000000000000",
			// MariaDB shows a FLOAT to 6 digits: this is real's 1e-45, the smallest float.
			"f4": "1.4013e-45", "f8": "5e-324", "b": "0", "tm": "12:00:00.000001", "iv": "-00:00:00.000001", "e": "ok",
			"tstz": "2024-01-01 00:00:00.000001"}),
	}
	for _, step := range []struct {
		name, sql string
		want      [][]string
	}{
		{"inserts", pgTypesRows, want},
		{"updates to and from NULL", pgTypesUpdates, afterUpdates(want)},
	} {
		if _, err := src.Exec(ctx, step.sql); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		waitText(t, step.name+": PostgreSQL -> MariaDB", step.want, func() ([][]string, error) { return mariaPGTypesText(ctx, tgt) })
	}
}

func TestCheck_PGSourceMoneyColumnIsAWarningWithItsFix(t *testing.T) {
	ctx := context.Background()
	srcDSN, src, slot := pgTypesSource(t)
	if _, err := src.Exec(ctx, "ALTER TABLE types ADD COLUMN price money"); err != nil {
		t.Fatal(err)
	}
	tgtDSN := testenv.NewDatabase(t)
	if _, err := pgConnect(t, tgtDSN).Exec(ctx, pgTypesDDL+"; ALTER TABLE types ADD COLUMN price money"); err != nil {
		t.Fatal(err)
	}
	ps, err := app.Check(ctx, parseConfig(t, pgTypesConfig(srcDSN, slot, "postgres", tgtDSN, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := []preflight.Problem{{Severity: preflight.Warn, Object: "source table public.types",
		What: `column "price" (money) is carried as its text, which follows lc_monetary ("$1,234.56"): a server with another lc_monetary misreads or refuses it, and numeric columns refuse it`,
		Fix:  `ALTER TABLE "public"."types" ALTER COLUMN "price" TYPE numeric(20,2); (money casts to numeric exactly), or write it only to money columns of a target with the same lc_monetary`}}
	if diff := cmp.Diff(want, ps); diff != "" {
		t.Errorf("tandem check (-want +got):\n%s", diff)
	}
	if preflight.HasFailures(ps) {
		t.Errorf("a column carried as text fails check, which would stop tandem run: %v", ps)
	}
}
