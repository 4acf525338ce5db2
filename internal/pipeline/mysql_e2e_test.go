package pipeline_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pipeline"
	"github.com/tandemcdc/tandem/internal/pipeline/pipelinetest"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The cart migration: a MariaDB carts table becomes carts_v2 (amounts in
// cents) plus paid_carts for the carts that are paid.
const cartSourceDDL = "CREATE TABLE carts (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, " +
	"total DECIMAL(12,2) NOT NULL, state ENUM('open','paid','gone') NOT NULL, note TEXT NULL, " +
	"touched DATETIME(6) NOT NULL) CHARACTER SET utf8mb4"

const cartTargetDDL = `CREATE TABLE carts_v2 (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, total_cents BIGINT NOT NULL,
	state VARCHAR(8) NOT NULL, note TEXT NULL, touched %s NOT NULL);
CREATE TABLE paid_carts (cart_id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL)`

var serverIDCounter atomic.Uint32

func cartConfig(srcDSN, srcDB, targetKind, tgtDSN string) string {
	return fmt.Sprintf(`source:
  kind: mysql
  dsn: %q
  tables: [%s.carts]
  mysql: { server_id: %d }
kafka:
  topic_prefix: cart
  partitions: 4
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: %s.carts
    to:
      - table: carts_v2
        key: [id]
        columns:
          id: row.id
          owner: row.owner
          total_cents: int(double(row.total) * 100.0 + 0.5)
          state: row.state
          note: row.note
          touched: row.touched
      - table: paid_carts
        key: [cart_id]
        when: row.state == "paid"
        columns:
          cart_id: row.id
          owner: row.owner
`, srcDSN, srcDB, 1000+serverIDCounter.Add(1), targetKind, tgtDSN, srcDB)
}

// cartRows is the new schema's content, every value as text.
type cartRows struct {
	Carts [][]string // id, owner, total_cents, state, note, touched
	Paid  [][]string // cart_id, owner
}

func openMySQL(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	c, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := gomysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// expectedCarts computes the new rows from the source in plain Go,
// independently of the CEL mapping.
func expectedCarts(ctx context.Context, src *sql.DB) (*cartRows, error) {
	rows, err := src.QueryContext(ctx, "SELECT id, owner, total, state, note, touched FROM carts ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &cartRows{}
	for rows.Next() {
		var id int64
		var owner, total, state, touched string
		var note sql.NullString
		if err := rows.Scan(&id, &owner, &total, &state, &note, &touched); err != nil {
			return nil, err
		}
		units, cents, _ := strings.Cut(total, ".")
		u, _ := strconv.ParseInt(units, 10, 64)
		c, _ := strconv.ParseInt((cents + "00")[:2], 10, 64)
		if strings.HasPrefix(units, "-") {
			c = -c
		}
		n := "<NULL>"
		if note.Valid {
			n = note.String
		}
		out.Carts = append(out.Carts, []string{strconv.FormatInt(id, 10), owner, strconv.FormatInt(u*100+c, 10), state, n, touched})
		if state == "paid" {
			out.Paid = append(out.Paid, []string{strconv.FormatInt(id, 10), owner})
		}
	}
	return out, rows.Err()
}

// targetReader reads the new schema from a PostgreSQL or MariaDB target.
type targetReader func(ctx context.Context) (*cartRows, error)

func mysqlTarget(db *sql.DB) targetReader {
	return func(ctx context.Context) (*cartRows, error) {
		out := &cartRows{}
		var err error
		if out.Carts, err = sqlText(ctx, db, "SELECT id, owner, total_cents, state, note, DATE_FORMAT(touched, '%Y-%m-%d %H:%i:%s.%f') FROM carts_v2 ORDER BY id"); err != nil {
			return nil, err
		}
		out.Paid, err = sqlText(ctx, db, "SELECT cart_id, owner FROM paid_carts ORDER BY cart_id")
		return out, err
	}
}

func pgTarget(db *pgx.Conn) targetReader {
	return func(ctx context.Context) (*cartRows, error) {
		out := &cartRows{}
		var err error
		if out.Carts, err = pgText(ctx, db, `SELECT id::text, owner, total_cents::text, state, note, to_char(touched, 'YYYY-MM-DD HH24:MI:SS.US') FROM carts_v2 ORDER BY carts_v2.id`); err != nil {
			return nil, err
		}
		out.Paid, err = pgText(ctx, db, `SELECT cart_id::text, owner FROM paid_carts ORDER BY paid_carts.cart_id`)
		return out, err
	}
}

func sqlText(ctx context.Context, db *sql.DB, q string) ([][]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = "<NULL>"
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func pgText(ctx context.Context, db *pgx.Conn, q string) ([][]string, error) {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		if err != nil {
			return nil, err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			if v == nil {
				row[i] = "<NULL>"
			} else {
				row[i] = fmt.Sprint(v)
			}
		}
		return row, nil
	})
}

// waitCarts polls until the target equals what the source implies, and
// fails with the difference otherwise.
func waitCarts(t *testing.T, src *sql.DB, read targetReader, within time.Duration) *cartRows {
	t.Helper()
	ctx := context.Background()
	var want, got *cartRows
	_, err := poll.Until(ctx, 50*time.Millisecond, within, func() (bool, error) {
		var err error
		if want, err = expectedCarts(ctx, src); err != nil {
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

// cartWorkload writes concurrently to the carts table: inserts, updates
// (state transitions in and out of paid), key changes, deletes, and
// multi-statement transactions.
func cartWorkload(ctx context.Context, db *sql.DB, seed uint64, ops int, base int64) error {
	rnd := rand.New(rand.NewPCG(seed, seed*7+1))
	states := []string{"open", "paid", "gone"}
	var ids []int64
	next := base
	for i := 0; i < ops; i++ {
		var err error
		switch op := rnd.IntN(10); {
		case op < 4 || len(ids) == 0:
			next++
			ids = append(ids, next)
			note := any(nil)
			if rnd.IntN(2) == 0 {
				note = fmt.Sprintf("note %d ✓ 日本", next)
			}
			_, err = db.ExecContext(ctx, "INSERT INTO carts VALUES (?, ?, ?, ?, ?, ?)", next, fmt.Sprintf("owner-%d", rnd.IntN(50)),
				fmt.Sprintf("%d.%02d", rnd.IntN(10000), rnd.IntN(100)), states[rnd.IntN(3)], note,
				time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rnd.Int64N(1e15))).Format("2006-01-02 15:04:05.000000"))
		case op < 7:
			id := ids[rnd.IntN(len(ids))]
			_, err = db.ExecContext(ctx, "UPDATE carts SET state = ?, total = total + 1.01 WHERE id = ?", states[rnd.IntN(3)], id)
		case op < 8:
			i := rnd.IntN(len(ids))
			next++
			_, err = db.ExecContext(ctx, "UPDATE carts SET id = ? WHERE id = ?", next, ids[i])
			ids[i] = next
		case op < 9:
			i := rnd.IntN(len(ids))
			_, err = db.ExecContext(ctx, "DELETE FROM carts WHERE id = ?", ids[i])
			ids = append(ids[:i], ids[i+1:]...)
		default:
			tx, terr := db.BeginTx(ctx, nil)
			if terr != nil {
				return terr
			}
			next++
			id := ids[rnd.IntN(len(ids))]
			_, err = tx.ExecContext(ctx, "INSERT INTO carts VALUES (?, 'tx', 1.00, 'open', NULL, '2025-06-01 00:00:00')", next)
			if err == nil {
				_, err = tx.ExecContext(ctx, "UPDATE carts SET state = 'paid', owner = CONCAT(owner, '+') WHERE id IN (?, ?)", next, id)
			}
			if err != nil {
				tx.Rollback()
				return err
			}
			if err = tx.Commit(); err != nil {
				return err
			}
			ids = append(ids, next)
		}
		if err != nil {
			return fmt.Errorf("workload op %d: %w", i, err)
		}
	}
	return nil
}

type cartMigration struct {
	srcDSN, srcDB string
	src           *sql.DB
	cfg           *config.Config
	read          targetReader
}

// newCartMigration creates a MariaDB source and a target of kind
// ("postgres" or "mysql") holding the cart schemas.
func newCartMigration(t *testing.T, kind string) *cartMigration {
	t.Helper()
	ctx := context.Background()
	srcDSN := testenv.NewMariaDBDatabase(t)
	src := openMySQL(t, srcDSN)
	if _, err := src.ExecContext(ctx, cartSourceDDL); err != nil {
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
		if _, err := conn.Exec(ctx, fmt.Sprintf(cartTargetDDL, "timestamp(6)")); err != nil {
			t.Fatal(err)
		}
		m.read = pgTarget(conn)
	case "mysql":
		tgtDSN = testenv.NewMariaDBDatabase(t)
		tgt := openMySQL(t, tgtDSN)
		for _, stmt := range strings.Split(fmt.Sprintf(cartTargetDDL, "DATETIME(6)"), ";") {
			if _, err := tgt.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		m.read = mysqlTarget(tgt)
	}
	m.cfg = parseConfig(t, cartConfig(srcDSN, m.srcDB, kind, tgtDSN))
	return m
}

func TestRun_MariaDBConcurrentWritersConverge(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newCartMigration(t, kind)
			start(t, m.cfg)
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
	if err := srv.Exec(ctx, "shop", cartSourceDDL); err != nil {
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
	if _, err := conn.Exec(ctx, fmt.Sprintf(cartTargetDDL, "timestamp(6)")); err != nil {
		t.Fatal(err)
	}
	srcCfg, _ := mysqlurl.Parse(srcDSN)
	m := &cartMigration{srcDSN: srcDSN, srcDB: srcCfg.DBName, src: openMySQL(t, srcDSN), read: pgTarget(conn)}
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
		rows, err := sqlText(ctx, m.src, "SHOW BINARY LOGS")
		if err != nil {
			return false, err
		}
		newest = rows[len(rows)-1][0]
		if err := srv.Exec(ctx, "", "PURGE BINARY LOGS TO '"+newest+"'"); err != nil {
			return false, err
		}
		rows, err = sqlText(ctx, m.src, "SHOW BINARY LOGS")
		return err == nil && len(rows) == 1, err
	})
	runCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	err := pipeline.Run(runCtx, m.cfg, pipeline.Options{Roles: pipeline.Roles{Capture: true, Apply: true},
		Logger: slog.New(slog.NewTextHandler(pipelinetest.LogWriter{TB: t}, nil))})
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
		rows, err := pgText(ctx, tgt, "SELECT id::text, label FROM tags_v2 ORDER BY tags_v2.id")
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
