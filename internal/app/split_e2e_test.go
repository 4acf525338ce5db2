package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/backfill"
	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// Both sources' readers copy one table in key ranges, verbatim or not.
var (
	_ backfill.SplitTextReader = (*pgcapture.TableReader)(nil)
	_ backfill.SplitTextReader = (*mycapture.TableReader)(nil)
)

// splitLog is what a backfill logs of a table it copies in key ranges.
const splitLog = "the table is copied in key ranges at once"

// savedRanges reads the key ranges a PostgreSQL target's progress holds
// for table: none when it was copied in one range.
func savedRanges(t *testing.T, ctx context.Context, tgt, table string) (ranges []struct{ Rows int64 }, rows int64) {
	t.Helper()
	conn, err := pgx.Connect(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var after string
	if err := conn.QueryRow(ctx, `SELECT after_key, rows FROM tandem.backfills WHERE source_table = $1`, table).Scan(&after, &rows); err != nil {
		t.Fatalf("read the backfill progress of %s: %v", table, err)
	}
	if !strings.HasPrefix(after, "{") {
		return nil, rows
	}
	var p struct{ Ranges []struct{ Rows int64 } }
	if err := json.Unmarshal([]byte(after), &p); err != nil {
		t.Fatalf("the backfill progress of %s: %v", table, err)
	}
	return p.Ranges, rows
}

// TestBackfill_OneTableInKeyRangesConvergesWithConcurrentWriters copies
// one table with parallel 4, in four key ranges at once, while writers
// update, insert (above the last range's end too) and delete rows all
// over the key range: once the stream has caught up the target equals the
// source row for row, and the progress holds four ranges, done, whose
// rows add up to those copied.
func TestBackfill_OneTableInKeyRangesConvergesWithConcurrentWriters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, src, verbatimDDL+`;
INSERT INTO accounts SELECT g, E'name\t' || g, g / 7.0, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute',
	g % 3 = 0, g / 3.0, decode(md5(g::text), 'hex'), jsonb_build_object('g', g), ARRAY['a' || g, NULL]
FROM generate_series(1, 6000) g`)
	execPG(t, tgt, verbatimDDL)
	cfg := pgSourceConfig(t, src, "public.accounts", "postgres", tgt, `backfill:
  chunk_rows: 100
  parallel: 4
  max_rows_per_second: 8000
`+accountsMapping)
	stopWriters := writeAccounts(t, ctx, src, 6000, -1, false)
	if !runBackfillSaying(t, ctx, cfg, splitLog) {
		t.Error("the backfill did not copy accounts in key ranges")
	}
	ranges, rows := savedRanges(t, ctx, tgt, "public.accounts")
	var sum int64
	for _, r := range ranges {
		sum += r.Rows
	}
	if len(ranges) != 4 || sum != rows || rows < 5000 {
		t.Errorf("saved progress: %d ranges of %d rows, the table %d; want 4 ranges adding up to it, >= 5000", len(ranges), sum, rows)
	}
	start(t, cfg)
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	waitSameAccounts(t, ctx, src, tgt)
}

// TestBackfill_OneTableInKeyRangesKilledMidwayResumesExactly stops a copy
// of one table in four key ranges once some chunks are durable, and runs
// it again: the second run copies exactly the rows the first had not
// saved (each range after its own last durable key), and the target
// equals the source. The mapping computes a column, so chunks are read
// decoded (RangeChunk).
func TestBackfill_OneTableInKeyRangesKilledMidwayResumesExactly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, tgt := testenv.NewDatabase(t), testenv.NewDatabase(t)
	const total = 4000
	execPG(t, src, `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int);
INSERT INTO items SELECT g, 'item ' || g, g % 100 FROM generate_series(1, 4000) g`)
	execPG(t, tgt, `CREATE TABLE items (id bigint PRIMARY KEY, name text, qty int)`)
	cfg := pgSourceConfig(t, src, "public.items", "postgres", tgt, `backfill:
  chunk_rows: 20
  parallel: 4
  max_rows_per_second: 2000
mappings:
  - from: public.items
    to:
      - table: public.items
        key: [id]
        columns: { id: row.id, name: upper(row.name), qty: row.qty }
`)
	tconn, err := pgx.Connect(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	defer tconn.Close(context.Background())
	first, stopFirst := context.WithCancel(ctx)
	go func() {
		testenv.WaitFor(t, "some backfill progress saved", time.Minute, func() (bool, error) {
			var n int64
			if err := tconn.QueryRow(ctx, `SELECT coalesce(sum(rows), 0) FROM tandem.backfills`).Scan(&n); err != nil {
				return false, nil // not created yet
			}
			return n >= 400, nil
		})
		stopFirst()
	}()
	if _, err := runBackfill(t, first, cfg, app.BackfillOptions{}); !errors.Is(err, app.ErrBackfillInterrupted) {
		t.Fatalf("the stopped backfill ended with %v, want app.ErrBackfillInterrupted", err)
	}
	ranges, saved := savedRanges(t, ctx, tgt, "public.items")
	if len(ranges) != 4 || saved == 0 || saved >= total {
		t.Fatalf("saved after the stop: %d ranges, %d rows; want 4 ranges, some rows", len(ranges), saved)
	}
	sum, copiedAgain, err := runBackfillCounting(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != total || copiedAgain != total-saved {
		t.Errorf("the resumed run: progress %d rows (want %d), copied %d (want the %d not saved)", sum.Rows, total, copiedAgain, total-saved)
	}
	if ranges, rows := savedRanges(t, ctx, tgt, "public.items"); len(ranges) != 4 || rows != total {
		t.Errorf("saved after the resumed run: %d ranges, %d rows; want the same 4 ranges, %d rows", len(ranges), rows, total)
	}
	waitSameRows(t, "the target to equal the source",
		func() ([][]string, error) {
			return pgRows(ctx, src, `SELECT id::text, upper(name), qty::text FROM items ORDER BY id`)
		},
		func() ([][]string, error) {
			return pgRows(ctx, tgt, `SELECT id::text, name, qty::text FROM items ORDER BY id`)
		})
}
