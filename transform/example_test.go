package transform_test

import (
	"context"
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/transform"
)

// A payment deleted in the new schema takes the payment out of the old
// order, which stays.
func ExampleReverse_Writes() {
	cfg, err := config.Parse("tandem.yaml", []byte(`source: {kind: postgres, dsn: "postgres://h/db", tables: [shop.orders]}
target: {kind: postgres, dsn: "postgres://h/db"}
mappings:
  - from: shop.orders
    cohort: row.merchant_id
    to:
      - table: public.orders
        key: [id]
        columns: {id: row.id, merchant_id: row.merchant_id}
      - table: public.payments
        key: [order_id]
        when: row.payment_method != ""
        columns: {order_id: row.id, merchant_id: row.merchant_id, kind: row.payment_method}
    inverse:
      columns:
        id: orders.id
        merchant_id: orders.merchant_id
        payment_method: '"kind" in payments ? payments.kind : ""'
`), nil)
	if err != nil {
		panic(err)
	}
	m, err := transform.Compile(0, cfg.Mappings[0], transform.WithCohorts())
	if err != nil {
		panic(err)
	}
	back, err := transform.NewReverse(m, []string{"id"})
	if err != nil {
		panic(err)
	}
	// The new schema now: order 1 of merchant 7, and no payment.
	current := func(_ context.Context, table string, key map[string]any) (map[string]any, bool, error) {
		if table == "public.orders" && key["id"] == int64(1) {
			return map[string]any{"id": int64(1), "merchant_id": int64(7)}, true, nil
		}
		return nil, false, nil
	}
	ev := &change.Event{Op: change.OpDelete, Before: change.Row{"order_id": int64(1), "merchant_id": int64(7), "kind": "card"}}
	ws, err := back.Writes(context.Background(), "public.payments", ev, current)
	if err != nil {
		panic(err)
	}
	for _, w := range ws {
		fmt.Println(w.Op, w.Table, w.Row, "cohort", w.Cohort)
	}
	// Output: upsert shop.orders map[id:1 merchant_id:7 payment_method:] cohort 7
}
