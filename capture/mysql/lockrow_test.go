package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/backfill"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// lockedRow is LockRow's row for key, failing t on an error.
func lockedRow(t *testing.T, r *mysql.TableReader, tb *backfill.Table, key change.Row) change.Row {
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
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE types (id BIGINT UNSIGNED PRIMARY KEY, "+
		"ti TINYINT, tu TINYINT UNSIGNED, bi BIGINT, dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, "+
		"dt DATE, dtm DATETIME(6), tm TIME(6), c CHAR(5), vc VARCHAR(100), bn BINARY(4), j JSON, "+
		"e ENUM('small','x''y'), st SET('a','b','c'), bt BIT(10)) CHARACTER SET utf8mb4",
		"CREATE TABLE oddkeys (vb VARBINARY(10), d DECIMAL(10,4), dtm DATETIME(6), e ENUM('a','b'), u BIGINT UNSIGNED, "+
			"s VARCHAR(20), note TEXT, PRIMARY KEY (vb, d, dtm, e, u, s)) CHARACTER SET utf8mb4",
		"INSERT INTO types VALUES (18446744073709551615, -128, 255, -9223372036854775808, "+
			"'-12345678901234567890123456789012345.123456789012345678901234567890', 3.1415927, 2.718281828459045, "+
			"'2024-02-29', '2024-02-29 23:59:58.123456', '-838:59:58.5', 'ab', 'héllo 🐘 日本語', 0xFF000000, "+
			`'{"a": [1, 2.5]}', 'x''y', 'a,c', b'1010101010'),`+
			"(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
		"INSERT INTO oddkeys VALUES (0x00ff, -1.5, '2024-02-29 23:59:58.123456', 'b', 18446744073709551615, 'héllo 🐘', 'one'), "+
			"(0x00ff, -1.5, '2024-02-29 23:59:58.123456', 'a', 1, 'héllo 🐘', 'two'), (X'', 0, '1970-01-01 00:00:00', 'a', 0, '', 'three')")
	ctx := t.Context()
	r, err := mysql.NewTableReader(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"types", "oddkeys"} {
		tb, err := r.Describe(ctx, change.Table{Schema: db, Name: name})
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
			if diff := cmp.Diff(want, lockedRow(t, r, tb, key)); diff != "" {
				t.Errorf("%s row %v (-Chunk +LockRow):\n%s", name, key, diff)
			}
		}
	}
	tb, err := r.Describe(ctx, change.Table{Schema: db, Name: "types"})
	if err != nil {
		t.Fatal(err)
	}
	if got := lockedRow(t, r, tb, change.Row{"id": int64(2)}); got != nil {
		t.Errorf("LockRow of an absent key = %v, want nil", got)
	}
}

func TestLockRow_ConcurrentUpdateWaitsUntilFnReturns(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(10))", "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
	ctx := t.Context()
	r, err := mysql.NewTableReader(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tb, err := r.Describe(ctx, change.Table{Schema: db, Name: "items"})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := mysqlurl.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	writer, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var writerID int64
	if err := writer.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&writerID); err != nil {
		t.Fatal(err)
	}

	updated := make(chan error, 1)
	err = r.LockRow(ctx, tb, change.Row{"id": int64(1)}, func(row change.Row) error {
		if diff := cmp.Diff(change.Row{"id": int64(1), "name": "one"}, row); diff != "" {
			t.Errorf("locked row (-want +got):\n%s", diff)
		}
		// Another row is not locked.
		if _, err := pool.ExecContext(ctx, "UPDATE items SET name = 'deux' WHERE id = 2"); err != nil {
			return err
		}
		go func() {
			_, err := writer.ExecContext(context.Background(), "UPDATE items SET name = 'uno' WHERE id = 1")
			updated <- err
		}()
		testenv.WaitFor(t, "the UPDATE of the locked row to wait for its lock", 10*time.Second, func() (bool, error) {
			select {
			case err := <-updated:
				return false, fmt.Errorf("the UPDATE of the locked row finished (err %v) while LockRow's fn runs", err)
			default:
			}
			var waiting int
			err := pool.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
				writerID).Scan(&waiting)
			return waiting == 1, err
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
	if _, err := writer.ExecContext(uctx, "UPDATE items SET name = 'one' WHERE id = 1"); err != nil {
		t.Errorf("UPDATE after a failed fn: %v", err)
	}
}
