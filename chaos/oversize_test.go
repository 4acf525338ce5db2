package chaos

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
)

// The oversize scenario's kafka.max_record_bytes, and the length of its
// big value: far over the limit, and within what a MariaDB TEXT column
// holds (65,535 bytes).
const (
	recordLimit = 32 << 10
	bigLength   = 60_000
)

// TestOversize_RowInTheMiddleOfATransactionIsDeadLetteredThenReplayed runs
// tandem with kafka.max_record_bytes at 32 KiB under the writer, and commits
// one source transaction with rows before and after one row whose value
// (60,000 letters) is over the limit. The stream must go on: the rows
// beside the big one arrive, later changes too; the big row is
// dead-lettered in the target's dead-letter table with its key and the
// reason oversize (tandem_dlq_events_total{reason="oversize"} 1). Then
// `tandem dlq replay`, run beside `tandem run` as an operator does,
// re-reads it from the source, and the target equals the source through
// the model, the big row included.
func TestOversize_RowInTheMiddleOfATransactionIsDeadLetteredThenReplayed(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testOversize(t, kind)
		})
	}
}

// oversizeTx is the scenario's source transaction, committed: what its
// big row's dead letter must say, and how the target shows its rows.
type oversizeTx struct {
	mapping, key string // the big row's mapping, and its key as the dead letter keeps it
	beside       string // a target query giving the rows beside the big one as text ($1, $2: besideArgs)
	besideArgs   []any
	want         string // what beside gives once they are applied
	big          string // a target query counting the big row ($1: bigID)
	bigID        int64
}

func testOversize(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, kind)
	f.set(t, "kafka.max_record_bytes", strconv.Itoa(recordLimit))
	td := f.newTandem(t, nil, "")
	p, w, addr := td.runUnderWriter(ctx)

	// The limit is on the record as tandem produces it, before compression:
	// a value that compresses well is over it all the same.
	big := strings.Repeat("0123456789", bigLength/10)
	var tx *oversizeTx
	if kind == postgres {
		tx = commitOversizePostgres(ctx, t, f, big)
	} else {
		tx = commitOversizeMariaDB(ctx, t, f, big)
	}
	at := time.Now()
	var got string
	beside := since(t, "the rows beside the big one in the target", at, time.Minute, func() (bool, error) {
		err := f.tgt.QueryRow(ctx, tx.beside, tx.besideArgs...).Scan(&got)
		return got == tx.want, err
	})
	type deadLetter struct{ mapping, reason, key, err string }
	var dls []deadLetter
	dead := since(t, "the big row's dead letter", at, time.Minute, func() (bool, error) {
		rows, err := f.tgt.Query(ctx, `SELECT mapping, reason, convert_from(record_key, 'UTF8'), error FROM tandem.dead_letters ORDER BY created_at`)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		dls = nil
		for rows.Next() {
			var d deadLetter
			if err := rows.Scan(&d.mapping, &d.reason, &d.key, &d.err); err != nil {
				return false, err
			}
			dls = append(dls, d)
		}
		return len(dls) > 0, rows.Err()
	})
	if len(dls) != 1 || dls[0].mapping != tx.mapping || dls[0].reason != "oversize" || dls[0].key != tx.key ||
		!strings.Contains(dls[0].err, "kafka.max_record_bytes") {
		t.Fatalf("dead letters %+v, want one of mapping %s, reason oversize, key %s, its error naming kafka.max_record_bytes", dls, tx.mapping, tx.key)
	}
	t.Logf("dead letter: %s", dls[0].err)
	if n := bigRows(t, ctx, f, tx); n != 0 {
		t.Errorf("%d target rows of the big one before replay, want 0: it is dead-lettered", n)
	}
	if v, _ := apptest.Metric(apptest.Scraped(addr), "tandem_dlq_events_total", map[string]string{"mapping": tx.mapping, "reason": "oversize"}); v != 1 {
		t.Errorf(`tandem_dlq_events_total{mapping=%q,reason="oversize"} = %v, want 1`, tx.mapping, v)
	}
	if n := p.logged("change too large for kafka"); n != 1 {
		t.Errorf("%d lines saying a change was too large for kafka, want 1:\n%s", n, td.output())
	}
	base := td.applied(ctx)
	goesOn := td.untilApplied(ctx, "apply to go on after the dead letter", time.Now(), base)

	replayed := time.Now()
	out, err := td.command(ctx, "dlq", "replay")
	if err != nil {
		t.Fatalf("tandem dlq replay: %v\n%s", err, out)
	}
	took := time.Since(replayed)
	if !strings.Contains(out, "re-synced 1 row, removed 1 dead letter, 0 still failing") {
		t.Errorf("tandem dlq replay said:\n%s\nwant the big row re-synced and its dead letter removed", out)
	}
	var left int
	if err := f.tgt.QueryRow(ctx, `SELECT count(*) FROM tandem.dead_letters`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d dead letters (%v) after replay, want 0", left, err)
	}
	if n := bigRows(t, ctx, f, tx); n != 1 {
		t.Errorf("%d target rows of the big one after replay, want 1", n)
	}
	td.waitApplied(ctx, 200) // the stream goes on beside the replayed row, and the comparison has rows to compare
	converged, rows := f.finish(t, ctx, w, td, false)
	if v, _ := apptest.Metric(apptest.Scraped(addr), "tandem_dlq_events_total", nil); v != 1 {
		t.Errorf("tandem_dlq_events_total = %v after convergence, want 1 (the big row's)", v)
	}
	report(t, fmt.Sprintf("one transaction with rows before and after a row of %d bytes under kafka.max_record_bytes %d", bigLength, recordLimit),
		"rows beside it applied after", beside.Round(time.Millisecond), "dead-lettered (oversize) after", dead.Round(time.Millisecond),
		"applying on after it in", goesOn.Round(time.Millisecond), "dlq replay took", took.Round(time.Millisecond),
		"converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
}

// bigRows counts the target rows of tx's big row.
func bigRows(t testing.TB, ctx context.Context, f *flow, tx *oversizeTx) int {
	t.Helper()
	var n int
	if err := f.tgt.QueryRow(ctx, tx.big, tx.bigID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// commitOversizePostgres commits, in the shop source, a customer and its
// order, a customer named big and its order, and one more customer. The
// writer updates and deletes random rows: a trigger makes it leave these
// alone, so that the big row has one change, one dead letter, and the
// rows beside it a state to check.
func commitOversizePostgres(ctx context.Context, t testing.TB, f *flow, big string) *oversizeTx {
	t.Helper()
	src, err := pgxpool.New(ctx, f.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	var before, bigID, after, order1, order2 int64
	if err := src.QueryRow(ctx, `SELECT nextval('shop.customers_id_seq'), nextval('shop.customers_id_seq'), nextval('shop.customers_id_seq'),
	nextval('shop.orders_id_seq'), nextval('shop.orders_id_seq')`).Scan(&before, &bigID, &after, &order1, &order2); err != nil {
		t.Fatal(err)
	}
	keep := fmt.Sprintf(`
CREATE FUNCTION shop.chaos_keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER chaos_keep BEFORE UPDATE OR DELETE ON shop.customers FOR EACH ROW WHEN (OLD.id IN (%d, %d, %d)) EXECUTE FUNCTION shop.chaos_keep();
CREATE TRIGGER chaos_keep BEFORE UPDATE OR DELETE ON shop.orders FOR EACH ROW WHEN (OLD.id IN (%d, %d)) EXECUTE FUNCTION shop.chaos_keep();`,
		before, bigID, after, order1, order2)
	// One implicit transaction, which locks both tables: the writer's
	// transactions lock them too, in either order, so a deadlock may end
	// it, whole, as it may end one of the writer's; both try again.
	if _, err := poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		_, err := src.Exec(ctx, keep)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("keep the writer off the scenario's rows: %v", err)
	}
	tx, err := src.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO shop.customers (id, name, email) VALUES ($1, 'before the big one', 'before@example.com')`, []any{before}},
		{`INSERT INTO shop.orders (id, customer_id, total, status, payment_method, card_last4) VALUES ($1, $2, 12.34, 'paid', 'card', '4242')`, []any{order1, before}},
		{`INSERT INTO shop.customers (id, name, email) VALUES ($1, $2, NULL)`, []any{bigID, big}},
		{`INSERT INTO shop.orders (id, customer_id, total, status, payment_method) VALUES ($1, $2, -0.50, '', '')`, []any{order2, bigID}},
		{`INSERT INTO shop.customers (id, name, email) VALUES ($1, 'after the big one', NULL)`, []any{after}},
	} {
		if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return &oversizeTx{
		mapping: "shop.customers",
		key:     fmt.Sprintf(`{"id":%d}`, bigID),
		beside: `SELECT concat_ws('; ',
	(SELECT string_agg(format('customer %s %s %s', id, full_name, coalesce(email, 'null')), '; ' ORDER BY id) FROM public.customers WHERE id = ANY($1)),
	(SELECT string_agg(format('order %s of %s %s %s', id, customer_id, total_cents, status), '; ' ORDER BY id) FROM public.orders WHERE id = ANY($2)),
	(SELECT string_agg(format('payment %s %s %s', order_id, kind, card_last4), '; ' ORDER BY order_id) FROM public.payments WHERE order_id = ANY($2)))`,
		besideArgs: []any{[]int64{before, after}, []int64{order1, order2}},
		want: fmt.Sprintf("customer %d before the big one before@example.com; customer %d after the big one null; "+
			"order %d of %d 1234 paid; order %d of %d -50 pending; payment %d card 4242", before, after, order1, before, order2, bigID, order1),
		big:   `SELECT count(*) FROM public.customers WHERE id = $1 AND length(full_name) = ` + strconv.Itoa(bigLength),
		bigID: bigID,
	}
}

// commitOversizeMariaDB commits, in the cart source, a paid cart, a cart
// whose note is big, and one more cart; the writer touches only carts it
// made.
func commitOversizeMariaDB(ctx context.Context, t testing.TB, f *flow, big string) *oversizeTx {
	t.Helper()
	cfg, err := mysqlurl.Parse(f.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	src, err := mysqlurl.Open(f.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	const before, bigID, after = 7_000_000_000_000_000_001, 7_000_000_000_000_000_002, 7_000_000_000_000_000_003
	tx, err := src.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO carts VALUES (?, 'before', 12.34, 'paid', 'before the big one', '2025-01-01 00:00:00')`, []any{int64(before)}},
		{`INSERT INTO carts VALUES (?, 'big', -0.50, 'open', ?, '2025-01-01 00:00:01')`, []any{int64(bigID), big}},
		{`INSERT INTO carts VALUES (?, 'after', 0.01, 'open', NULL, '2025-01-01 00:00:02')`, []any{int64(after)}},
	} {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return &oversizeTx{
		mapping: cfg.DBName + ".carts",
		key:     fmt.Sprintf(`{"id":%d}`, bigID),
		beside: `SELECT concat_ws('; ',
	(SELECT string_agg(format('cart %s %s %s %s %s', id, owner, total_cents, state, coalesce(note, 'null')), '; ' ORDER BY id) FROM carts_v2 WHERE id = ANY($1)),
	(SELECT string_agg(format('paid %s %s', cart_id, owner), '; ' ORDER BY cart_id) FROM paid_carts WHERE cart_id = ANY($1)))`,
		besideArgs: []any{[]int64{before, after}},
		want: fmt.Sprintf("cart %d before 1234 paid before the big one; cart %d after 1 open null; paid %d before",
			before, after, before),
		big:   `SELECT count(*) FROM carts_v2 WHERE id = $1 AND length(note) = ` + strconv.Itoa(bigLength),
		bigID: bigID,
	}
}
