package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The legacy schema keeps an order's payment in a table of its own and
// refers to customers by an id the new system replaced with uuids.
const legacySchema = `
CREATE SCHEMA legacy;
CREATE TABLE legacy.orders (
	id           bigint PRIMARY KEY,
	customer_ref bigint NOT NULL,
	total        numeric(12,2) NOT NULL,
	status       text NOT NULL,
	note         text NOT NULL DEFAULT ''
);
CREATE TABLE legacy.payment_infos (
	order_id bigint PRIMARY KEY,
	method   text NOT NULL,
	paid_at  timestamptz
);`

// The new schema: orders carries the payment columns (a merge of two old
// tables), notes move to a table of their own (a split), and customers are
// the new system's, keyed by uuid, with the legacy id beside.
const newSchema = `
CREATE TABLE public.customers (
	id        uuid PRIMARY KEY,
	legacy_id bigint UNIQUE NOT NULL,
	name      text NOT NULL
);
CREATE TABLE public.orders (
	id          bigint PRIMARY KEY,
	customer_id uuid,
	total       numeric(12,2),
	status      text,
	pay_method  text,
	paid_at     timestamptz
);
CREATE TABLE public.order_notes (
	order_id bigint PRIMARY KEY,
	note     text NOT NULL
);`

const legacyMappings = `mappings:
  - from: legacy.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          customer_id: 'lookup("public.customers", {"legacy_id": row.customer_ref}).id'
          total: row.total
          status: row.status
      - table: public.order_notes
        key: [order_id]
        when: row.note != ""
        columns:
          order_id: row.id
          note: row.note
    inverse:
      columns:
        id: orders.id
        customer_ref: 'lookup("public.customers", {"id": orders.customer_id}).legacy_id'
        total: orders.total
        status: orders.status
        note: 'has(order_notes.note) ? order_notes.note : ""'
  - from: legacy.payment_infos
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.order_id
          pay_method: row.method
          paid_at: row.paid_at
`

func legacyConfig(slot, src, tgt, mappings string) string {
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [legacy.orders, legacy.payment_infos]
  postgres: { slot: %s, publication: %s }
kafka:
  topic_prefix: legacy
  partitions: 3
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
%s`, src, slot, slot, tgt, mappings)
}

// legacyDBs creates both schemas and the new system's customers.
func legacyDBs(t *testing.T) (src, tgt *pgxpool.Pool, srcDSN, tgtDSN, slot string) {
	t.Helper()
	ctx := context.Background()
	srcDSN, tgtDSN = testenv.NewDatabase(t), testenv.NewDatabase(t)
	var err error
	if src, err = pgxpool.New(ctx, srcDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	if tgt, err = pgxpool.New(ctx, tgtDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tgt.Close)
	if _, err := src.Exec(ctx, legacySchema); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Exec(ctx, newSchema); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := tgt.Exec(ctx, `INSERT INTO public.customers VALUES ($1, $2, $3)`, customerUUID(i), i, fmt.Sprintf("customer %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.QueryRow(ctx, `SELECT current_database()`).Scan(&slot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = src.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	return src, tgt, srcDSN, tgtDSN, slot
}

func customerUUID(legacy int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", legacy) }

// newOrder is a row of public.orders, NULLs as nil.
type newOrder struct {
	ID                                           int64
	CustomerID, Total, Status, PayMethod, PaidAt *string
}

// expectedOrders computes the new orders and notes from the legacy tables in
// plain Go (not through CEL): an order row for each legacy order whose
// customer exists, merged with its payment, and one for each payment of an
// order that does not exist (its payment columns only).
func expectedOrders(t *testing.T, src *pgxpool.Pool) (map[int64]newOrder, map[int64]string) {
	t.Helper()
	ctx := context.Background()
	orders := map[int64]newOrder{}
	notes := map[int64]string{}
	rows, err := src.Query(ctx, `SELECT id, customer_ref, total::text, status, note FROM legacy.orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, ref int64
		var total, status, note string
		if err := rows.Scan(&id, &ref, &total, &status, &note); err != nil {
			t.Fatal(err)
		}
		if ref < 1 || ref > 5 {
			continue // no such customer: a dead letter
		}
		c := customerUUID(int(ref))
		orders[id] = newOrder{ID: id, CustomerID: &c, Total: &total, Status: &status}
		if note != "" {
			notes[id] = note
		}
	}
	rows, err = src.Query(ctx, `SELECT order_id, method, to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM legacy.payment_infos`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var method string
		var paid *string
		if err := rows.Scan(&id, &method, &paid); err != nil {
			t.Fatal(err)
		}
		o := orders[id]
		o.ID, o.PayMethod, o.PaidAt = id, &method, paid
		orders[id] = o
	}
	return orders, notes
}

func actualOrders(ctx context.Context, tgt *pgxpool.Pool) (map[int64]newOrder, map[int64]string, error) {
	rows, err := tgt.Query(ctx, `SELECT id, customer_id::text, total::text, status, pay_method,
		to_char(paid_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM public.orders`)
	if err != nil {
		return nil, nil, err
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (newOrder, error) {
		var o newOrder
		err := r.Scan(&o.ID, &o.CustomerID, &o.Total, &o.Status, &o.PayMethod, &o.PaidAt)
		return o, err
	})
	if err != nil {
		return nil, nil, err
	}
	byID := map[int64]newOrder{}
	for _, o := range orders {
		byID[o.ID] = o
	}
	notes := map[int64]string{}
	rows, err = tgt.Query(ctx, `SELECT order_id, note FROM public.order_notes`)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var id int64
		var note string
		if err := rows.Scan(&id, &note); err != nil {
			return nil, nil, err
		}
		notes[id] = note
	}
	return byID, notes, rows.Err()
}

func TestRun_SplitMergeKeyChangeWhenAndLookupsConverge(t *testing.T) {
	ctx := context.Background()
	src, tgt, srcDSN, tgtDSN, slot := legacyDBs(t)
	cfg := parseConfig(t, legacyConfig(slot, srcDSN, tgtDSN, legacyMappings))
	run := start(t, cfg)

	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := src.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for i := int64(1); i <= 40; i++ {
		note := ""
		if i%3 == 0 {
			note = fmt.Sprintf("note %d", i)
		}
		exec(`INSERT INTO legacy.orders VALUES ($1, $2, $3, 'new', $4)`, i, 1+i%5, fmt.Sprintf("%d.%02d", i*3, i%100), note)
		if i%2 == 0 {
			exec(`INSERT INTO legacy.payment_infos VALUES ($1, 'card', '2026-01-02 03:04:05.123456+02')`, i)
		}
	}
	// Merge: a payment whose order arrives later, and one whose order never does.
	exec(`INSERT INTO legacy.payment_infos VALUES (41, 'cash', NULL), (500, 'iou', NULL)`)
	exec(`INSERT INTO legacy.orders VALUES (41, 2, '9.99', 'new', '')`)
	// `when` transitions: notes appear and disappear.
	exec(`UPDATE legacy.orders SET note = 'late note' WHERE id IN (1, 5)`)
	exec(`UPDATE legacy.orders SET note = '' WHERE id IN (3, 6)`)
	// Key changes and deletes of orders without payments: the old target
	// rows go, the new ones come.
	exec(`UPDATE legacy.orders SET id = id + 1000 WHERE id IN (7, 9)`)
	exec(`DELETE FROM legacy.orders WHERE id IN (11, 13)`)
	// Updates of both halves of a merged row.
	exec(`UPDATE legacy.orders SET status = 'paid', total = total + 1 WHERE id IN (2, 4, 41)`)
	exec(`UPDATE legacy.payment_infos SET method = 'wire', paid_at = '2026-03-04 05:06:07+00' WHERE order_id IN (4, 41)`)
	// A customer the new system does not know: a dead letter, not a row.
	exec(`INSERT INTO legacy.orders VALUES (99, 77, '1.00', 'new', 'lost')`)

	wantOrders, wantNotes := expectedOrders(t, src)
	var gotOrders map[int64]newOrder
	var gotNotes map[int64]string
	_, err := poll.Until(ctx, 50*time.Millisecond, time.Minute, func() (bool, error) {
		var err error
		gotOrders, gotNotes, err = actualOrders(ctx, tgt)
		return err == nil && cmp.Equal(wantOrders, gotOrders) && cmp.Equal(wantNotes, gotNotes), err
	})
	if err != nil {
		t.Fatalf("target did not converge: %v\norders (-want +got):\n%s\nnotes (-want +got):\n%s", err,
			cmp.Diff(wantOrders, gotOrders), cmp.Diff(wantNotes, gotNotes))
	}
	if _, ok := wantOrders[1007]; !ok || len(wantNotes) == 0 || wantOrders[500].PayMethod == nil {
		t.Fatalf("the workload did not exercise what it claims: %v", wantOrders)
	}

	// The order with an unknown customer is a dead letter that names the lookup.
	var mapping, reason, msg string
	if _, err := poll.Until(ctx, 50*time.Millisecond, time.Minute, func() (bool, error) {
		err := tgt.QueryRow(ctx, `SELECT mapping, reason, error FROM tandem.dead_letters`).Scan(&mapping, &reason, &msg)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil // its batch is not applied yet
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("no dead letter: %v", err)
	}
	if mapping != "legacy.orders" || reason != "transform" || !strings.Contains(msg, "lookup in public.customers: no row where legacy_id = 77") {
		t.Errorf("dead letter = %s %s %q", mapping, reason, msg)
	}

	// Once the new system knows customer 77, replaying the dead letter
	// looks it up and writes the order.
	if _, err := tgt.Exec(ctx, `INSERT INTO public.customers VALUES ($1, 77, 'late')`, customerUUID(77)); err != nil {
		t.Fatal(err)
	}
	rep, err := app.ReplayDeadLetters(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 1 || rep.Removed != 1 || len(rep.Failures) != 0 {
		t.Errorf("replay: %d rows, %d removed, failures %v; want 1, 1, none", rep.Rows, rep.Removed, rep.Failures)
	}
	gotOrders, gotNotes, err = actualOrders(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	c77, total, status, note := customerUUID(77), "1.00", "new", "lost"
	if diff := cmp.Diff(newOrder{ID: 99, CustomerID: &c77, Total: &total, Status: &status}, gotOrders[99]); diff != "" || gotNotes[99] != note {
		t.Errorf("order 99 after the replay (-want +got):\n%s; note %q", diff, gotNotes[99])
	}
	if err := run.Failed(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAndPreview_RoundTripNamesTheColumnAMappingLoses(t *testing.T) {
	ctx := context.Background()
	src, _, srcDSN, tgtDSN, slot := legacyDBs(t)
	if _, err := src.Exec(ctx, `INSERT INTO legacy.orders VALUES (1, 2, '10.50', 'new', 'fragile'), (2, 3, '7.00', 'paid', '')`); err != nil {
		t.Fatal(err)
	}
	// The inverse forgets note, and status comes back upper-cased.
	lossy := strings.Replace(legacyMappings, `        note: 'has(order_notes.note) ? order_notes.note : ""'
`, "", 1)
	lossy = strings.Replace(lossy, "        status: orders.status\n", "        status: 'orders.status == \"new\" ? \"NEW\" : orders.status'\n", 1)
	cfg := parseConfig(t, legacyConfig(slot, srcDSN, tgtDSN, lossy))
	problems, err := app.Check(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problems {
		if strings.HasPrefix(p.Object, "mapping") {
			got = append(got, fmt.Sprintf("%v %s: %s", p.Severity == preflight.Fail, p.Object, p.What))
		}
	}
	want := []string{
		`true mapping legacy.orders: round trip of source row (id=1): column note ("fragile") is lost: the inverse does not give it back (compute it in inverse.columns, or list it in inverse.ignore if the new schema drops it on purpose)`,
		`true mapping legacy.orders: round trip of source row (id=1): column status is "new" in the source but "NEW" after the round trip`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("check problems (-want +got):\n%s", diff)
	}

	var out bytes.Buffer
	clean, err := app.Preview(ctx, cfg, "legacy.orders", 5, &out)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := `mapping legacy.orders: 2 rows of legacy.orders

source legacy.orders (id=1)
  -> public.orders {customer_id="00000000-0000-4000-8000-000000000002", id=1, status="new", total="10.50"}
  -> public.order_notes {note="fragile", order_id=1}
  round trip: column note ("fragile") is lost: the inverse does not give it back (compute it in inverse.columns, or list it in inverse.ignore if the new schema drops it on purpose)
  round trip: column status is "new" in the source but "NEW" after the round trip
  diff (-source +round trip):
      change.Row{
    - 	"note":   string("fragile"),
    - 	"status": string("new"),
    + 	"status": string("NEW"),
      }

source legacy.orders (id=2)
  -> public.orders {customer_id="00000000-0000-4000-8000-000000000003", id=2, status="paid", total="7.00"}
  round trip: column note ("") is lost: the inverse does not give it back (compute it in inverse.columns, or list it in inverse.ignore if the new schema drops it on purpose)
  diff (-source +round trip):
      change.Row{
    - 	"note": string(""),
      }
`
	if diff := cmp.Diff(wantOut, normalizeDiff(out.String())); diff != "" || clean {
		t.Errorf("preview clean=%v (-want +got):\n%s", clean, diff)
	}

	// The right inverse: check passes and the preview is clean.
	cfg = parseConfig(t, legacyConfig(slot, srcDSN, tgtDSN, legacyMappings))
	if problems, err = app.Check(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Object, "mapping") {
			t.Errorf("unexpected problem: %s: %s", p.Object, p.What)
		}
	}
	out.Reset()
	if clean, err = app.Preview(ctx, cfg, "legacy.orders", 5, &out); err != nil || !clean {
		t.Errorf("preview of the right inverse: clean=%v err=%v\n%s", clean, err, out.String())
	}
	if strings.Count(out.String(), "round trip: equal") != 2 {
		t.Errorf("preview lacks two equal round trips:\n%s", out.String())
	}

	// A misspelt column is a check failure at its file:line:col.
	bad := strings.Replace(legacyMappings, "status: row.status", "status: row.state", 1)
	problems, err = app.Check(ctx, parseConfig(t, legacyConfig(slot, srcDSN, tgtDSN, bad)))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range problems {
		if p.Object == "mapping legacy.orders" && p.Severity == preflight.Fail && strings.Contains(p.What, "tandem.yaml:23:22: mappings[0].to[0].columns.status: undefined field 'state'") {
			found = true
		}
	}
	if !found {
		t.Errorf("no failure naming the misspelt column: %v", problems)
	}
}

// normalizeDiff replaces go-cmp's randomly chosen non-breaking spaces with
// spaces, so its output compares as text.
func normalizeDiff(s string) string { return strings.ReplaceAll(s, "\u00a0", " ") }
