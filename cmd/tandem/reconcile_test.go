package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/reconcile"
)

func TestPrintReport_CountsDriftSamplesAndChecks(t *testing.T) {
	res := &reconcile.Result{
		Report: &reconcile.Report{Mappings: []reconcile.MappingReport{
			{Mapping: "shop.customers", Checked: 120, Summarised: 96, Mismatch: 1, InFlight: 2, Samples: []reconcile.Drift{
				{Kind: reconcile.KindMismatch, Table: "public.customers", Key: map[string]any{"id": int64(1)}, Columns: []string{"full_name"},
					Want: map[string]any{"id": int64(1), "full_name": "Ann"}, Got: map[string]any{"id": int64(1), "full_name": "WRONG"}},
			}},
			{Mapping: "shop.orders", Checked: 80, Missing: 3, RoundTrip: 1, Samples: []reconcile.Drift{
				{Kind: reconcile.KindRoundTrip, Table: "shop.orders", Key: map[string]any{"id": int64(5)}, Columns: []string{"status"},
					Want: map[string]any{"status": "PAID"}, Got: map[string]any{"status": "paid"}},
			}},
		}},
		Checks:   []reconcile.CheckResult{{Name: "orders_total", Source: 10, Target: 10}, {Name: "broken", Err: errors.New("no such table")}},
		Repaired: map[string]int{"shop.orders": 2},
	}
	var out strings.Builder
	printReport(&out, res)
	want := `mapping shop.customers: 120 rows checked (96 by chunk summaries); drift: 0 missing, 0 extra, 1 mismatch; not drift: 2 in flight, 0 suspended
  mismatch public.customers (id=1) columns full_name
      map[string]any{
    - 	"full_name": string("Ann"),
    + 	"full_name": string("WRONG"),
      	"id":        int64(1),
      }
mapping shop.orders: 80 rows checked; drift: 3 missing, 0 extra, 0 mismatch, 1 not given back by the inverse; not drift: 0 in flight, 0 suspended; repaired 2 rows before this comparison
  round_trip shop.orders (id=5) columns status
      map[string]any{
    - 	"status": string("PAID"),
    + 	"status": string("paid"),
      }
  ... and 3 more
check orders_total: ok (10)
check broken: FAILED: no such table
drift found (the diffs read -mapped source +target; for round_trip, -source +what the inverse gives back)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
