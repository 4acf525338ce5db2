package backfill

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

// A table whose mapping looks up rows another table's mapping writes is
// copied once that table is done, though it is the largest (largest first
// otherwise); a cycle of such tables is copied without waiting, not stuck.
func TestRun_CopiesTheTablesALookupReadsFirst(t *testing.T) {
	tb := func(name string) change.Table { return change.Table{Schema: "s", Name: name} }
	for _, tc := range []struct {
		name  string
		after map[change.Table][]change.Table
		check func(t *testing.T, events []string)
	}{
		{"orders after customers, payments after orders", map[change.Table][]change.Table{
			tb("orders"): {tb("customers")}, tb("payments"): {tb("orders")}},
			func(t *testing.T, events []string) {
				want := []string{"customers done", "orders first", "orders done", "payments first", "payments done"}
				var got []string
				for _, e := range events {
					if e != "big first" && e != "big done" {
						got = append(got, e)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("copy order (-want +got):\n%s", diff)
				}
			}},
		{"a cycle", map[change.Table][]change.Table{tb("orders"): {tb("customers")}, tb("customers"): {tb("orders")}},
			func(t *testing.T, events []string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []string
			first := map[string]bool{}
			sizes := map[string]int{"s.orders": 300, "s.customers": 20, "s.payments": 400, "s.big": 500}
			written := map[string]int{}
			// The first chunk of customers is held until orders writes or
			// 100ms pass: a copy that does not wait for customers writes
			// orders meanwhile, and the order shows it.
			ordersWrote := make(chan struct{})
			var once sync.Once
			runner := New(Config{Tables: tables("orders", "customers", "payments", "big"), ChunkRows: 10, Parallel: 2, After: tc.after},
				memReader{sizes: sizes}, &memStore{},
				func(_ context.Context, c Chunk) error {
					name := c.Table.Name.Name
					if name == "orders" {
						once.Do(func() { close(ordersWrote) })
					}
					if name == "customers" && c.Rows[0]["id"] == int64(1) {
						select {
						case <-ordersWrote:
						case <-time.After(100 * time.Millisecond):
						}
					}
					mu.Lock()
					defer mu.Unlock()
					if !first[name] && name != "customers" {
						first[name] = true
						events = append(events, name+" first")
					}
					written[name] += c.Len()
					if written[name] == sizes["s."+name] {
						events = append(events, name+" done")
					}
					return nil
				}, nil, nil)
			sum, err := runner.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if sum.Rows != 1220 {
				t.Errorf("copied %d rows, want 1220", sum.Rows)
			}
			tc.check(t, events)
		})
	}
}

// Without lookups the tables are copied largest first, by the reader's
// estimate, whatever their order in the config: one giant table must not
// start last and finish alone (README: "largest table first").
func TestRun_CopiesTheLargestTableFirst(t *testing.T) {
	var mu sync.Mutex
	var order []string // each table's name once, when its first chunk is written
	runner := New(Config{Tables: tables("small", "big", "empty", "mid"), ChunkRows: 10, Parallel: 1},
		memReader{sizes: map[string]int{"s.small": 5, "s.big": 30, "s.empty": 0, "s.mid": 15}}, &memStore{},
		func(_ context.Context, c Chunk) error {
			mu.Lock()
			defer mu.Unlock()
			if name := c.Table.Name.Name; !slices.Contains(order, name) {
				order = append(order, name)
			}
			return nil
		}, nil, nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"big", "mid", "small"}, order); diff != "" {
		t.Errorf("copy order (-want +got):\n%s", diff)
	}
	if sum.Rows != 50 || sum.Tables != 4 {
		t.Errorf("summary %+v, want 50 rows of 4 tables", sum)
	}
}
