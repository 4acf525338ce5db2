package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// mergeSourceDDL is an old schema that keeps an order's payment in a table
// of its own; the new schema merges both into one orders row.
const mergeSourceDDL = `
CREATE TABLE orders (
	id     bigint PRIMARY KEY,
	total  numeric(12,2) NOT NULL,
	status text NOT NULL
);
CREATE TABLE payment_infos (
	order_id   bigint PRIMARY KEY,
	method     text NOT NULL,
	card_last4 text
);`

// mergeTargetDDL is the new orders table of each target kind.
var mergeTargetDDL = map[string]string{
	"postgres": `CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12,2), status text, pay_method text, card_last4 text)`,
	"mysql":    `CREATE TABLE orders (id BIGINT PRIMARY KEY, total DECIMAL(12,2), status VARCHAR(20), pay_method VARCHAR(20), card_last4 VARCHAR(4))`,
}

// mergeMappings feeds new orders from both old tables; payments, which only
// fill the payment columns of a row the orders mapping owns, clear them
// when deleted. %s is the payment mapping's pay_method expression.
const mergeMappings = `mappings:
  - from: public.orders
    to:
      - table: orders
        key: [id]
        columns:
          id: row.id
          total: row.total
          status: row.status
  - from: public.payment_infos
    to:
      - table: orders
        key: [id]
        on_delete: clear
        columns:
          id: row.order_id
          pay_method: %s
          card_last4: row.card_last4
`

// mergeMigration is a PostgreSQL source holding the old schema and a
// target of one kind holding the new.
type mergeMigration struct {
	src          *pgx.Conn
	srcDSN, slot string
	kind, tgtDSN string
	read         func(ctx context.Context) ([]mergedOrder, error) // the target's orders, by id
}

func newMergeMigration(t *testing.T, kind string) *mergeMigration {
	t.Helper()
	ctx := context.Background()
	m := &mergeMigration{kind: kind, srcDSN: testenv.NewDatabase(t)}
	m.src = pgConnect(t, m.srcDSN)
	if _, err := m.src.Exec(ctx, mergeSourceDDL); err != nil {
		t.Fatal(err)
	}
	m.slot = strings.ToLower(dbOfDSN(t, m.srcDSN))
	if len(m.slot) > 63 {
		m.slot = m.slot[len(m.slot)-63:]
	}
	t.Cleanup(func() {
		_, _ = m.src.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, m.slot)
	})
	const query = `SELECT id, total, status, pay_method, card_last4 FROM orders ORDER BY id`
	switch kind {
	case "postgres":
		m.tgtDSN = testenv.NewDatabase(t)
		tgt := pgConnect(t, m.tgtDSN)
		if _, err := tgt.Exec(ctx, mergeTargetDDL[kind]); err != nil {
			t.Fatal(err)
		}
		m.read = func(ctx context.Context) ([]mergedOrder, error) {
			rows, err := tgt.Query(ctx, strings.Replace(query, "total", "total::text", 1))
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (mergedOrder, error) {
				var o mergedOrder
				err := r.Scan(&o.ID, &o.Total, &o.Status, &o.PayMethod, &o.CardLast4)
				return o, err
			})
		}
	case "mysql":
		m.tgtDSN = testenv.NewMariaDBDatabase(t)
		tgt := openMySQL(t, m.tgtDSN)
		if _, err := tgt.ExecContext(ctx, mergeTargetDDL[kind]); err != nil {
			t.Fatal(err)
		}
		m.read = func(ctx context.Context) ([]mergedOrder, error) {
			rows, err := tgt.QueryContext(ctx, query)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []mergedOrder
			for rows.Next() {
				var o mergedOrder
				if err := rows.Scan(&o.ID, &o.Total, &o.Status, &o.PayMethod, &o.CardLast4); err != nil {
					return nil, err
				}
				out = append(out, o)
			}
			return out, rows.Err()
		}
	}
	return m
}

// config is the migration's tandem.yaml with mappings.
func (m *mergeMigration) config(mappings string) string {
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [public.orders, public.payment_infos]
  postgres: { slot: %s, publication: %s }
kafka:
  topic_prefix: merge
  partitions: 2
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
%s`, m.srcDSN, m.slot, m.slot, m.kind, m.tgtDSN, mappings)
}

// exec runs statements on the source.
func (m *mergeMigration) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := m.src.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// mergedOrder is a row of the new orders table, NULLs as nil.
type mergedOrder struct {
	ID                                  int64
	Total, Status, PayMethod, CardLast4 *string
}

func order(id int64, total, status, method, last4 string) mergedOrder {
	o := mergedOrder{ID: id}
	for _, f := range []struct {
		v string
		p **string
	}{{total, &o.Total}, {status, &o.Status}, {method, &o.PayMethod}, {last4, &o.CardLast4}} {
		if f.v != "" {
			*f.p = &f.v
		}
	}
	return o
}

func TestRun_MergeSecondaryDeleteClearsItsColumnsAndKeepsThePrimarys(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newMergeMigration(t, kind)
			cfg := parseConfig(t, m.config(fmt.Sprintf(mergeMappings, "row.method")))
			checkClean(t, cfg)
			run := start(t, cfg)
			m.exec(t,
				`INSERT INTO orders SELECT i, i * 10, 'new' FROM generate_series(1, 5) i`,
				`INSERT INTO payment_infos SELECT i, 'card', '000' || i FROM generate_series(1, 4) i`)
			want := []mergedOrder{
				order(1, "10.00", "new", "card", "0001"),
				order(2, "20.00", "new", "card", "0002"),
				order(3, "30.00", "new", "card", "0003"),
				order(4, "40.00", "new", "card", "0004"),
				order(5, "50.00", "new", "", ""),
			}
			waitMerged(t, "the merge", want, m.read)

			m.exec(t,
				`DELETE FROM payment_infos WHERE order_id IN (2, 3)`,          // clears
				`UPDATE payment_infos SET order_id = 5 WHERE order_id = 1`,    // a key change: clears 1, fills 5
				`UPDATE payment_infos SET method = 'cash' WHERE order_id = 4`, // the secondary goes on
				`UPDATE orders SET status = 'paid' WHERE id IN (2, 4)`,        // and so does the primary
				`INSERT INTO payment_infos VALUES (3, 'wire', NULL)`,          // a cleared row filled again
			)
			want = []mergedOrder{
				order(1, "10.00", "new", "", ""),
				order(2, "20.00", "paid", "", ""),
				order(3, "30.00", "new", "wire", ""),
				order(4, "40.00", "paid", "cash", "0004"),
				order(5, "50.00", "new", "card", "0001"),
			}
			waitMerged(t, "the clears", want, m.read)
			if err := run.Failed(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// waitMerged polls read until it returns want, and fails with the last
// difference otherwise.
func waitMerged(t *testing.T, what string, want []mergedOrder, read func(context.Context) ([]mergedOrder, error)) {
	t.Helper()
	ctx := context.Background()
	var got []mergedOrder
	_, err := poll.Until(ctx, 50*time.Millisecond, time.Minute, func() (bool, error) {
		var err error
		got, err = read(ctx)
		return cmp.Equal(want, got), err
	})
	if err != nil {
		t.Fatalf("%s: target did not converge: %v (-want +got):\n%s", what, err, cmp.Diff(want, got))
	}
}
