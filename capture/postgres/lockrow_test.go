package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture/backfill"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// lockedRow is LockRow's row for key, failing t on an error.
func lockedRow(t *testing.T, r *TableReader, tb *backfill.Table, key change.Row) change.Row {
	t.Helper()
	var got change.Row
	calls := 0
	if err := r.LockRow(t.Context(), tb, key, func(row change.Row) error { got, calls = row, calls+1; return nil }); err != nil {
		t.Fatalf("LockRow(%v): %v", key, err)
	}
	if calls != 1 {
		t.Fatalf("LockRow(%v) called fn %d times, want once", key, calls)
	}
	return got
}

func TestLockRow_ReadsTheRowAsChunkDoesByKeysOfEveryKind(t *testing.T) {
	f := newFixture(t, kindsDDL+`;
	CREATE TABLE oddkeys (b bytea, n numeric, ts timestamptz, f float8, ok boolean, u uuid, note text,
		PRIMARY KEY (b, n, ts, f, ok, u))`)
	f.exec(`INSERT INTO kinds VALUES
	(1, -32768, 2147483647, '-9223372036854775808', 3.14, 'NaN', true, '12345678901234567890.0123456789',
	 E'naïve café 😀 日本語\n\ttab \\ ''quote''', '\x00ff00', '{"b": [1, 2.50], "a": null}',
	 '2024-02-29 23:59:59.123456+02', '2024-02-29', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
	(2, NULL, NULL, NULL, NULL, '-Infinity', false, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	INSERT INTO oddkeys VALUES
	('\x00ff', '-1.50', '2024-02-29 23:59:59.123456+02', 0.1, true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a'),
	('\x00ff', '-1.5000', '2024-02-29 23:59:59.123456+02', 'Infinity', false, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', 'b'),
	('', '1e-20', '1970-01-01 00:00:00+00', 'NaN', true, '00000000-0000-0000-0000-000000000000', 'c')`)
	ctx := t.Context()
	r, err := NewTableReader(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"kinds", "oddkeys"} {
		tb, err := r.Describe(ctx, tbl(name))
		if err != nil {
			t.Fatal(err)
		}
		rows, _, err := r.Chunk(ctx, tb, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) < 2 {
			t.Fatalf("%s: %d rows read, want every inserted one", name, len(rows))
		}
		for _, want := range rows {
			key := change.Row{}
			for _, k := range tb.Key {
				key[k] = want[k]
			}
			if diff := cmp.Diff(want, lockedRow(t, r, tb, key), cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("%s row %v (-Chunk +LockRow):\n%s", name, key, diff)
			}
		}
	}
	kt, err := r.Describe(ctx, tbl("kinds"))
	if err != nil {
		t.Fatal(err)
	}
	if got := lockedRow(t, r, kt, change.Row{"id": int64(3)}); got != nil {
		t.Errorf("LockRow of an absent key = %v, want nil", got)
	}
}

func TestLockRow_ConcurrentUpdateWaitsUntilFnReturns(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items (id integer PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'one'), (2, 'two')`)
	ctx := t.Context()
	r, err := NewTableReader(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tb, err := r.Describe(ctx, tbl("items"))
	if err != nil {
		t.Fatal(err)
	}
	writer, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	pid := writer.PgConn().PID()

	updated := make(chan error, 1)
	err = r.LockRow(ctx, tb, change.Row{"id": int64(1)}, func(row change.Row) error {
		if diff := cmp.Diff(change.Row{"id": int64(1), "name": "one"}, row); diff != "" {
			t.Errorf("locked row (-want +got):\n%s", diff)
		}
		// Another row is not locked.
		if _, err := f.conn.Exec(ctx, `UPDATE items SET name = 'deux' WHERE id = 2`); err != nil {
			return err
		}
		go func() {
			_, err := writer.Exec(context.Background(), `UPDATE items SET name = 'uno' WHERE id = 1`)
			updated <- err
		}()
		testenv.WaitFor(t, "the UPDATE of the locked row to wait for its lock", 10*time.Second, func() (bool, error) {
			select {
			case err := <-updated:
				return false, fmt.Errorf("the UPDATE of the locked row finished (err %v) while LockRow's fn runs", err)
			default:
			}
			var event string
			if err := f.conn.QueryRow(ctx, `SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&event); err != nil {
				return false, err
			}
			return event == "Lock", nil
		})
		return nil
	})
	if err != nil {
		t.Fatalf("LockRow: %v", err)
	}
	select {
	case err := <-updated:
		if err != nil {
			t.Fatalf("the UPDATE after the lock's release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the UPDATE still waits after LockRow returned: the lock was not released")
	}
	if got := lockedRow(t, r, tb, change.Row{"id": int64(1)}); got["name"] != "uno" {
		t.Errorf("row 1 after the UPDATE = %v, want name uno", got)
	}

	// fn's error is LockRow's, and releases the lock too.
	boom := errors.New("boom")
	if err := r.LockRow(ctx, tb, change.Row{"id": int64(1)}, func(change.Row) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("LockRow with a failing fn = %v, want %v", err, boom)
	}
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := writer.Exec(uctx, `UPDATE items SET name = 'one' WHERE id = 1`); err != nil {
		t.Errorf("UPDATE after a failed fn: %v", err)
	}
}
