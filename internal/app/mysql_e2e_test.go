package app_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

var serverIDCounter atomic.Uint32

func cartConfig(srcDSN, srcDB, targetKind, tgtDSN string) string {
	return cart.Config(cart.ConfigOptions{SourceDSN: srcDSN, SourceDB: srcDB, ServerID: 1000 + serverIDCounter.Add(1),
		TargetKind: targetKind, TargetDSN: tgtDSN})
}

func openMySQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := mysqlurl.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitCarts polls until the target equals what the source implies, and
// fails with the difference otherwise.
func waitCarts(t *testing.T, src *sql.DB, read cart.Reader, within time.Duration) *cart.Rows {
	t.Helper()
	ctx := context.Background()
	var want, got *cart.Rows
	_, err := poll.Until(ctx, 50*time.Millisecond, within, func() (bool, error) {
		var err error
		if want, err = cart.Expected(ctx, src); err != nil {
			return false, err
		}
		if got, err = read(ctx); err != nil {
			return false, err
		}
		return cmp.Equal(want, got), nil
	})
	if err != nil {
		t.Fatalf("target did not converge: %v (-want +got):\n%s", err, cmp.Diff(want, got))
	}
	return got
}

// cartWorkload runs ops operations of a cart workload.
func cartWorkload(ctx context.Context, db *sql.DB, seed uint64, ops int, base int64) error {
	w := &cart.Workload{DB: db, Seed: seed, Base: base}
	return w.Run(ctx, int64(ops), 0)
}

type cartMigration struct {
	srcDSN, srcDB string
	src           *sql.DB
	cfg           *config.Config
	read          cart.Reader
}

// newCartMigration creates a MariaDB source and a target of kind
// ("postgres" or "mysql") holding the cart schemas.
func newCartMigration(t *testing.T, kind string) *cartMigration {
	t.Helper()
	ctx := context.Background()
	srcDSN := testenv.NewMariaDBDatabase(t)
	src := openMySQL(t, srcDSN)
	if _, err := src.ExecContext(ctx, cart.SourceDDL); err != nil {
		t.Fatal(err)
	}
	srcCfg, _ := mysqlurl.Parse(srcDSN)
	m := &cartMigration{srcDSN: srcDSN, srcDB: srcCfg.DBName, src: src}
	var tgtDSN string
	switch kind {
	case "postgres":
		tgtDSN = testenv.NewDatabase(t)
		conn, err := pgx.Connect(ctx, tgtDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		for _, stmt := range cart.TargetDDL(kind) {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		m.read = cart.PostgresReader(conn)
	case "mysql":
		tgtDSN = testenv.NewMariaDBDatabase(t)
		tgt := openMySQL(t, tgtDSN)
		for _, stmt := range cart.TargetDDL(kind) {
			if _, err := tgt.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		m.read = cart.MySQLReader(tgt)
	}
	m.cfg = parseConfig(t, cartConfig(srcDSN, m.srcDB, kind, tgtDSN))
	return m
}

func TestRun_MariaDBConcurrentWritersConverge(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newCartMigration(t, kind)
			r := start(t, m.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			errc := make(chan error, 3)
			for i := range 3 {
				go func() { errc <- cartWorkload(ctx, m.src, uint64(i+1), 300, int64(i)*1_000_000) }()
			}
			for range 3 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			got := waitCarts(t, m.src, m.read, time.Minute)
			if len(got.Carts) < 200 || len(got.Paid) < 50 {
				t.Errorf("only %d carts and %d paid: the workload did too little to prove anything", len(got.Carts), len(got.Paid))
			}
			ids := make([]string, 0, len(got.Carts))
			for _, c := range got.Carts {
				ids = append(ids, c[0])
			}
			if !sort.SliceIsSorted(ids, func(i, j int) bool { a, _ := strconv.Atoi(ids[i]); b, _ := strconv.Atoi(ids[j]); return a < b }) {
				t.Errorf("target rows not read in key order: %v", ids[:min(10, len(ids))])
			}
			// The binlog's retention: bytes from the oldest binlog to the
			// acknowledged position, and no expiry (testenv servers keep
			// binlogs): +Inf seconds. Every series the alerts use is exported.
			testenv.WaitFor(t, "retention headroom measured", 30*time.Second, func() (bool, error) {
				v, ok := metricValue(t, r.Reg, "tandem_source_retention_headroom_bytes", nil)
				return ok && v > 0, nil
			})
			if v, ok := metricValue(t, r.Reg, "tandem_source_retention_headroom_seconds", nil); !ok || !math.IsInf(v, 1) {
				t.Errorf("tandem_source_retention_headroom_seconds = %v (exported %v), want +Inf", v, ok)
			}
			if v, _ := metricValue(t, r.Reg, "tandem_capture_events_total", map[string]string{"op": "update"}); v < 100 {
				t.Errorf("tandem_capture_events_total{op=update} = %v, want >= 100", v)
			}
		})
	}
}

// ownMariaDB starts a MariaDB server of the test's own (for restarts and
// purges, which would disturb the shared one) and returns it with the DSN
// of a fresh database holding the carts table.
func ownMariaDB(t *testing.T) (*testenv.MariaDB, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testenv.StartMariaDB(ctx, testenv.MariaDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	dsn, err := srv.CreateDatabase(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "shop", cart.SourceDDL); err != nil {
		t.Fatal(err)
	}
	return srv, dsn
}

// newCartMigrationOn is newCartMigration with the source on srv.
func newCartMigrationOn(t *testing.T, srcDSN string) *cartMigration {
	t.Helper()
	ctx := context.Background()
	tgtDSN := testenv.NewDatabase(t)
	conn, err := pgx.Connect(ctx, tgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, stmt := range cart.TargetDDL("postgres") {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	srcCfg, _ := mysqlurl.Parse(srcDSN)
	m := &cartMigration{srcDSN: srcDSN, srcDB: srcCfg.DBName, src: openMySQL(t, srcDSN), read: cart.PostgresReader(conn)}
	m.cfg = parseConfig(t, cartConfig(srcDSN, m.srcDB, "postgres", tgtDSN))
	return m
}

func TestRun_MariaDBServerRestartMidStreamLosesNothing(t *testing.T) {
	srv, dsn := ownMariaDB(t)
	m := newCartMigrationOn(t, dsn)
	start(t, m.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cartWorkload(ctx, m.src, 1, 150, 0); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// database/sql reconnects; the capturer reconnects with backoff and
	// resumes from its acknowledged position.
	if err := cartWorkload(ctx, m.src, 2, 150, 1_000_000); err != nil {
		t.Fatal(err)
	}
	got := waitCarts(t, m.src, m.read, time.Minute)
	if len(got.Carts) < 100 {
		t.Errorf("only %d carts: the workload did too little to prove anything", len(got.Carts))
	}
}

func TestRun_MariaDBPurgedPositionStopsWithAClearError(t *testing.T) {
	srv, dsn := ownMariaDB(t)
	m := newCartMigrationOn(t, dsn)
	r := start(t, m.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cartWorkload(ctx, m.src, 1, 20, 0); err != nil {
		t.Fatal(err)
	}
	waitCarts(t, m.src, m.read, time.Minute)
	r.Stop(t)
	// While tandem is down, the server rotates and purges past its position.
	if err := srv.Exec(ctx, "", "INSERT INTO shop.carts VALUES (999, 'late', 1.00, 'open', NULL, '2025-01-01 00:00:00')"); err != nil {
		t.Fatal(err)
	}
	var newest string
	testenv.WaitFor(t, "the binlogs before the newest to be purged", time.Minute, func() (bool, error) {
		if err := srv.Exec(ctx, "", "FLUSH BINARY LOGS"); err != nil {
			return false, err
		}
		rows, err := cart.SQLText(ctx, m.src, "SHOW BINARY LOGS")
		if err != nil {
			return false, err
		}
		newest = rows[len(rows)-1][0]
		if err := srv.Exec(ctx, "", "PURGE BINARY LOGS TO '"+newest+"'"); err != nil {
			return false, err
		}
		rows, err = cart.SQLText(ctx, m.src, "SHOW BINARY LOGS")
		return err == nil && len(rows) == 1, err
	})
	runCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	err := app.Run(runCtx, m.cfg, app.Options{Roles: app.Roles{Capture: true, Apply: true},
		Logger: slog.New(slog.NewTextHandler(apptest.LogWriter{TB: t}, nil))})
	if !errors.Is(err, capture.ErrPositionLost) {
		t.Fatalf("Run = %v, want an error wrapping capture.ErrPositionLost", err)
	}
	for _, want := range []string{"purged", "backfill"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), testenv.Password) {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestRun_MariaDBSchemaChangeStopsOnlyTheMappingThatReadsTheColumn(t *testing.T) {
	ctx := context.Background()
	m := newCartMigration(t, "postgres")
	if _, err := m.src.ExecContext(ctx, "CREATE TABLE tags (id INT PRIMARY KEY, label VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	tgt, err := pgx.Connect(ctx, m.cfg.Target.DSN.Value())
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close(ctx)
	if _, err := tgt.Exec(ctx, "CREATE TABLE tags_v2 (id int PRIMARY KEY, label text)"); err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(cartConfig(m.srcDSN, m.srcDB, "postgres", m.cfg.Target.DSN.Value()),
		"tables: ["+m.srcDB+".carts]", "tables: ["+m.srcDB+".carts, "+m.srcDB+".tags]", 1) + fmt.Sprintf(`  - from: %s.tags
    to:
      - table: tags_v2
        key: [id]
        columns:
          id: row.id
          label: row.label
`, m.srcDB)
	m.cfg = parseConfig(t, yaml)
	r := start(t, m.cfg)
	tags := func() [][]string {
		rows, err := cart.PGText(ctx, tgt, "SELECT id::text, label FROM tags_v2 ORDER BY tags_v2.id")
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	exec := func(q string) {
		t.Helper()
		if _, err := m.src.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("INSERT INTO carts VALUES (1, 'a', 1.50, 'paid', 'n1', '2025-01-01 00:00:00')")
	// A column no mapping reads comes and goes freely.
	exec("ALTER TABLE carts ADD COLUMN coupon VARCHAR(10) NULL")
	exec("INSERT INTO carts VALUES (2, 'b', 2.50, 'open', 'n2', '2025-01-01 00:00:00', 'SAVE10')")
	before := waitCarts(t, m.src, m.read, 30*time.Second)

	// A column the carts mapping reads disappears: that mapping stops
	// (never writing NULL notes); the tags mapping goes on.
	exec("ALTER TABLE carts DROP COLUMN note")
	exec("INSERT INTO carts VALUES (3, 'c', 3.50, 'open', '2025-01-01 00:00:00', NULL)")
	exec("UPDATE carts SET owner = 'a2' WHERE id = 1")
	exec("INSERT INTO tags VALUES (1, 'first')")
	testenv.WaitFor(t, "the carts mapping to stop and tags to go on", 30*time.Second, func() (bool, error) {
		paused, _ := metricValue(t, r.Reg, "tandem_mapping_paused", map[string]string{"mapping": m.srcDB + ".carts"})
		return paused == 1 && cmp.Equal([][]string{{"1", "first"}}, tags()), nil
	})
	if v, _ := metricValue(t, r.Reg, "tandem_apply_errors_total", map[string]string{"reason": "schema_changed"}); v != 1 {
		t.Errorf("tandem_apply_errors_total{reason=schema_changed} = %v, want 1", v)
	}
	if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", map[string]string{"mapping": m.srcDB + ".tags"}); v != 0 {
		t.Errorf("tags mapping paused = %v, want 0", v)
	}
	after, err := m.read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the stopped mapping wrote after the drop (-before +after):\n%s", diff)
	}
}

// typesColumns are the columns of the type matrix, in table order.
var typesColumns = []string{"id", "ti", "tu", "si", "su", "mi", "mu", "i", "iu", "bi", "dec65", "f", "d",
	"dt", "dtm", "ts", "tm", "y", "c", "vc", "tx", "bn", "vb", "bl", "j", "e", "st", "bt", "b64"}

const typesMariaDDL = "CREATE TABLE types (id BIGINT UNSIGNED PRIMARY KEY, " +
	"ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, " +
	"i INT, iu INT UNSIGNED, bi BIGINT, dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, " +
	"dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR, " +
	"c CHAR(5), vc VARCHAR(100), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, " +
	"j JSON, e ENUM('small','large','x''y'), st SET('a','b','c'), bt BIT(10), b64 BIT(64)) CHARACTER SET utf8mb4"

const typesRows = "INSERT INTO types VALUES (18446744073709551615, -128, 255, -32768, 65535, -8388608, 16777215, " +
	"-2147483648, 4294967295, -9223372036854775808, " +
	"'-12345678901234567890123456789012345.123456789012345678901234567890', 1.1, 2.718281828459045, " +
	"'2024-02-29', '2024-02-29 23:59:58.123456', '2024-03-01 01:02:03.654321', '-838:59:58.5', 2155, " +
	"'ab', 'héllo 🐘 日本語', 'long text ✓', 0x00FF0001, 0x00, 0x000102, " +
	`'{"a": [1, 2.5, "x"], "b": null}', 'x''y', 'a,c', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111'),` +
	"(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, " +
	"NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), " +
	"(2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.0, 1e308, '1000-01-01', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', " +
	"'00:00:00', 1901, '', '', '', 0x00000000, '', '', '[]', 'small', '', b'0', b'0')"

// typesConfig maps the types table onto a target table of the same name and columns.
func typesConfig(srcDSN, srcDB, kind, tgtDSN string) string {
	var cols strings.Builder
	for _, c := range typesColumns {
		fmt.Fprintf(&cols, "          %s: row.%s\n", c, c)
	}
	return fmt.Sprintf(`source:
  kind: mysql
  dsn: %q
  tables: [%s.types]
  mysql: { server_id: %d }
kafka:
  topic_prefix: types
  partitions: 2
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: %s.types
    to:
      - table: types
        key: [id]
        columns:
%s`, srcDSN, srcDB, 2000+serverIDCounter.Add(1), kind, tgtDSN, srcDB, cols.String())
}

// mariaTypesText reads the type matrix from a MariaDB table as text, with
// bytes in hex, so the comparison is exact.
func mariaTypesText(ctx context.Context, db *sql.DB) ([][]string, error) {
	sel := make([]string, len(typesColumns))
	for i, c := range typesColumns {
		switch c {
		case "bn", "vb", "bl":
			sel[i] = "HEX(" + c + ")"
		case "bt", "b64":
			sel[i] = "CAST(" + c + " AS UNSIGNED)"
		default:
			sel[i] = "CAST(" + c + " AS CHAR)"
		}
	}
	return cart.SQLText(ctx, db, "SELECT "+strings.Join(sel, ", ")+" FROM types ORDER BY id")
}

func TestRun_MariaDBTypeMatrixRoundTrips(t *testing.T) {
	ctx := context.Background()
	srcDSN := testenv.NewMariaDBDatabase(t)
	src := openMySQL(t, srcDSN)
	if _, err := src.ExecContext(ctx, typesMariaDDL); err != nil {
		t.Fatal(err)
	}
	srcCfg, _ := mysqlurl.Parse(srcDSN)

	t.Run("to_mariadb", func(t *testing.T) {
		tgtDSN := testenv.NewMariaDBDatabase(t)
		tgt := openMySQL(t, tgtDSN)
		if _, err := tgt.ExecContext(ctx, typesMariaDDL); err != nil {
			t.Fatal(err)
		}
		start(t, parseConfig(t, typesConfig(srcDSN, srcCfg.DBName, "mysql", tgtDSN)))
		if _, err := src.ExecContext(ctx, "DELETE FROM types"); err != nil {
			t.Fatal(err)
		}
		if _, err := src.ExecContext(ctx, typesRows); err != nil {
			t.Fatal(err)
		}
		want, err := mariaTypesText(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		if _, err := poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
			got, err = mariaTypesText(ctx, tgt)
			return len(got) == len(want), err
		}); err != nil {
			t.Fatalf("rows did not arrive: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("MariaDB -> MariaDB (-source +target):\n%s", diff)
		}
	})

	t.Run("to_postgres", func(t *testing.T) {
		tgtDSN := testenv.NewDatabase(t)
		conn, err := pgx.Connect(ctx, tgtDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE types (id numeric(20) PRIMARY KEY, ti smallint, tu smallint, si int, su int,
	mi int, mu int, i int, iu bigint, bi bigint, dec65 numeric(65,30), f real, d double precision,
	dt date, dtm timestamp(6), ts timestamptz(6), tm interval, y smallint, c text, vc text, tx text,
	bn bytea, vb bytea, bl bytea, j jsonb, e text, st text, bt int, b64 numeric(20))`); err != nil {
			t.Fatal(err)
		}
		if _, err := src.ExecContext(ctx, "DELETE FROM types"); err != nil {
			t.Fatal(err)
		}
		start(t, parseConfig(t, typesConfig(srcDSN, srcCfg.DBName, "postgres", tgtDSN)))
		if _, err := src.ExecContext(ctx, typesRows); err != nil {
			t.Fatal(err)
		}
		sel := make([]string, len(typesColumns))
		for i, c := range typesColumns {
			sel[i] = c + "::text"
		}
		if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
			t.Fatal(err)
		}
		var got [][]string
		if _, err := poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
			got, err = cart.PGText(ctx, conn, "SELECT "+strings.Join(sel, ", ")+" FROM types ORDER BY types.id")
			return len(got) == 3, err
		}); err != nil {
			t.Fatalf("rows did not arrive: %v", err)
		}
		null := func(n int) []string {
			r := make([]string, n)
			for i := range r {
				r[i] = cart.Null
			}
			return r
		}
		want := [][]string{
			append([]string{"1"}, null(28)...),
			{"2", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0.000000000000000000000000000000", "0", "1e+308",
				"1000-01-01", "9999-12-31 23:59:59.999999", "1970-01-01 00:00:01+00", "00:00:00", "1901", "", "", "",
				`\x00000000`, `\x`, `\x`, "[]", "small", "", "0", "0"},
			{"18446744073709551615", "-128", "255", "-32768", "65535", "-8388608", "16777215", "-2147483648", "4294967295",
				"-9223372036854775808", "-12345678901234567890123456789012345.123456789012345678901234567890", "1.1", "2.718281828459045",
				"2024-02-29", "2024-02-29 23:59:58.123456", "2024-03-01 01:02:03.654321+00", "-838:59:58.5", "2155",
				"ab", "héllo 🐘 日本語", "long text ✓", `\x00ff0001`, `\x00`, `\x000102`, `{"a": [1, 2.5, "x"], "b": null}`,
				"x'y", "a,c", "682", "18446744073709551615"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("MariaDB -> PostgreSQL (-want +got):\n%s", diff)
		}
	})
}

func TestCheck_MariaDBSourceAndTargets(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newCartMigration(t, kind)
			ps, err := app.Check(ctx, m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 0 {
				t.Errorf("a good migration has problems: %v", ps)
			}
			// A source table without a primary key is refused, with its fix.
			if _, err := m.src.ExecContext(ctx, "CREATE TABLE nokey (a INT)"); err != nil {
				t.Fatal(err)
			}
			bad := parseConfig(t, strings.Replace(cartConfig(m.srcDSN, m.srcDB, kind, m.cfg.Target.DSN.Value()),
				"tables: ["+m.srcDB+".carts]", "tables: ["+m.srcDB+".carts, "+m.srcDB+".nokey]", 1))
			ps, err = app.Check(ctx, bad)
			if err != nil {
				t.Fatal(err)
			}
			if !preflight.HasFailures(ps) || !strings.Contains(fmt.Sprint(ps), "PRIMARY KEY") {
				t.Errorf("a table without a primary key passes check: %v", ps)
			}
		})
	}
}

func TestRun_MariaDBSplitRolesOverExternalKafka(t *testing.T) {
	cluster := externalKafka(t)
	m := newCartMigration(t, "mysql")
	cfg := parseConfig(t, strings.Replace(cartConfig(m.srcDSN, m.srcDB, "mysql", m.cfg.Target.DSN.Value()),
		"brokers: []", "brokers: ["+strings.Join(cluster.ListenAddrs(), ", ")+"]", 1))
	// Separate processes would run these; the capture role keeps its
	// binlog position in the target too.
	startWith(t, cfg, app.Roles{Capture: true})
	startWith(t, cfg, app.Roles{Apply: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cartWorkload(ctx, m.src, 5, 200, 0); err != nil {
		t.Fatal(err)
	}
	waitCarts(t, m.src, m.read, time.Minute)
}
