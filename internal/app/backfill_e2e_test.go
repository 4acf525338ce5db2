package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// smallChunks makes a config copy in many small chunks, so concurrent
// writes land inside chunks being copied.
const smallChunks = "backfill:\n  chunk_rows: 40\n  parallel: 2\n"

// runBackfill runs `tandem backfill` in-process until the copy is durable.
func runBackfill(t *testing.T, ctx context.Context, cfg *config.Config, bo app.BackfillOptions) (backfill.Summary, error) {
	t.Helper()
	sum, _, err := runBackfillCounting(t, ctx, cfg, bo)
	return sum, err
}

// runBackfillCounting is runBackfill that also returns how many rows this
// run copied (tandem_backfill_rows_total of its process), as opposed to
// the progress it ends with, which counts what earlier runs saved.
func runBackfillCounting(t *testing.T, ctx context.Context, cfg *config.Config, bo app.BackfillOptions) (backfill.Summary, int64, error) {
	t.Helper()
	var sum backfill.Summary
	bo.Done = func(s backfill.Summary) { sum = s }
	reg := prometheus.NewRegistry()
	err := app.Run(ctx, cfg, app.Options{
		Roles: app.Roles{Capture: true, Apply: true}, Backfill: &bo, Registry: reg,
		Logger: slog.New(slog.NewTextHandler(apptest.LogWriter{TB: t}, nil)),
	})
	copied, _ := apptest.Metric(reg, "tandem_backfill_rows_total", nil)
	return sum, int64(copied), err
}

func TestBackfill_PostgresHistoryAndConcurrentWritersConverge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := newMigration(t)
	// History before tandem exists: only the backfill can bring it over.
	w := &shop.Workload{Src: m.Src, Seed: 51}
	if err := w.History(ctx, 300); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})+smallChunks)
	// Writers update, delete and insert in the chunks while they are copied.
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	errc := make(chan error, 2)
	for i := range 2 {
		go func() {
			wk := &shop.Workload{Src: m.Src, Seed: uint64(60 + i)}
			errc <- wk.Run(wctx, 0, 400)
		}()
	}
	sum, err := runBackfill(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows < 1200 || sum.Tables != 2 {
		t.Errorf("backfill copied %d rows of %d tables, want >= 1200 of 2", sum.Rows, sum.Tables)
	}
	// The stream goes on after the backfill; writers stop; all converges.
	start(t, cfg)
	stopWriters()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	got := waitConverged(t, m, time.Minute)
	if got.Count() < 1000 {
		t.Errorf("only %d target rows", got.Count())
	}
}

func TestBackfill_MariaDBHistoryAndConcurrentWritersConverge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := newCartMigration(t, "postgres")
	// History, then the same workload goes on while the backfill copies:
	// updates, key changes and deletes of rows being copied; inserts above.
	wk := &cart.Workload{DB: m.src, Seed: 71}
	if err := wk.Run(ctx, 600, 0); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, cartConfig(m.srcDSN, m.srcDB, "postgres", m.cfg.Target.DSN.Value())+smallChunks)
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	errc := make(chan error, 1)
	go func() { errc <- wk.Run(wctx, 0, 400) }()
	if _, err := runBackfill(t, ctx, cfg, app.BackfillOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	stopWriters()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got := waitCarts(t, m.src, m.read, time.Minute)
	if len(got.Carts) < 100 {
		t.Errorf("only %d carts", len(got.Carts))
	}
}

func TestBackfill_KilledMidwayResumesAfterTheLastDurableChunk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := newMigration(t)
	w := &shop.Workload{Src: m.Src, Seed: 81}
	if err := w.History(ctx, 500); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})+
		"backfill:\n  chunk_rows: 20\n  parallel: 1\n  max_rows_per_second: 1500\n")
	// First run: stopped once some chunks are durable (progress saved).
	first, stopFirst := context.WithCancel(ctx)
	var copied atomic.Int64
	go func() {
		testenv.WaitFor(t, "some backfill progress saved", time.Minute, func() (bool, error) {
			var n int64
			err := m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(rows), 0) FROM tandem.backfills`).Scan(&n)
			if err != nil {
				return false, nil // not created yet
			}
			copied.Store(n)
			return n >= 200, nil
		})
		stopFirst()
	}()
	if _, err := runBackfill(t, first, cfg, app.BackfillOptions{}); !errors.Is(err, app.ErrBackfillInterrupted) {
		t.Fatalf("the stopped backfill ended with %v, want app.ErrBackfillInterrupted", err)
	}
	if copied.Load() == 0 {
		t.Fatal("the first run saved no progress")
	}
	// Second run: resumes after the last durable chunk, so it copies what
	// the first run had not saved, not everything again (a chunk the first
	// run wrote but had not saved yet is copied again, and counted so).
	var saved int64
	if err := m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(rows), 0) FROM tandem.backfills`).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	sum, copiedAgain, err := runBackfillCounting(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const total = int64(2000) // 500 customers + 1500 orders
	if sum.Rows != total {
		t.Errorf("progress after the resumed run: %d rows, want %d", sum.Rows, total)
	}
	if copiedAgain != total-saved {
		t.Errorf("the resumed run copied %d rows, want the %d the first run had not saved (of %d): it must not copy everything again", copiedAgain, total-saved, total)
	}
	run := start(t, cfg)
	waitConverged(t, m, time.Minute)
	// A third run has nothing to do. (Stopped first: the stream's reader
	// would refuse to share the slot with the running one.)
	run.Stop(t)
	sum, err = runBackfill(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Skipped) != 2 || sum.Tables != 0 {
		t.Errorf("a finished backfill ran again: %+v", sum)
	}
}

func TestBackfill_CompositeKeysAndAHugeRow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	for _, dsn := range []string{src, tgt} {
		if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, dsn), `CREATE TABLE lines (order_id int, line int, sku text, note text, PRIMARY KEY (order_id, line))`); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, src), `INSERT INTO lines SELECT o, l, 'sku-' || o || '-' || l, NULL FROM generate_series(1, 30) o, generate_series(1, 7) l;
UPDATE lines SET note = repeat('huge ', 600 * 1024) WHERE order_id = 17 AND line = 3`); err != nil {
		t.Fatal(err)
	}
	cfg := pgSourceConfig(t, src, "public.lines", "postgres", tgt, `backfill:
  chunk_rows: 25
mappings:
  - from: public.lines
    to:
      - table: public.lines
        key: [order_id, line]
        columns:
          order_id: row.order_id
          line: row.line
          sku: row.sku
          note: row.note
`)
	sum, err := runBackfill(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 210 {
		t.Errorf("copied %d rows, want 210", sum.Rows)
	}
	q := `SELECT order_id, line, sku, md5(coalesce(note, '')) FROM lines ORDER BY order_id, line`
	want, err := pgRows(ctx, src, q)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgRows(ctx, tgt, q)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("target after backfill (-source +target):\n%s", diff)
	}
}

// execPG runs sql (statements separated by semicolons) on the database at
// dsn, failing t on an error.
func execPG(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// pgRows reads a query's rows as text on the database at dsn.
func pgRows(ctx context.Context, dsn, q string) ([][]string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	return cart.PGText(ctx, conn, q)
}

// TestBackfill_RowsDeletedWhileTheirChunkIsCopiedAreNotResurrected makes
// the race happen on purpose: the throttle holds a chunk between its read
// and its emit for a second, the rows are deleted in that second, so the
// stream's deletes reach Kafka (and the target) before the copies.
func TestBackfill_RowsDeletedWhileTheirChunkIsCopiedAreNotResurrected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	for _, dsn := range []string{src, tgt} {
		if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, dsn), `CREATE TABLE items (id int PRIMARY KEY, v text)`); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, src), `INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 60) g`); err != nil {
		t.Fatal(err)
	}
	cfg := pgSourceConfig(t, src, "public.items", "postgres", tgt, `backfill:
  chunk_rows: 10
  parallel: 1
  max_rows_per_second: 10
mappings:
  - from: public.items
    to:
      - table: public.items
        key: [id]
        columns:
          id: row.id
          v: row.v
`)
	done := make(chan error, 1)
	go func() {
		_, err := runBackfill(t, ctx, cfg, app.BackfillOptions{})
		done <- err
	}()
	// The first chunk is applied; the second was read right after it and
	// waits a second for the throttle: delete everything now.
	testenv.WaitFor(t, "the first chunk applied", 30*time.Second, func() (bool, error) {
		rows, err := pgRows(ctx, tgt, `SELECT count(*)::text FROM items`)
		return err == nil && rows[0][0] != "0", nil
	})
	if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, src), `DELETE FROM items`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	start(t, cfg) // the stream goes on: every delete is applied
	testenv.WaitFor(t, "the target to be empty like the source", 30*time.Second, func() (bool, error) {
		rows, err := pgRows(ctx, tgt, `SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM items`)
		if err != nil {
			return false, err
		}
		if rows[0][0] != "" {
			t.Logf("target still holds %s", rows[0][0])
		}
		return rows[0][0] == "", nil
	})
}

// verbatimDDL is a table whose identity mapping (accountsMapping) copies
// its chunks as the source's text (floats and bools into columns of their
// own types).
const verbatimDDL = `CREATE TABLE accounts (id bigint PRIMARY KEY, name text, balance numeric(12,2), at timestamptz,
	ok boolean, score double precision, data bytea, doc jsonb, tags text[])`

// accountsMapping is the identity mapping of verbatimDDL's table, to
// follow pgSourceConfig's backfill settings.
const accountsMapping = `mappings:
  - from: public.accounts
    to:
      - table: public.accounts
        key: [id]
        columns: { id: row.id, name: row.name, balance: row.balance, at: row.at, ok: row.ok, score: row.score, data: row.data, doc: row.doc, tags: row.tags }
`

// writeAccounts runs writers on src's accounts table (verbatimDDL) of rows
// rows until stop is called, all over its keys: an update of a row's
// name, balance and ok (and, with tags, tags), every 5th write an insert
// above rows instead, and every 7th a delete once more than deletesAfter
// writes were made (-1: from the first). stop returns the first error of
// a write.
func writeAccounts(t *testing.T, ctx context.Context, src string, rows, deletesAfter int, tags bool) (stop func() error) {
	t.Helper()
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	update := `UPDATE accounts SET name = 'updated ' || $1::text, balance = balance + 1, ok = NOT ok WHERE id = $1`
	if tags {
		update = `UPDATE accounts SET name = 'updated ' || $1::text, balance = balance + 1, ok = NOT ok, tags = tags || 'u'::text WHERE id = $1`
	}
	insert := fmt.Sprintf(`INSERT INTO accounts (id, name, doc) VALUES (%d + $1, 'new', '{"new": true}') ON CONFLICT DO NOTHING`, rows)
	return writeUntilStopped(ctx, func(ctx context.Context, i int) error {
		id := (i*7919)%rows + 1
		sql := update
		switch {
		case i%5 == 0:
			sql = insert
		case i%7 == 0 && i > deletesAfter:
			sql = `DELETE FROM accounts WHERE id = $1`
		}
		_, err := conn.Exec(ctx, sql, id)
		return err
	})
}

// waitSameAccounts waits until tgt's accounts table equals src's row for
// row.
func waitSameAccounts(t *testing.T, ctx context.Context, src, tgt string) {
	t.Helper()
	q := `SELECT id::text, name, balance::text, at::text, ok::text, score::text, encode(data, 'hex'), doc::text, tags::text FROM accounts ORDER BY id`
	waitSameRows(t, "the target to equal the source",
		func() ([][]string, error) { return pgRows(ctx, src, q) },
		func() ([][]string, error) { return pgRows(ctx, tgt, q) })
}

// TestBackfill_VerbatimChunksConvergeWithConcurrentWriters copies a table
// whose chunks go in as the source's COPY text, while writers update,
// insert and delete rows in the chunks being copied: once the stream has
// caught up, the target equals the source row for row. The deletes leave
// tombstones, so later chunks take the decoded path: both are exercised.
func TestBackfill_VerbatimChunksConvergeWithConcurrentWriters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, src, verbatimDDL+`;
INSERT INTO accounts SELECT g, E'name\t' || g || E'\n\\ ''q''', g / 7.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
	g % 3 = 0, g / 3.0, decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'half', g / 2.0), ARRAY['a' || g, NULL]
FROM generate_series(1, 3000) g`)
	execPG(t, tgt, verbatimDDL)
	cfg := pgSourceConfig(t, src, "public.accounts", "postgres", tgt, `backfill:
  chunk_rows: 100
  max_rows_per_second: 6000
`+accountsMapping)
	// Writers: the first 150 writes only update and insert (chunks go in
	// verbatim, beside the stream's upserts); then deletes too.
	stopWriters := writeAccounts(t, ctx, src, 3000, 150, true)
	if !runBackfillSaying(t, ctx, cfg, verbatimLog) {
		t.Error("the backfill did not copy accounts verbatim")
	}
	start(t, cfg)
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	waitSameAccounts(t, ctx, src, tgt)
}

// lockedWriter is a writer safe for concurrent use.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestBackfill_IntoMariaDBConvergesWithConcurrentWriters copies a
// PostgreSQL table into a MariaDB target, whose copy lock is a row of
// tandem's copy_locks table, while writers update, insert and delete rows
// in the chunks being copied.
func TestBackfill_IntoMariaDBConvergesWithConcurrentWriters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewMariaDBDatabase(t)
	execPG(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(10,2));
INSERT INTO items SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 1500) g`)
	db := openMySQL(t, tgt)
	if _, err := db.ExecContext(ctx, `CREATE TABLE items (id INT PRIMARY KEY, v TEXT, n DECIMAL(10,2))`); err != nil {
		t.Fatal(err)
	}
	cfg := pgSourceConfig(t, src, "public.items", "mysql", tgt, `backfill:
  chunk_rows: 50
  max_rows_per_second: 3000
mappings:
  - from: public.items
    to:
      - table: items
        key: [id]
        columns: { id: row.id, v: row.v, n: row.n }
`)
	// tandem's tables in a state database of this migration's own, not
	// the server-wide default that other migrations into it would share.
	state := dbOfDSN(t, tgt) + "_tandem"
	cfg.Target.StateSchema = state
	conn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	stopWriters := writeUntilStopped(ctx, func(ctx context.Context, i int) error {
		id := (i*7919)%1500 + 1
		sql := `UPDATE items SET v = 'updated ' || $1::text, n = n + 1 WHERE id = $1`
		switch i % 4 {
		case 1:
			sql = `DELETE FROM items WHERE id = $1`
		case 2:
			sql = `INSERT INTO items VALUES ($1, 'back', 0) ON CONFLICT (id) DO UPDATE SET v = 'again'`
		}
		_, err := conn.Exec(ctx, sql, id)
		return err
	})
	if _, err := runBackfill(t, ctx, cfg, app.BackfillOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, cfg)
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	waitSameRows(t, "the MariaDB target to equal the source",
		func() ([][]string, error) {
			return pgRows(ctx, src, `SELECT id::text, v, n::text FROM items ORDER BY items.id`)
		},
		func() ([][]string, error) {
			return cart.SQLText(ctx, db, `SELECT CAST(id AS CHAR), v, CAST(n AS CHAR) FROM items ORDER BY id`)
		})
	progress, err := cart.SQLText(ctx, db, "SELECT source_table, state FROM `"+state+"`.backfills")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"public.items", "done"}}, progress); diff != "" {
		t.Errorf("backfill progress in %s (-want +got):\n%s", state, diff)
	}
}

// TestBackfill_MariaDBVerbatimChunksConvergeWithConcurrentWriters copies a
// MariaDB table whose identity mapping sends its chunks as COPY text
// (each value as the PostgreSQL sink encodes it), while writers update,
// insert and delete rows in the chunks being copied.
func TestBackfill_MariaDBVerbatimChunksConvergeWithConcurrentWriters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srcDSN, tgt := testenv.NewMariaDBDatabase(t), testenv.NewDatabase(t)
	src := openMySQL(t, srcDSN)
	for _, q := range []string{
		`CREATE TABLE items (id INT PRIMARY KEY, v TEXT, n DECIMAL(10,2), b BLOB, f DOUBLE, at DATETIME(6), ok BOOLEAN) CHARACTER SET utf8mb4`,
		`INSERT INTO items SELECT seq, CONCAT('v\t', seq, '\n\\ ''q'' é'), seq / 4, UNHEX(MD5(seq)), seq / 3, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, seq % 2 FROM seq_1_to_2000`,
	} {
		if _, err := src.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	execPG(t, tgt, `CREATE TABLE items (id int PRIMARY KEY, v text, n numeric(10,2), b bytea, f double precision, at timestamp(6), ok smallint)`)
	parsed, err := mysqlurl.Parse(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	srcDB := parsed.DBName
	cfg := parseConfig(t, fmt.Sprintf(`source:
  kind: mysql
  dsn: %q
  tables: [%s.items]
  mysql: { server_id: %d }
kafka:
  topic_prefix: items
  partitions: 2
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
backfill:
  chunk_rows: 100
  max_rows_per_second: 6000
mappings:
  - from: %s.items
    to:
      - table: public.items
        key: [id]
        columns: { id: row.id, v: row.v, n: row.n, b: row.b, f: row.f, at: row.at, ok: row.ok }
`, srcDSN, srcDB, 3000+serverIDCounter.Add(1), tgt, srcDB))
	stopWriters := writeUntilStopped(ctx, func(ctx context.Context, i int) error {
		id := (i*7919)%2000 + 1
		q := `UPDATE items SET v = CONCAT('updated ', id), n = n + 1, b = NULL, ok = NOT ok WHERE id = ?`
		switch i % 5 {
		case 1:
			q = `DELETE FROM items WHERE id = ?`
		case 2:
			q = `INSERT INTO items (id, v) VALUES (?, 'back') ON DUPLICATE KEY UPDATE v = 'again'`
		}
		_, err := src.ExecContext(ctx, q, id)
		return err
	})
	if !runBackfillSaying(t, ctx, cfg, verbatimLog) {
		t.Error("the backfill did not copy items verbatim")
	}
	start(t, cfg)
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	waitSameRows(t, "the target to equal the source",
		func() ([][]string, error) {
			return cart.SQLText(ctx, src, `SELECT CAST(id AS CHAR), v, CAST(n AS CHAR), LOWER(HEX(b)), CAST(f AS CHAR), DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), CAST(ok AS CHAR) FROM items ORDER BY id`)
		},
		func() ([][]string, error) {
			return pgRows(ctx, tgt, `SELECT id::text, v, n::text, encode(b, 'hex'), f::text, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), ok::text FROM items ORDER BY items.id`)
		})
}

// pgSourceConfig is the config of a backfill of one table of a PostgreSQL
// source (its slot named after its database) into a target of kind
// tgtKind; rest holds the backfill settings and the mappings.
func pgSourceConfig(t *testing.T, src, table, tgtKind, tgt, rest string) *config.Config {
	t.Helper()
	t.Cleanup(func() {
		_ = testenv.Postgres(t).Exec(context.Background(), dbOfDSN(t, src), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = current_database() AND NOT active`)
	})
	return parseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [%s]
  postgres: { slot: %s, publication: tandem }
kafka:
  topic_prefix: bf
  partitions: 2
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
`, src, table, dbOfDSN(t, src), tgtKind, tgt)+rest)
}

// writeUntilStopped runs write(i) for i = 0, 1, ... in a goroutine until
// stop is called; stop returns the first error of a write.
func writeUntilStopped(ctx context.Context, write func(ctx context.Context, i int) error) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := write(ctx, i); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return func() error { cancel(); return <-done }
}

// runBackfillSaying runs a backfill like runBackfill, and reports whether
// its log said what.
func runBackfillSaying(t *testing.T, ctx context.Context, cfg *config.Config, what string) bool {
	t.Helper()
	logs, wait := startBackfill(t, ctx, cfg, app.Roles{Capture: true, Apply: true})
	if _, err := wait(); err != nil {
		t.Fatal(err)
	}
	return strings.Contains(logs(), what)
}

// startBackfill starts a backfill like runBackfill, in a process running
// roles too; logs returns what it logged so far, wait waits for it.
func startBackfill(t *testing.T, ctx context.Context, cfg *config.Config, roles app.Roles) (logs func() string, wait func() (backfill.Summary, error)) {
	t.Helper()
	var (
		mu  sync.Mutex
		buf strings.Builder
		sum backfill.Summary
	)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, app.Options{
			Roles: roles, Backfill: &app.BackfillOptions{Done: func(s backfill.Summary) { sum = s }},
			Logger: slog.New(slog.NewTextHandler(io.MultiWriter(apptest.LogWriter{TB: t}, lockedWriter{&mu, &buf}), nil)),
		})
	}()
	logs = func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
	return logs, func() (backfill.Summary, error) { err := <-done; return sum, err }
}

// TestBackfill_PausesWhileTheSourceIsBusy starts a backfill while more
// statements run on the source than backfill.max_source_load: it copies
// nothing and says why until they end, then copies everything, counting
// the pause as throttled time.
func TestBackfill_PausesWhileTheSourceIsBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := newMigration(t)
	w := &shop.Workload{Src: m.Src, Seed: 91}
	if err := w.History(ctx, 100); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})+
		"backfill:\n  chunk_rows: 40\n  max_source_load: 2\n")
	release := testenv.KeepPostgresBusy(t, m.SrcDSN, 3)
	logs, wait := startBackfill(t, ctx, cfg, app.Roles{Capture: true, Apply: true})
	testenv.WaitFor(t, "the backfill to pause for the source's load", time.Minute, func() (bool, error) {
		return strings.Contains(logs(), "backfill paused") && strings.Contains(logs(), "> backfill.max_source_load 2"), nil
	})
	var copied int64
	if err := m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(rows), 0) FROM tandem.backfills`).Scan(&copied); err != nil {
		t.Fatal(err)
	}
	if copied != 0 {
		t.Errorf("the paused backfill copied %d rows", copied)
	}
	release()
	sum, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs(), "backfill resumed") {
		t.Error("the backfill did not log its resumption")
	}
	if strings.Contains(logs(), lagBlindLog) {
		t.Errorf("a backfill beside the apply role said %q", lagBlindLog)
	}
	if sum.Throttled <= 0 {
		t.Errorf("throttled %v, want the pause counted", sum.Throttled)
	}
	start(t, cfg)
	waitConverged(t, m, time.Minute)
}

// lagBlindLog is what a backfill logs when its process applies nothing,
// so that backfill.max_lag_seconds cannot apply.
const lagBlindLog = "cannot see the stream's lag"

// verbatimLog is what a backfill logs of a table it copies as COPY text.
const verbatimLog = "its chunks are copied as the source's text"

// TestBackfill_RowsTheMappingCannotTransformAreDeadLettersThatReplayResyncs
// copies a table whose mapping fails on two rows: the other rows are
// copied, the two are kept as dead letters in the target (on the table's
// topic, at partition -1: they never were in Kafka) and on the dead-letter
// topic, and once the rows are fixed, `tandem dlq replay` re-syncs them.
func TestBackfill_RowsTheMappingCannotTransformAreDeadLettersThatReplayResyncs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, src, `CREATE TABLE items (id int PRIMARY KEY, v text);
INSERT INTO items SELECT g, CASE g WHEN 7 THEN 'seven' WHEN 13 THEN 'thirteen' ELSE g::text END FROM generate_series(1, 20) g`)
	execPG(t, tgt, `CREATE TABLE items (id int PRIMARY KEY, n int)`)
	cfg := pgSourceConfig(t, src, "public.items", "postgres", tgt, `backfill:
  chunk_rows: 5
mappings:
  - from: public.items
    to:
      - table: public.items
        key: [id]
        columns: { id: row.id, n: int(row.v) }
`)
	sum, err := runBackfill(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 20 {
		t.Errorf("copied %d rows, want 20", sum.Rows)
	}
	wantRows := func(want [][]string) {
		t.Helper()
		got, err := pgRows(ctx, tgt, `SELECT id::text, n::text FROM items ORDER BY items.id`)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("target (-want +got):\n%s", diff)
		}
	}
	var copied [][]string
	for i := 1; i <= 20; i++ {
		if i != 7 && i != 13 {
			copied = append(copied, []string{fmt.Sprint(i), fmt.Sprint(i)})
		}
	}
	wantRows(copied)
	store, closeStore, err := app.ListDeadLetters(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dls, err := store.DeadLetters(ctx, "", 0)
	closeStore()
	if err != nil {
		t.Fatal(err)
	}
	type dead struct {
		Mapping, Reason, Topic string
		Partition              int32
		Key                    string
	}
	var got []dead
	for _, d := range dls {
		got = append(got, dead{d.Mapping, d.Reason, d.Topic, d.Partition, string(d.Key)})
		if !strings.Contains(d.Error, "to[0].columns.n") {
			t.Errorf("dead letter of %s: error %q does not name the column", d.Key, d.Error)
		}
	}
	slices.SortFunc(got, func(a, b dead) int { return strings.Compare(a.Key, b.Key) })
	want := []dead{
		{"public.items", "transform", "bf.public.items", -1, `{"id":13}`},
		{"public.items", "transform", "bf.public.items", -1, `{"id":7}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	// Fixed in the source, the two rows are re-synced by a replay.
	execPG(t, src, `UPDATE items SET v = id::text WHERE id IN (7, 13)`)
	rep, err := app.ReplayDeadLetters(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 2 || rep.Removed != 2 || rep.Kept() != 0 {
		t.Errorf("replay: %d rows, %d removed, %d kept; want 2, 2, 0", rep.Rows, rep.Removed, rep.Kept())
	}
	var all [][]string
	for i := 1; i <= 20; i++ {
		all = append(all, []string{fmt.Sprint(i), fmt.Sprint(i)})
	}
	wantRows(all)
}

// TestBackfill_OverExternalKafkaBesideSeparateCaptureAndApply runs the
// production layout: capture and apply as separate roles on an external
// Kafka cluster, and `tandem backfill` as a third process that only
// copies, while writers change the rows being copied. The copy lock is
// what orders the backfill's copies and the apply role's deletes, across
// processes.
func TestBackfill_OverExternalKafkaBesideSeparateCaptureAndApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cluster := externalKafka(t)
	m := newMigration(t)
	w := &shop.Workload{Src: m.Src, Seed: 91}
	if err := w.History(ctx, 300); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN,
		Brokers: cluster.ListenAddrs()})+smallChunks)
	startWith(t, cfg, app.Roles{Capture: true})
	startWith(t, cfg, app.Roles{Apply: true})
	// Writers: 400 operations a second until the copy is done.
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	errc := make(chan error, 1)
	go func() { errc <- (&shop.Workload{Src: m.Src, Seed: 92}).Run(wctx, 0, 400) }()
	logs, wait := startBackfill(t, ctx, cfg, app.Roles{})
	sum, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs(), lagBlindLog) {
		t.Errorf("a backfill without the apply role did not say %q", lagBlindLog)
	}
	if sum.Tables != 2 || sum.Rows < 1000 {
		t.Errorf("backfill copied %d rows of %d tables, want >= 1000 of 2", sum.Rows, sum.Tables)
	}
	stopWriters()
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	got := waitConverged(t, m, time.Minute)
	if got.Count() < 250 {
		t.Errorf("only %d target rows", got.Count())
	}
	// The copy went to the target, not to Kafka: the topics hold the
	// writers' changes (c, u, d and tombstones), never a copied row as an
	// r record (README: "Copied rows go to the target, not to the Kafka
	// topics").
	ops := map[string]int{}
	for _, topic := range []string{"shop.shop.customers", "shop.shop.orders"} {
		for _, r := range kcatRecords(t, cluster.ListenAddrs()[0], topic) {
			if r.Payload == "" {
				ops["tombstone"]++
				continue
			}
			var v struct {
				Op string `json:"op"`
			}
			if err := json.Unmarshal([]byte(r.Payload), &v); err != nil {
				t.Fatalf("%s record at %d/%d: %v", topic, r.Partition, r.Offset, err)
			}
			ops[v.Op]++
		}
	}
	if ops["r"] != 0 || ops["c"] == 0 || ops["u"] == 0 || len(ops) > 4 {
		t.Errorf("records per op in the topics %v: want the writers' c and u (d and tombstones too), no r", ops)
	}
}

// waitSameRows waits until source and target read the same rows, logging
// the difference meanwhile.
func waitSameRows(t *testing.T, what string, source, target func() ([][]string, error)) {
	t.Helper()
	testenv.WaitFor(t, what, time.Minute, func() (bool, error) {
		want, err := source()
		if err != nil {
			return false, err
		}
		got, err := target()
		if err != nil {
			return false, err
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Logf("target differs (-source +target):\n%.2000s", diff)
			return false, nil
		}
		return true, nil
	})
}
