package mysql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

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
	r, err := mysql.NewTableReader(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	capturetest.LockRowReadsAsChunk(t, r, change.Table{Schema: db, Name: "types"}, change.Row{"id": "2"})
	capturetest.LockRowReadsAsChunk(t, r, change.Table{Schema: db, Name: "oddkeys"}, change.Row{"vb": []byte{}, "d": "1.0000",
		"dtm": "1970-01-01 00:00:00.000000", "e": "a", "u": "0", "s": ""})
}

func TestLockRow_ConcurrentUpdateWaitsUntilFnReturns(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	mustExec(t, sourceDB(t, dsn), "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(10))", "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
	ctx := t.Context()
	r, pool := readerAndPool(t, dsn)
	writer, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var writerID int64
	if err := writer.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&writerID); err != nil {
		t.Fatal(err)
	}
	session := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) capturetest.Session {
		return func(ctx context.Context, sql string) error { _, err := db.ExecContext(ctx, sql); return err }
	}
	var asked time.Time
	capturetest.LockRowHoldsWritersBack(t, r, change.Table{Schema: sourceDB(t, dsn), Name: "items"}, session(pool), session(writer),
		func(ctx context.Context) (bool, error) {
			// InnoDB refreshes its INNODB_TRX snapshot only when the table
			// was not read for 100 ms: asked at the poll's 20 ms, it kept
			// answering with the snapshot of the first ask, taken before the
			// UPDATE began to wait, and the test failed most runs.
			if time.Since(asked) < 150*time.Millisecond {
				return false, nil
			}
			defer func() { asked = time.Now() }()
			var waiting int
			err := pool.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'",
				writerID).Scan(&waiting)
			return waiting == 1, err
		})
}

func TestTableReader_LoadCountsThreadsRunning(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	r, pool := readerAndPool(t, dsn)
	capturetest.LoadCountsBusyStatements(t, r, func(ctx context.Context, n int) func() {
		// A named lock held by one connection; n others wait for it in a
		// statement that gives it back at once, so that all finish once it
		// is released.
		holder, err := pool.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := holder.ExecContext(ctx, "SELECT GET_LOCK('tandem_load', 0)"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, n)
		for range n {
			go func() {
				_, err := pool.ExecContext(ctx, "SELECT GET_LOCK('tandem_load', 60) + RELEASE_LOCK('tandem_load')")
				done <- err
			}()
		}
		return func() {
			if _, err := holder.ExecContext(ctx, "SELECT RELEASE_LOCK('tandem_load')"); err != nil {
				t.Error(err)
			}
			holder.Close()
			for range n {
				if err := <-done; err != nil {
					t.Errorf("waiting statement: %v", err)
				}
			}
		}
	})
}

// readerAndPool opens a TableReader and a connection pool on dsn, closed
// when t ends.
func readerAndPool(t *testing.T, dsn string) (*mysql.TableReader, *sql.DB) {
	t.Helper()
	r, err := mysql.NewTableReader(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	pool, err := mysqlurl.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return r, pool
}
