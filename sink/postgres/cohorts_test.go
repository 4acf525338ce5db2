package postgres_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// Ident quotes a name as PostgreSQL reads it.
func (harness) Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// App opens a plain connection to the target database.
func (tg *target) App(t *testing.T) sinktest.AppSession {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), tg.dsn)
	if err != nil {
		t.Fatalf("connect as the application: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return appSession{conn}
}

// LockWaits counts the sessions on the target database waiting for a lock.
func (tg *target) LockWaits(t *testing.T) int {
	t.Helper()
	rows := tg.Rows(t, `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
	n, err := strconv.Atoi(rows[0]["n"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// GuardRefusal reports whether err has the guard's SQLSTATE.
func (tg *target) GuardRefusal(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == postgres.GuardSQLState
}

type appSession struct{ conn *pgx.Conn }

func (a appSession) Exec(ctx context.Context, sql string) error {
	_, err := a.conn.Exec(ctx, sql)
	return err
}

// SetOrigin sets up a replication origin of the session's own, named
// after the database (origins are the server's, and tests share it).
func (a appSession) SetOrigin(t *testing.T) {
	t.Helper()
	for _, q := range []string{
		`SELECT pg_replication_origin_create('tandem_test_' || current_database())`,
		`SELECT pg_replication_origin_session_setup('tandem_test_' || current_database())`,
	} {
		if _, err := a.conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}
