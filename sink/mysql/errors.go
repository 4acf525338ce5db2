package mysql

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strconv"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/sink"
)

// Server error numbers the sink acts on.
const (
	errDupEntry = 1062 // ER_DUP_ENTRY
	errDeadlock = 1213 // ER_LOCK_DEADLOCK: the transaction was rolled back
)

// errNumber returns the server error number err wraps, or 0.
func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// reasons maps server error numbers to the reasons of sink.Error.
var reasons = map[uint16]sink.Reason{
	1049: "table_missing", // unknown database
	1051: "table_missing", // unknown table
	1146: "table_missing", // table doesn't exist
	1054: "column_missing",

	1044: "permission", // access denied to a database
	1045: "permission", // access denied (login)
	1142: "permission", // command denied on a table
	1143: "permission", // command denied on a column
	1227: "permission", // needs SUPER or the like
	1370: "permission", // command denied on a routine (a trigger's)

	1290: "read_only", // --read-only
	1792: "read_only", // READ ONLY transaction
	1836: "read_only", // read-only mode

	1022: "constraint", // duplicate key on write
	1048: "constraint", // column cannot be null
	1062: "constraint", // duplicate entry
	1169: "constraint", // unique constraint
	1216: "constraint", // foreign key (child)
	1217: "constraint", // foreign key (parent)
	1364: "constraint", // NOT NULL column without default, not written
	1451: "constraint", // foreign key (parent)
	1452: "constraint", // foreign key (child)
	1557: "constraint", // foreign key duplicate
	1586: "constraint", // duplicate entry for key
	3819: "constraint", // CHECK constraint (MySQL)
	4025: "constraint", // CHECK constraint (MariaDB; its JSON columns too)

	1264: "data", // out of range
	1265: "data", // data truncated
	1292: "data", // incorrect datetime (or other) value
	1300: "data", // invalid character string
	1366: "data", // incorrect value for column
	1367: "data", // illegal value
	1406: "data", // data too long
	1411: "data", // incorrect value for function
	1416: "data", // cannot get geometry
	1441: "data", // datetime function overflow
	1690: "data", // value out of range
	3140: "data", // invalid JSON text (MySQL)

	1040: "connection", // too many connections
	1053: "connection", // server shutdown in progress
	1927: "connection", // connection killed (MariaDB)
	2006: "connection", // server has gone away
	2013: "connection", // lost connection during query
}

// classified wraps err in a *sink.Error naming table and why it failed; an
// error classified already is kept.
func classified(table string, err error) error {
	var se *sink.Error
	if errors.As(err, &se) {
		return err
	}
	return &sink.Error{Table: table, Reason: reason(err), Row: rowFault(err), Err: err}
}

// rowFaults are the constraint errors a row's own values cause: a NULL it
// writes into a NOT NULL column (1048; a NOT NULL column the write leaves
// out is 1364, the table's fault), a CHECK constraint.
var rowFaults = map[uint16]bool{1048: true, 3819: true, 4025: true}

// rowFault reports whether err is the server refusing the values of a row
// (sink.Error.Row): every "data" error (too long, out of range, an invalid
// value, one MySQL cannot represent) and rowFaults. Unique and foreign-key
// violations are not: other rows may mend them.
func rowFault(err error) bool {
	if errors.Is(err, errUnrepresentable) {
		return true
	}
	n := errNumber(err)
	return n != 0 && (reasons[n] == sink.ReasonData || rowFaults[n])
}

// reason names why a write failed, for tandem_apply_errors_total.
func reason(err error) sink.Reason {
	switch {
	case errors.Is(err, sink.ErrTableNotFound):
		return sink.ReasonTableMissing
	case errors.Is(err, sink.ErrColumnNotFound):
		return sink.ReasonColumnMissing
	case errors.Is(err, ErrNoUniqueKey):
		return sink.ReasonNoUniqueKey
	case errors.Is(err, errUnrepresentable):
		return sink.ReasonData
	}
	if n := errNumber(err); n != 0 {
		if r, ok := reasons[n]; ok {
			return r
		}
		return sink.Reason("sql_" + strconv.Itoa(int(n)))
	}
	var netErr interface{ Timeout() bool } // net.Error, and context.DeadlineExceeded
	if errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) {
		return sink.ReasonConnection
	}
	return sink.ReasonOther
}
