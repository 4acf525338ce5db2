package app_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The orders mapping looks up the customer rows the customers mapping
// writes. Orders is the larger table, so largest first would copy it
// first and dead-letter every order whose customer is not copied yet; the
// backfill finds the order from the mappings and copies customers first:
// no dead letter, every order with its customer's new id.
func TestBackfill_CopiesTheTablesALookupReadsFirst(t *testing.T) {
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, srcDSN, `CREATE SCHEMA legacy;
		CREATE TABLE legacy.customers (id bigint PRIMARY KEY, name text NOT NULL);
		CREATE TABLE legacy.orders (id bigint PRIMARY KEY, customer_ref bigint NOT NULL);
		INSERT INTO legacy.customers SELECT i, 'customer ' || i FROM generate_series(1, 30) i;
		INSERT INTO legacy.orders SELECT i, 1 + i % 30 FROM generate_series(1, 3000) i;
		ANALYZE legacy.customers; ANALYZE legacy.orders`)
	execPG(t, tgtDSN, `CREATE TABLE customers (id bigint PRIMARY KEY, legacy_id bigint UNIQUE NOT NULL, name text NOT NULL);
		CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL)`)
	cfg := pgSourceConfig(t, srcDSN, "legacy.orders, legacy.customers", "postgres", tgtDSN, `backfill:
  chunk_rows: 100
  parallel: 1
mappings:
  - from: legacy.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          customer_id: 'lookup("public.customers", {"legacy_id": row.customer_ref}).id'
  - from: legacy.customers
    to:
      - table: public.customers
        key: [id]
        columns:
          id: row.id + 1000
          legacy_id: row.id
          name: row.name
`)
	sum, err := runBackfill(t, ctx, cfg, app.BackfillOptions{})
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if sum.Rows != 3030 {
		t.Errorf("copied %d rows, want 3030", sum.Rows)
	}
	store, closeStore, err := app.ListDeadLetters(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dls, err := store.DeadLetters(ctx, "", 0)
	closeStore()
	if err != nil || len(dls) != 0 {
		t.Fatalf("dead letters: %d (%v), want none: %+v", len(dls), err, dls)
	}
	got, err := pgRows(ctx, tgtDSN, `SELECT count(*)::text, count(DISTINCT customer_id)::text, min(customer_id)::text, max(customer_id)::text,
		sum(customer_id - 1000 - (1 + id % 30))::text FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"3000", "30", "1001", "1030", "0"}}, got); diff != "" {
		t.Errorf("orders and their customers (-want +got):\n%s", diff)
	}
}
