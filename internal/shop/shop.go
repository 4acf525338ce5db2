// Package shop is the migration tandem's demo and end-to-end tests run: an
// old shop schema whose orders carry their payment columns is split into new
// customers, orders and payments tables (the shape teams migrate in the
// field). It holds both schemas, the tandem config, a concurrent workload of
// inserts, updates (key changes included), deletes and multi-row
// transactions, and the expected new rows computed from the old ones in
// plain Go, independently of the CEL mapping, so a mapping bug shows up as a
// difference.
package shop

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/poll"
)

// SourceSchema creates the old schema in the source database.
const SourceSchema = `
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE shop.customers (
	id         bigserial PRIMARY KEY,
	name       text NOT NULL,
	email      text,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE shop.orders (
	id             bigserial PRIMARY KEY,
	customer_id    bigint NOT NULL,
	total          numeric(12,2) NOT NULL,
	status         text NOT NULL DEFAULT '',
	payment_method text NOT NULL DEFAULT '',
	card_last4     text,
	created_at     timestamptz NOT NULL DEFAULT now()
);`

// TargetSchema creates the new schema in the target database.
const TargetSchema = `
CREATE TABLE public.customers (
	id         bigint PRIMARY KEY,
	full_name  text NOT NULL,
	email      text,
	created_at timestamptz NOT NULL
);
CREATE TABLE public.orders (
	id          bigint PRIMARY KEY,
	customer_id bigint NOT NULL,
	total_cents bigint NOT NULL,
	status      text NOT NULL,
	created_at  timestamptz NOT NULL
);
CREATE TABLE public.payments (
	order_id   bigint PRIMARY KEY,
	kind       text NOT NULL,
	card_last4 text
);`

// Mappings is the mappings section of the config: old -> new.
const Mappings = `mappings:
  - from: shop.customers
    to:
      - table: public.customers
        key: [id]
        columns:
          id: row.id
          full_name: row.name
          email: row.email
          created_at: row.created_at
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          customer_id: row.customer_id
          total_cents: int(double(row.total) * 100.0 + 0.5)
          status: 'row.status == "" ? "pending" : row.status'
          created_at: row.created_at
      - table: public.payments
        key: [order_id]
        when: row.payment_method != ""
        columns:
          order_id: row.id
          kind: row.payment_method
          card_last4: row.card_last4
`

// ConfigOptions vary the generated config.
type ConfigOptions struct {
	SourceDSN, TargetDSN string   // written as ${TANDEM_SOURCE_DSN} / ${TANDEM_TARGET_DSN} when empty
	Brokers              []string // empty: embedded broker
	Listen               string   // http.listen; default 127.0.0.1:0
	Slot                 string   // default tandem
	Partitions           int      // default 4
}

// Config returns a tandem.yaml for the shop migration.
func Config(o ConfigOptions) string {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Slot == "" {
		o.Slot = "tandem"
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	src, tgt := o.SourceDSN, o.TargetDSN
	if src == "" {
		src = "${TANDEM_SOURCE_DSN}"
	}
	if tgt == "" {
		tgt = "${TANDEM_TARGET_DSN}"
	}
	brokers := "[]"
	if len(o.Brokers) > 0 {
		brokers = "[" + strings.Join(o.Brokers, ", ") + "]"
	}
	return fmt.Sprintf(`# The shop migration: old orders carry payment columns; the new schema splits
# them into orders + payments.
source:
  kind: postgres
  dsn: %q
  tables: [shop.customers, shop.orders]
  postgres: { slot: %s, publication: %s }
kafka:
  brokers: %s
  topic_prefix: shop
  partitions: %d
target:
  kind: postgres
  dsn: %q
http:
  listen: %q
%s`, src, o.Slot, o.Slot, brokers, o.Partitions, tgt, o.Listen, Mappings)
}

// Customer is a row of the new customers table.
type Customer struct {
	ID        int64
	FullName  string
	Email     *string
	CreatedAt time.Time
}

// Order is a row of the new orders table.
type Order struct {
	ID, CustomerID, TotalCents int64
	Status                     string
	CreatedAt                  time.Time
}

// Payment is a row of the new payments table.
type Payment struct {
	OrderID   int64
	Kind      string
	CardLast4 *string
}

// NewRows is the whole new schema's content, sorted by key.
type NewRows struct {
	Customers []Customer
	Orders    []Order
	Payments  []Payment
}

// Count returns the number of rows.
func (n *NewRows) Count() int { return len(n.Customers) + len(n.Orders) + len(n.Payments) }

// Expected computes the new rows the old rows should become, in Go.
func Expected(ctx context.Context, src *pgxpool.Pool) (*NewRows, error) {
	tx, err := src.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("read old rows: %w", err)
	}
	defer tx.Rollback(ctx)
	out := &NewRows{}
	rows, _ := tx.Query(ctx, `SELECT id, name, email, created_at FROM shop.customers ORDER BY id`)
	out.Customers, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Customer])
	if err != nil {
		return nil, fmt.Errorf("read old customers: %w", err)
	}
	rows, _ = tx.Query(ctx, `SELECT id, customer_id, total::text, status, payment_method, card_last4, created_at FROM shop.orders ORDER BY id`)
	type oldOrder struct {
		ID, CustomerID        int64
		Total, Status, Method string
		CardLast4             *string
		CreatedAt             time.Time
	}
	olds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[oldOrder])
	if err != nil {
		return nil, fmt.Errorf("read old orders: %w", err)
	}
	for _, o := range olds {
		cents, err := Cents(o.Total)
		if err != nil {
			return nil, fmt.Errorf("order %d: %w", o.ID, err)
		}
		status := o.Status
		if status == "" {
			status = "pending"
		}
		out.Orders = append(out.Orders, Order{ID: o.ID, CustomerID: o.CustomerID, TotalCents: cents, Status: status, CreatedAt: o.CreatedAt})
		if o.Method != "" {
			out.Payments = append(out.Payments, Payment{OrderID: o.ID, Kind: o.Method, CardLast4: o.CardLast4})
		}
	}
	return out, nil
}

// Cents converts a numeric(12,2) text value ("-12.30") to cents exactly.
func Cents(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	frac = (frac + "00")[:2]
	var n int64
	if _, err := fmt.Sscanf(whole+frac, "%d", &n); err != nil {
		return 0, fmt.Errorf("numeric %q: %w", s, err)
	}
	if neg {
		n = -n
	}
	return n, nil
}

// ReadTarget reads the new schema's content.
func ReadTarget(ctx context.Context, tgt *pgxpool.Pool) (*NewRows, error) {
	out := &NewRows{}
	var err error
	rows, _ := tgt.Query(ctx, `SELECT id, full_name, email, created_at FROM public.customers ORDER BY id`)
	if out.Customers, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Customer]); err != nil {
		return nil, fmt.Errorf("read new customers: %w", err)
	}
	rows, _ = tgt.Query(ctx, `SELECT id, customer_id, total_cents, status, created_at FROM public.orders ORDER BY id`)
	if out.Orders, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Order]); err != nil {
		return nil, fmt.Errorf("read new orders: %w", err)
	}
	rows, _ = tgt.Query(ctx, `SELECT order_id, kind, card_last4 FROM public.payments ORDER BY order_id`)
	if out.Payments, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Payment]); err != nil {
		return nil, fmt.Errorf("read new payments: %w", err)
	}
	return out, nil
}

// Workload writes to the old schema the way a live shop does.
type Workload struct {
	Src  *pgxpool.Pool
	Seed uint64
	// Ops counts committed operations (a multi-row transaction counts each).
	Ops atomic.Int64
}

var methods = []string{"", "card", "paypal", "konbini", "bank_transfer"}

// History inserts n customers with three orders each, in one transaction.
func (w *Workload) History(ctx context.Context, n int) error {
	_, err := w.Src.Exec(ctx, `
WITH c AS (
	INSERT INTO shop.customers (name, email, created_at)
	SELECT 'customer ' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'c' || g || '@example.com' END, now() - g * interval '1 day'
	FROM generate_series(1, $1::int) g RETURNING id
)
INSERT INTO shop.orders (customer_id, total, status, payment_method, card_last4, created_at)
SELECT c.id, (c.id * 7 + k) % 1000 + 0.99, CASE WHEN k = 1 THEN '' ELSE 'paid' END,
       (ARRAY['', 'card', 'paypal', 'konbini'])[1 + (c.id + k) % 4], CASE WHEN (c.id + k) % 4 = 1 THEN lpad(((c.id * 37) % 10000)::text, 4, '0') END,
       now() - (c.id + k) * interval '1 hour'
FROM c, generate_series(1, 3) k`, n)
	if err != nil {
		return fmt.Errorf("insert history: %w", err)
	}
	w.Ops.Add(int64(n * 4))
	return nil
}

// Run performs random operations until ctx ends or maxOps operations are
// done (0: no limit), at most perSecond a second (0: as fast as it can).
func (w *Workload) Run(ctx context.Context, maxOps int64, perSecond int) error {
	rng := rand.New(rand.NewPCG(w.Seed, w.Seed^0x9e3779b97f4a7c15))
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
		n, err := w.step(ctx, rng)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		w.Ops.Add(int64(n))
	}
	return nil
}

// step runs one transaction of one to four operations; it returns how many.
func (w *Workload) step(ctx context.Context, rng *rand.Rand) (int, error) {
	tx, err := w.Src.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("workload: %w", err)
	}
	defer tx.Rollback(ctx)
	n := 1
	if rng.IntN(5) == 0 {
		n = 2 + rng.IntN(3)
	}
	for range n {
		if err := w.op(ctx, tx, rng); err != nil {
			return 0, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("workload commit: %w", err)
	}
	return n, nil
}

func (w *Workload) op(ctx context.Context, tx pgx.Tx, rng *rand.Rand) error {
	var sql string
	var args []any
	method := methods[rng.IntN(len(methods))]
	var last4 any
	if method == "card" {
		last4 = fmt.Sprintf("%04d", rng.IntN(10000))
	}
	switch p := rng.IntN(100); {
	case p < 15:
		var email any
		if rng.IntN(4) > 0 {
			email = fmt.Sprintf("new%d@example.com", rng.IntN(1_000_000))
		}
		sql, args = `INSERT INTO shop.customers (name, email) VALUES ($1, $2)`, []any{fmt.Sprintf("Näme %d 🍣", rng.IntN(1_000_000)), email}
	case p < 25:
		sql, args = `UPDATE shop.customers SET name = name || '.', email = $1 WHERE id = (SELECT id FROM shop.customers ORDER BY random() LIMIT 1)`,
			[]any{fmt.Sprintf("upd%d@example.com", rng.IntN(1_000_000))}
	case p < 28:
		sql = `DELETE FROM shop.customers WHERE id = (SELECT id FROM shop.customers ORDER BY random() LIMIT 1)`
	case p < 55:
		sql, args = `INSERT INTO shop.orders (customer_id, total, status, payment_method, card_last4)
VALUES (coalesce((SELECT max(id) FROM shop.customers), 0), $1, $2, $3, $4)`,
			[]any{fmt.Sprintf("%d.%02d", rng.IntN(100000), rng.IntN(100)), []string{"", "paid", "shipped"}[rng.IntN(3)], method, last4}
	case p < 75:
		sql, args = `UPDATE shop.orders SET status = $1, total = total + $2 WHERE id = (SELECT id FROM shop.orders ORDER BY random() LIMIT 1)`,
			[]any{[]string{"", "paid", "shipped", "refunded"}[rng.IntN(4)], fmt.Sprintf("%d.%02d", rng.IntN(10), rng.IntN(100))}
	case p < 85:
		sql, args = `UPDATE shop.orders SET payment_method = $1, card_last4 = $2 WHERE id = (SELECT id FROM shop.orders ORDER BY random() LIMIT 1)`,
			[]any{method, last4}
	case p < 88:
		// A primary key change: the new schema must lose the old key's rows.
		sql = `UPDATE shop.orders SET id = id + 1000000000 WHERE id = (SELECT id FROM shop.orders WHERE id < 1000000000 ORDER BY random() LIMIT 1)`
	default:
		sql = `DELETE FROM shop.orders WHERE id = (SELECT id FROM shop.orders ORDER BY random() LIMIT 1)`
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	return nil
}

// Migration is an open source and target database pair.
type Migration struct {
	SrcDSN, TgtDSN string
	Src, Tgt       *pgxpool.Pool
}

// Open connects to both databases and, when create is set, creates the old
// schema in the source and the new one in the target.
func Open(ctx context.Context, srcDSN, tgtDSN string, create bool) (*Migration, error) {
	m := &Migration{SrcDSN: srcDSN, TgtDSN: tgtDSN}
	var err error
	if m.Src, err = pgxpool.New(ctx, srcDSN); err != nil {
		return nil, fmt.Errorf("connect to source: %w", err)
	}
	if m.Tgt, err = pgxpool.New(ctx, tgtDSN); err != nil {
		m.Src.Close()
		return nil, fmt.Errorf("connect to target: %w", err)
	}
	if create {
		if _, err := m.Src.Exec(ctx, SourceSchema); err != nil {
			m.Close()
			return nil, fmt.Errorf("create old schema: %w", err)
		}
		if _, err := m.Tgt.Exec(ctx, TargetSchema); err != nil {
			m.Close()
			return nil, fmt.Errorf("create new schema: %w", err)
		}
	}
	return m, nil
}

// Close closes both pools.
func (m *Migration) Close() {
	m.Src.Close()
	m.Tgt.Close()
}

// Diff compares the target with the rows expected from the source; "" means
// equal. got is the target's content.
func (m *Migration) Diff(ctx context.Context) (diff string, got *NewRows, err error) {
	want, err := Expected(ctx, m.Src)
	if err != nil {
		return "", nil, err
	}
	got, err = ReadTarget(ctx, m.Tgt)
	if err != nil {
		return "", nil, err
	}
	return cmp.Diff(want, got), got, nil
}

// WaitConverged polls Diff until it is empty or within passes; it returns the
// target's content, or the last diff as the error.
func (m *Migration) WaitConverged(ctx context.Context, within time.Duration) (*NewRows, error) {
	var diff string
	var got *NewRows
	_, err := poll.Until(ctx, 100*time.Millisecond, within, func() (bool, error) {
		var err error
		diff, got, err = m.Diff(ctx)
		return diff == "", err
	})
	if errors.Is(err, poll.ErrTimeout) {
		return nil, fmt.Errorf("target did not converge within %s (-want +got):\n%s", within, diff)
	}
	if err != nil {
		return nil, err
	}
	return got, nil
}
