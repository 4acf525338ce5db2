package postgres

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

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
	r, err := NewTableReader(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	capturetest.LockRowReadsAsChunk(t, r, tbl("kinds"), change.Row{"id": int64(3)}, cmpopts.EquateNaNs())
	capturetest.LockRowReadsAsChunk(t, r, tbl("oddkeys"), change.Row{"b": []byte{}, "n": "1", "ts": "1970-01-01 00:00:00+00",
		"f": 1.0, "ok": true, "u": "00000000-0000-0000-0000-000000000000"}, cmpopts.EquateNaNs())
}

func TestLockRow_ConcurrentUpdateWaitsUntilFnReturns(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items (id integer PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'one'), (2, 'two')`)
	ctx := t.Context()
	r, err := NewTableReader(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	writer, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close(context.Background())
	session := func(conn *pgx.Conn) capturetest.Session {
		return func(ctx context.Context, sql string) error { _, err := conn.Exec(ctx, sql); return err }
	}
	capturetest.LockRowHoldsWritersBack(t, r, tbl("items"), session(f.conn), session(writer), func(ctx context.Context) (bool, error) {
		var event string
		err := f.conn.QueryRow(ctx, `SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1`, writer.PgConn().PID()).Scan(&event)
		return event == "Lock", err
	})
}

func TestTableReader_LoadCountsActiveSessions(t *testing.T) {
	f := newFixture(t, "")
	r, err := NewTableReader(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	capturetest.LoadCountsBusyStatements(t, r, func(ctx context.Context, n int) func() {
		return testenv.KeepPostgresBusy(t, f.dsn, n)
	})
}
