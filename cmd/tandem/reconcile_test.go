package main

import (
	"errors"
	"os"
	"path/filepath"
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

func TestPrintReport_UnmappedRowsCountsPerColumnAndRules(t *testing.T) {
	yes := true
	res := &reconcile.Result{Report: &reconcile.Report{Mappings: []reconcile.MappingReport{{
		Mapping: "shop.orders", Checked: 10, Mismatch: 3, Unmapped: 1,
		Columns: map[string]int{"public.orders.note": 1, "public.orders.status": 3},
		Rules:   map[string]int{"free_text_note": 4, "drafts": 0},
		Samples: []reconcile.Drift{
			{Kind: reconcile.KindUnmapped, Table: "shop.orders", Key: map[string]any{"id": int64(3)}, Error: "no such key: nope", DeadLetter: &yes},
		},
	}}}}
	var out strings.Builder
	printReport(&out, res)
	want := `mapping shop.orders: 10 rows checked; drift: 0 missing, 0 extra, 3 mismatch, 1 unmapped (source rows the mapping fails on); not drift: 0 in flight, 0 suspended
  drifted rows per column: public.orders.status 3, public.orders.note 1
  differences absorbed by rules: drafts 0, free_text_note 4
  unmapped shop.orders (id=3)
    error: no such key: nope
    dead letter: yes (tandem dlq list)
  ... and 3 more
drift found (the diffs read -mapped source +target)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}

func TestWriteDrifted_WritesEveryDriftedRowAsAJSONLine(t *testing.T) {
	var drifted []reconcile.Drift
	for id := range int64(25) { // more than the samples
		drifted = append(drifted, reconcile.Drift{Kind: reconcile.KindMismatch, Table: "public.orders", Key: map[string]any{"id": id},
			Columns: []string{"status"}, Want: map[string]any{"id": id, "status": "paid"}, Got: map[string]any{"id": id, "status": "new"}})
	}
	res := &reconcile.Result{Report: &reconcile.Report{Mappings: []reconcile.MappingReport{
		{Mapping: "shop.orders", Direction: reconcile.Reverse, Mismatch: 25, Samples: drifted[:10], Drifted: drifted},
		{Mapping: "shop.customers", Direction: reconcile.Forward},
	}}}
	path := filepath.Join(t.TempDir(), "drift.jsonl")
	if err := writeDrifted(path, res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 25 {
		t.Fatalf("%d lines, want 25", len(lines))
	}
	want := `{"mapping":"shop.orders","direction":"reverse","kind":"mismatch","table":"public.orders","key":{"id":24},"columns":["status"],"want":{"id":24,"status":"paid"},"got":{"id":24,"status":"new"}}`
	if diff := cmp.Diff(want, lines[24]); diff != "" {
		t.Errorf("last line (-want +got):\n%s", diff)
	}
}
