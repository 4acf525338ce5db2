package mysql_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// row is a target row: for writes, column -> Go value; as read back,
// column -> MariaDB's text form, nil for NULL.
type row = map[string]any

// shopDDL is the target schema most tests write to.
const shopDDL = `
CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100), qty INT, note TEXT);
CREATE TABLE ` + "`lines`" + ` (order_id BIGINT, line INT, sku VARCHAR(20), PRIMARY KEY (order_id, line));
`

// allItems reads the whole of items, in key order.
const allItems = "SELECT * FROM items ORDER BY id"

// stateCounter names each target's state database: the server is shared
// by the whole test binary, and each test keeps its offsets apart.
var stateCounter atomic.Int64

// target is a fresh database holding a schema, and a Sink writing to it
// with a state database of its own.
type target struct {
	dsn   string
	name  string // the database
	state string // the sink's state database
	db    *sql.DB
	sink  *mysql.Sink
}

func newTarget(t *testing.T, ddl string) *target {
	t.Helper()
	dsn := testenv.NewMariaDBDatabase(t)
	tg := &target{dsn: dsn, db: openDB(t, dsn), state: fmt.Sprintf("tandem_state_%d", stateCounter.Add(1))}
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	tg.name = cfg.DBName
	if strings.TrimSpace(ddl) != "" {
		tg.Exec(t, ddl)
	}
	tg.sink = tg.newSink(t, mysql.Config{DSN: dsn, StateSchema: tg.state})
	return tg
}

// openDB opens a pool on dsn (UTC, text protocol for queries without
// arguments), closed when the test ends.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MultiStatements = true
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// newSink opens another Sink on the target, closed when the test ends.
func (tg *target) newSink(t *testing.T, cfg mysql.Config) *mysql.Sink {
	t.Helper()
	s, err := mysql.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("mysql.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exec runs sql, which may hold several statements, in the target database.
func (tg *target) Exec(t *testing.T, sql string) {
	t.Helper()
	if err := testenv.SharedMariaDB(t).Exec(t.Context(), tg.name, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Rows returns what query selects, every column in MariaDB's text form.
func (tg *target) Rows(t *testing.T, query string) []row {
	t.Helper()
	return queryRows(t, tg.db, query)
}

func queryRows(t *testing.T, db *sql.DB, query string) []row {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for rs.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		r := row{}
		for i, c := range cols {
			r[c] = nil
			if vals[i] != nil {
				r[c] = string(vals[i])
			}
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// wantRows fails the test unless query selects exactly want.
func (tg *target) wantRows(t *testing.T, query string, want []row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.Rows(t, query), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", query, diff)
	}
}

// wantOffsets fails the test unless the stored offsets of group in epoch are want.
func (tg *target) wantOffsets(t *testing.T, group, epoch string, want []sink.Offset) {
	t.Helper()
	got, err := tg.sink.Offsets(t.Context(), group, epoch)
	if err != nil {
		t.Fatalf("Offsets(%s, %s): %v", group, epoch, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Offsets(%s, %s) (-want +got):\n%s", group, epoch, diff)
	}
}

// apply applies writes with checkpoint cp and fails the test on an error.
func (tg *target) apply(t *testing.T, cp sink.Checkpoint, writes ...change.Write) {
	t.Helper()
	if err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// applyErr applies writes with checkpoint cp and returns the error, failing
// the test when there is none.
func (tg *target) applyErr(t *testing.T, cp sink.Checkpoint, writes ...change.Write) error {
	t.Helper()
	err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp)
	if err == nil {
		t.Fatal("Apply succeeded, want an error")
	}
	return err
}

// wantSinkError fails the test unless err is a *sink.Error with reason and table.
func wantSinkError(t *testing.T, err error, reason sink.Reason, table string) {
	t.Helper()
	var se *sink.Error
	if !errors.As(err, &se) {
		t.Errorf("error = %v (%T), want a *sink.Error", err, err)
		return
	}
	if se.Reason != reason || se.Table != table {
		t.Errorf("error = %v: reason %q table %q, want reason %q table %q", err, se.Reason, se.Table, reason, table)
	}
}

// wantServerError fails the test unless err wraps a server error number.
func wantServerError(t *testing.T, err error, number uint16) {
	t.Helper()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != number {
		t.Errorf("error = %v, want server error %d", err, number)
	}
}

func write(op change.WriteOp, table string, r row, key ...string) change.Write {
	return change.Write{Table: table, Op: op, Key: key, Row: r}
}

func item(op change.WriteOp, r row) change.Write { return write(op, "items", r, "id") }

func line(op change.WriteOp, r row) change.Write { return write(op, "lines", r, "order_id", "line") }

func offset(topic string, partition int32, next int64) sink.Offset {
	return sink.Offset{Topic: topic, Partition: partition, Next: next}
}

func TestNew_CreatesTheStateTablesOnceAndReusesThem(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	tg.apply(t, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("t", 0, 5)}})
	// Another process starting on the same state database keeps its contents.
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	got, err := s.Offsets(t.Context(), "g", "e")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sink.Offset{offset("t", 0, 5)}, got); diff != "" {
		t.Errorf("Offsets (-want +got):\n%s", diff)
	}
	tg.wantRows(t, "SELECT TABLE_NAME AS name, TABLE_COLLATION AS collation FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+tg.state+"' ORDER BY 1", []row{
		{"name": "backfills", "collation": "utf8mb4_bin"},
		{"name": "cohorts", "collation": "utf8mb4_bin"},
		{"name": "copy_locks", "collation": "utf8mb4_bin"},
		{"name": "dead_letters", "collation": "utf8mb4_bin"},
		{"name": "drift", "collation": "utf8mb4_bin"},
		{"name": "heartbeats", "collation": "utf8mb4_bin"},
		{"name": "kafka_offsets", "collation": "utf8mb4_bin"},
		{"name": "misrouted", "collation": "utf8mb4_bin"},
		{"name": "source_positions", "collation": "utf8mb4_bin"},
		{"name": "tombstones", "collation": "utf8mb4_bin"},
	})
}
