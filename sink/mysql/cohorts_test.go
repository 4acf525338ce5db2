package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink/mysql"
	"github.com/tandemcdc/tandem/sink/sinktest"
)

// Ident quotes a name as MariaDB reads it.
func (harness) Ident(name string) string { return mysqlurl.QuoteIdent(name) }

// App opens a plain connection to the target database.
func (tg *target) App(t *testing.T) sinktest.AppSession {
	t.Helper()
	conn, err := openDB(t, tg.dsn).Conn(t.Context())
	if err != nil {
		t.Fatalf("connect as the application: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return appSession{conn}
}

// LockWaits counts the other sessions on the target database that are in
// the middle of a statement: in these tests, nothing else runs there, so
// they wait for a lock. (MariaDB 10.11 lists in INNODB_TRX neither a
// batch's transaction waiting in a LOCK IN SHARE MODE read nor an
// application's write waiting in its guard trigger.)
func (tg *target) LockWaits(t *testing.T) int {
	t.Helper()
	rows := tg.Rows(t, `SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST
WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND COMMAND IN ('Query', 'Execute')`)
	n, err := strconv.Atoi(rows[0]["n"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// GuardRefusal reports whether err is a SIGNAL of the guard's SQLSTATE.
func (tg *target) GuardRefusal(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && string(me.SQLState[:]) == mysql.GuardSQLState
}

type appSession struct{ conn *sql.Conn }

func (a appSession) Exec(ctx context.Context, sql string) error {
	_, err := a.conn.ExecContext(ctx, sql)
	return err
}

// SetOrigin marks the session as a tandem sink's.
func (a appSession) SetOrigin(t *testing.T) {
	t.Helper()
	if _, err := a.conn.ExecContext(t.Context(), "SET @tandem_origin = 't'"); err != nil {
		t.Fatal(err)
	}
}
