package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/reconcile"
)

// driftKey is what a test asserts of a drifted row.
type driftKey struct {
	Kind, Table string
	Key         string
	Columns     []string
}

func driftKeys(ds []reconcile.Drift) []driftKey {
	out := []driftKey{}
	for _, d := range ds {
		out = append(out, driftKey{Kind: string(d.Kind), Table: d.Table, Key: fmt.Sprint(d.Key), Columns: d.Columns})
	}
	return out
}

func TestReconcile_ReportsSeededDriftExactlyAndRepairFixesIt(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	// The trailing space seeded below is tolerated on that one column.
	yaml := strings.Replace(shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}),
		"  - from: shop.customers\n", "  - from: shop.customers\n    tolerate_columns: {public.customers.full_name: [trim_space]}\n", 1)
	// Chunks of 4 rows: several per table, most of them equal.
	yaml += "reconcile:\n  chunk_rows: 4\n"
	cfg := parseConfig(t, yaml)
	run := start(t, cfg)
	if err := (&shop.Workload{Src: m.Src, Seed: 7}).History(ctx, 60); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	run.Stop(t)

	// Seed drift into the target: a missing order, a customer with another
	// name, an extra payment, and a trailing space reconcile tolerates.
	var order, c1, c2 int64
	if err := m.Tgt.QueryRow(ctx, `SELECT min(id) FROM public.orders`).Scan(&order); err != nil {
		t.Fatal(err)
	}
	if err := m.Tgt.QueryRow(ctx, `SELECT min(id), max(id) FROM public.customers`).Scan(&c1, &c2); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		fmt.Sprintf(`DELETE FROM public.orders WHERE id = %d`, order),
		fmt.Sprintf(`UPDATE public.customers SET full_name = 'WRONG' WHERE id = %d`, c1),
		fmt.Sprintf(`UPDATE public.customers SET full_name = full_name || '  ' WHERE id = %d`, c2),
		`INSERT INTO public.payments VALUES (987654, 'card', NULL)`,
		// customers is compared by chunk summaries: a missing and an extra
		// row there, found by the rows of their chunks.
		fmt.Sprintf(`DELETE FROM public.customers WHERE id = %d`, c1+1),
		`INSERT INTO public.customers (id, full_name, email, created_at) VALUES (987654, 'Nobody', 'no@body', now())`,
	} {
		if _, err := m.Tgt.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}

	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	type counts struct{ Missing, Extra, Mismatch int }
	got := map[string]counts{}
	var samples []driftKey
	for _, mr := range res.Report.Mappings {
		got[mr.Mapping] = counts{mr.Missing, mr.Extra, mr.Mismatch}
		samples = append(samples, driftKeys(mr.Samples)...)
	}
	want := map[string]counts{"shop.customers": {1, 1, 1}, "shop.orders": {1, 1, 0}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("drift by mapping (-want +got):\n%s", diff)
	}
	wantSamples := []driftKey{
		{Kind: "mismatch", Table: "public.customers", Key: fmt.Sprintf("map[id:%d]", c1), Columns: []string{"full_name"}},
		{Kind: "missing", Table: "public.customers", Key: fmt.Sprintf("map[id:%d]", c1+1)},
		{Kind: "extra", Table: "public.customers", Key: "map[id:987654]"},
		{Kind: "missing", Table: "public.orders", Key: fmt.Sprintf("map[id:%d]", order)},
		{Kind: "extra", Table: "public.payments", Key: "map[order_id:987654]"},
	}
	if diff := cmp.Diff(wantSamples, samples); diff != "" {
		t.Errorf("drifted rows (-want +got):\n%s", diff)
	}
	if !res.Drift() {
		t.Error("Drift() is false")
	}
	checked := int64(0)
	for _, mr := range res.Report.Mappings {
		checked += mr.Checked
	}
	if checked < 120 {
		t.Errorf("only %d rows checked", checked)
	}
	// customers is copied as it is: its chunks were compared by the
	// servers' summaries, and the one with the two drifted rows row by row.
	// orders computes columns: it is never summarised.
	summarised := map[string]int64{}
	for _, mr := range res.Report.Mappings {
		summarised[mr.Mapping] = mr.Summarised
	}
	if summarised["shop.orders"] != 0 {
		t.Errorf("shop.orders: %d rows summarised, want none (its mapping computes columns)", summarised["shop.orders"])
	}
	if customers := res.Report.Mappings[0]; customers.Summarised == 0 || customers.Summarised > customers.Checked-8 {
		t.Errorf("shop.customers: %d of %d rows summarised, want some, and not the chunks of the two drifted rows",
			customers.Summarised, customers.Checked)
	}

	// Repair re-syncs the five rows; the comparison after it finds none,
	// and the target is what the source says it should be.
	res, err = app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 50 * time.Millisecond, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Drift() {
		t.Errorf("drift after repair: %+v", res.Report.Mappings)
	}
	if diff := cmp.Diff(map[string]int{"shop.customers": 3, "shop.orders": 2}, res.Repaired); diff != "" {
		t.Errorf("repaired (-want +got):\n%s", diff)
	}
	// The tolerated trailing space stays: it is not drift, so not repaired.
	var name string
	if err := m.Tgt.QueryRow(ctx, `SELECT full_name FROM public.customers WHERE id = $1`, c2).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if len(name) < 2 || name[len(name)-2:] != "  " {
		t.Errorf("the tolerated row was rewritten: %q", name)
	}
	if _, err := m.Tgt.Exec(ctx, `UPDATE public.customers SET full_name = rtrim(full_name) WHERE id = $1`, c2); err != nil {
		t.Fatal(err)
	}
	if diff, _, err := m.Diff(ctx); err != nil || diff != "" {
		t.Errorf("target after repair differs from the source (-want +got):\n%s%v", diff, err)
	}
}

// scrape reads one sample over HTTP from a running tandem.
func scrape(addr, name string, labels map[string]string) (float64, bool, error) {
	v, ok := apptest.Metric(apptest.Scraped(addr), name, labels)
	return v, ok, nil
}

func TestRun_ContinuousReconcileHasNoFalseDriftUnderWritersAndReportsRealDrift(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := newMigration(t)
	yaml := shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}) +
		"reconcile:\n  interval: 1s\n  settle: 1s\n  max_rows_per_second: -1\n"
	run := start(t, parseConfig(t, yaml))
	if err := (&shop.Workload{Src: m.Src, Seed: 3}).History(ctx, 100); err != nil {
		t.Fatal(err)
	}
	// Writers insert, update, change keys and delete while reconcile
	// sweeps: every sweep that completes meanwhile must report no drift.
	done := make(chan error, 2)
	for i := range 2 {
		go func() { done <- (&shop.Workload{Src: m.Src, Seed: uint64(20 + i)}).Run(ctx, 4000, 200) }()
	}
	sweeps := map[float64]bool{}
	writers := 2
	for writers > 0 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			writers--
		case <-time.After(200 * time.Millisecond):
		}
		last, ok, err := scrape(run.Addr, "tandem_reconcile_last_success_timestamp_seconds", map[string]string{"mapping": "shop.orders"})
		if err != nil {
			t.Fatal(err)
		}
		if !ok || last == 0 {
			continue
		}
		sweeps[last] = true
		for _, mapping := range []string{"shop.orders", "shop.customers"} {
			for _, kind := range []string{"missing", "extra", "mismatch"} {
				v, _, err := scrape(run.Addr, "tandem_drift_rows", map[string]string{"mapping": mapping, "kind": kind})
				if err != nil {
					t.Fatal(err)
				}
				if v != 0 {
					t.Fatalf("tandem_drift_rows{mapping=%s,kind=%s} = %v while writers run: a false alarm", mapping, kind, v)
				}
			}
		}
	}
	if len(sweeps) < 2 {
		t.Fatalf("only %d reconcile sweeps completed while the writers ran", len(sweeps))
	}
	waitConverged(t, m, time.Minute)

	// Real drift: an extra payment appears in the gauge.
	if _, err := m.Tgt.Exec(ctx, `INSERT INTO public.payments VALUES (987654, 'card', NULL)`); err != nil {
		t.Fatal(err)
	}
	_, err := poll.Until(ctx, 200*time.Millisecond, time.Minute, func() (bool, error) {
		v, _, err := scrape(run.Addr, "tandem_drift_rows", map[string]string{"mapping": "shop.orders", "kind": "extra"})
		return v == 1, err
	})
	if err != nil {
		t.Fatalf("tandem_drift_rows{kind=extra} never reached 1: %v", err)
	}
}

// TestReconcile_RowsTheInverseDoesNotGiveBackAreRoundTripDrift reconciles
// on real servers a mapping whose inverse loses the case of a status: the
// target is exactly what the mapping writes, yet the rows whose status
// does not come back are drift of kind round_trip, which repair leaves
// alone.
func TestReconcile_RowsTheInverseDoesNotGiveBackAreRoundTripDrift(t *testing.T) {
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, srcDSN, `CREATE SCHEMA s; CREATE TABLE s.orders (id bigint PRIMARY KEY, status text NOT NULL);
INSERT INTO s.orders SELECT g, CASE WHEN g IN (7, 30) THEN 'PAID' ELSE 'paid' END FROM generate_series(1, 40) g`)
	execPG(t, tgtDSN, `CREATE TABLE public.orders (id bigint PRIMARY KEY, state text NOT NULL);
INSERT INTO public.orders SELECT g, 'paid' FROM generate_series(1, 40) g`)
	cfg := parseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [s.orders]
  postgres: { slot: unused, publication: unused }
target:
  kind: postgres
  dsn: %q
mappings:
  - from: s.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          state: lower(row.status)
    inverse:
      columns:
        id: orders.id
        status: orders.state
`, srcDSN, tgtDSN))
	for _, repair := range []bool{false, true} {
		res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond, Repair: repair})
		if err != nil {
			t.Fatal(err)
		}
		mr := res.Report.Mappings[0]
		got := []reconcile.Drift{}
		for _, d := range mr.Samples {
			got = append(got, reconcile.Drift{Kind: d.Kind, Table: d.Table, Key: d.Key, Columns: d.Columns, Want: d.Want, Got: d.Got})
		}
		want := []reconcile.Drift{
			{Kind: reconcile.KindRoundTrip, Table: "s.orders", Key: map[string]any{"id": int64(7)}, Columns: []string{"status"},
				Want: map[string]any{"status": "PAID"}, Got: map[string]any{"status": "paid"}},
			{Kind: reconcile.KindRoundTrip, Table: "s.orders", Key: map[string]any{"id": int64(30)}, Columns: []string{"status"},
				Want: map[string]any{"status": "PAID"}, Got: map[string]any{"status": "paid"}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("repair %v: drifted rows (-want +got):\n%s", repair, diff)
		}
		if mr.RoundTrip != 2 || mr.Drift() != 2 || mr.Summarised != 0 || res.Repaired[mr.Mapping] != 0 {
			t.Errorf("repair %v: %d round trip, %d drift, %d summarised, %d repaired; want 2, 2, 0, 0",
				repair, mr.RoundTrip, mr.Drift(), mr.Summarised, res.Repaired[mr.Mapping])
		}
	}
}
