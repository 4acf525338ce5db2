// Package cart is a demo migration from a MariaDB / MySQL source: the old
// carts table becomes carts_v2 (amounts in cents) plus paid_carts for the
// carts that are paid. Tests, benchmarks and the crash test use it: its
// schemas, its tandem config, a concurrent workload, and the expected new
// rows computed in plain Go, independently of the CEL mapping.
package cart

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// SourceDDL creates the old schema in a MariaDB / MySQL database.
const SourceDDL = "CREATE TABLE carts (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, " +
	"total DECIMAL(12,2) NOT NULL, state ENUM('open','paid','gone') NOT NULL, note TEXT NULL, " +
	"touched DATETIME(6) NOT NULL) CHARACTER SET utf8mb4"

// TargetDDL returns the statements creating the new schema on a target of
// kind "postgres" or "mysql".
func TargetDDL(kind string) []string {
	ts := "timestamp(6)"
	if kind == "mysql" {
		ts = "DATETIME(6)"
	}
	return []string{
		"CREATE TABLE carts_v2 (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, total_cents BIGINT NOT NULL, " +
			"state VARCHAR(8) NOT NULL, note TEXT NULL, touched " + ts + " NOT NULL)",
		"CREATE TABLE paid_carts (cart_id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL)",
	}
}

// ConfigOptions vary the generated config.
type ConfigOptions struct {
	SourceDSN  string // "" : ${TANDEM_SOURCE_DSN}
	SourceDB   string // the source database holding carts
	ServerID   uint32 // 0: 4242
	TargetKind string // "postgres" (default) or "mysql"
	TargetDSN  string // "" : ${TANDEM_TARGET_DSN}
	Brokers    []string
	Listen     string // default 127.0.0.1:0
	Partitions int    // default 4
}

// Config returns the migration's tandem.yaml.
func Config(o ConfigOptions) string {
	if o.SourceDSN == "" {
		o.SourceDSN = "${TANDEM_SOURCE_DSN}"
	}
	if o.TargetDSN == "" {
		o.TargetDSN = "${TANDEM_TARGET_DSN}"
	}
	if o.TargetKind == "" {
		o.TargetKind = "postgres"
	}
	if o.ServerID == 0 {
		o.ServerID = 4242
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	brokers := "[]"
	if len(o.Brokers) > 0 {
		brokers = "[" + strings.Join(o.Brokers, ", ") + "]"
	}
	return fmt.Sprintf(`# The cart migration: amounts in cents, and paid carts in a table of their own.
source:
  kind: mysql
  dsn: %q
  tables: [%s.carts]
  mysql: { server_id: %d }
kafka:
  brokers: %s
  topic_prefix: cart
  partitions: %d
target:
  kind: %s
  dsn: %q
http:
  listen: %q
mappings:
  - from: %s.carts
    to:
      - table: carts_v2
        key: [id]
        columns:
          id: row.id
          owner: row.owner
          total_cents: int(double(row.total) * 100.0 + 0.5)
          state: row.state
          note: row.note
          touched: row.touched
      - table: paid_carts
        key: [cart_id]
        when: row.state == "paid"
        columns:
          cart_id: row.id
          owner: row.owner
`, o.SourceDSN, o.SourceDB, o.ServerID, brokers, o.Partitions, o.TargetKind, o.TargetDSN, o.Listen, o.SourceDB)
}

// Rows is the new schema's content, every value as text ("<NULL>" for NULL),
// in key order.
type Rows struct {
	Carts [][]string // id, owner, total_cents, state, note, touched
	Paid  [][]string // cart_id, owner
}

// Null is how Rows shows NULL.
const Null = "<NULL>"

// Expected computes the new rows from the source carts.
func Expected(ctx context.Context, src *sql.DB) (*Rows, error) {
	rows, err := src.QueryContext(ctx, "SELECT id, owner, total, state, note, touched FROM carts ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &Rows{}
	for rows.Next() {
		var id int64
		var owner, total, state, touched string
		var note sql.NullString
		if err := rows.Scan(&id, &owner, &total, &state, &note, &touched); err != nil {
			return nil, err
		}
		units, cents, _ := strings.Cut(total, ".")
		u, _ := strconv.ParseInt(units, 10, 64)
		c, _ := strconv.ParseInt((cents + "00")[:2], 10, 64)
		if strings.HasPrefix(units, "-") {
			c = -c
		}
		n := Null
		if note.Valid {
			n = note.String
		}
		out.Carts = append(out.Carts, []string{strconv.FormatInt(id, 10), owner, strconv.FormatInt(u*100+c, 10), state, n, touched})
		if state == "paid" {
			out.Paid = append(out.Paid, []string{strconv.FormatInt(id, 10), owner})
		}
	}
	return out, rows.Err()
}

// Reader reads the new schema from a target.
type Reader func(ctx context.Context) (*Rows, error)

// MySQLReader reads the new schema from a MariaDB / MySQL target.
func MySQLReader(db *sql.DB) Reader {
	return func(ctx context.Context) (*Rows, error) {
		out := &Rows{}
		var err error
		if out.Carts, err = SQLText(ctx, db, "SELECT id, owner, total_cents, state, note, DATE_FORMAT(touched, '%Y-%m-%d %H:%i:%s.%f') FROM carts_v2 ORDER BY id"); err != nil {
			return nil, err
		}
		out.Paid, err = SQLText(ctx, db, "SELECT cart_id, owner FROM paid_carts ORDER BY cart_id")
		return out, err
	}
}

// PostgresReader reads the new schema from a PostgreSQL target.
func PostgresReader(db *pgx.Conn) Reader {
	return func(ctx context.Context) (*Rows, error) {
		out := &Rows{}
		var err error
		if out.Carts, err = PGText(ctx, db, `SELECT id::text, owner, total_cents::text, state, note, to_char(touched, 'YYYY-MM-DD HH24:MI:SS.US') FROM carts_v2 ORDER BY carts_v2.id`); err != nil {
			return nil, err
		}
		out.Paid, err = PGText(ctx, db, `SELECT cart_id::text, owner FROM paid_carts ORDER BY paid_carts.cart_id`)
		return out, err
	}
}

// SQLText runs a query and returns every value as text (Null for NULL).
func SQLText(ctx context.Context, db *sql.DB, q string) ([][]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = Null
			if v.Valid {
				row[i] = v.String
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// PGText runs a PostgreSQL query and returns every value as text (Null for NULL).
func PGText(ctx context.Context, db *pgx.Conn, q string) ([][]string, error) {
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		vals, err := r.Values()
		if err != nil {
			return nil, err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = Null
			if v != nil {
				row[i] = fmt.Sprint(v)
			}
		}
		return row, nil
	})
}

// Workload writes to the carts table: inserts, updates (state transitions
// in and out of paid), key changes, deletes, and multi-statement
// transactions. Ids start above Base, so workloads with bases far apart
// never collide. Ops counts committed operations.
type Workload struct {
	DB   *sql.DB
	Seed uint64
	Base int64
	Ops  atomic.Int64

	ids  []int64
	next int64
}

// Run runs until maxOps operations are done (0: until ctx ends, which is
// then not an error), at most perSecond of them a second (0: unpaced).
func (w *Workload) Run(ctx context.Context, maxOps int64, perSecond int) error {
	rnd := rand.New(rand.NewPCG(w.Seed, w.Seed*7+1))
	if w.next < w.Base {
		w.next = w.Base
	}
	var tick *time.Ticker
	if perSecond > 0 {
		tick = time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
	}
	for maxOps == 0 || w.Ops.Load() < maxOps {
		if tick != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := w.step(ctx, rnd); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.Ops.Add(1)
	}
	return nil
}

var states = []string{"open", "paid", "gone"}

func (w *Workload) step(ctx context.Context, rnd *rand.Rand) error {
	db := w.DB
	var err error
	switch op := rnd.IntN(10); {
	case op < 4 || len(w.ids) == 0:
		w.next++
		note := any(nil)
		if rnd.IntN(2) == 0 {
			note = fmt.Sprintf("note %d ✓ 日本", w.next)
		}
		_, err = db.ExecContext(ctx, "INSERT INTO carts VALUES (?, ?, ?, ?, ?, ?)", w.next, fmt.Sprintf("owner-%d", rnd.IntN(50)),
			fmt.Sprintf("%d.%02d", rnd.IntN(10000), rnd.IntN(100)), states[rnd.IntN(3)], note,
			time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rnd.Int64N(1e15))).Format("2006-01-02 15:04:05.000000"))
		if err == nil {
			w.ids = append(w.ids, w.next)
		}
	case op < 7:
		_, err = db.ExecContext(ctx, "UPDATE carts SET state = ?, total = total + 1.01 WHERE id = ?", states[rnd.IntN(3)], w.ids[rnd.IntN(len(w.ids))])
	case op < 8:
		i := rnd.IntN(len(w.ids))
		w.next++
		if _, err = db.ExecContext(ctx, "UPDATE carts SET id = ? WHERE id = ?", w.next, w.ids[i]); err == nil {
			w.ids[i] = w.next
		}
	case op < 9:
		i := rnd.IntN(len(w.ids))
		if _, err = db.ExecContext(ctx, "DELETE FROM carts WHERE id = ?", w.ids[i]); err == nil {
			w.ids = append(w.ids[:i], w.ids[i+1:]...)
		}
	default:
		err = w.transaction(ctx, rnd)
	}
	if err != nil {
		return fmt.Errorf("cart workload: %w", err)
	}
	return nil
}

// transaction inserts a cart and pays it together with an existing one.
func (w *Workload) transaction(ctx context.Context, rnd *rand.Rand) error {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	id := w.next + 1
	other := w.ids[rnd.IntN(len(w.ids))]
	if _, err := tx.ExecContext(ctx, "INSERT INTO carts VALUES (?, 'tx', 1.00, 'open', NULL, '2025-06-01 00:00:00')", id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE carts SET state = 'paid', owner = CONCAT(owner, '+') WHERE id IN (?, ?)", id, other); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	w.next = id
	w.ids = append(w.ids, id)
	return nil
}
