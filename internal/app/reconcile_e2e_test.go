package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
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

// The rules e2e test: a target whose trigger changes what the stream
// writes in known ways, declared as rules.
const (
	rulesSourceDDL = `CREATE SCHEMA s; CREATE TABLE s.orders (id bigint PRIMARY KEY, status text NOT NULL, note text NOT NULL, total numeric(10,2) NOT NULL)`
	// The trigger appends to every note (free_text_note), adds a cent to
	// even ids (cents_rounding), upper-cases the status of every fifth
	// (status_case), zeroes the totals of drafts (drafts) and adds 50
	// cents to order 13: the one real difference.
	rulesTargetDDL = `CREATE TABLE public.orders (id bigint PRIMARY KEY, status text NOT NULL, note text NOT NULL, total_cents bigint NOT NULL);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.note := NEW.note || ' (migrated)';
  IF NEW.id % 2 = 0 THEN NEW.total_cents := NEW.total_cents + 1; END IF;
  IF NEW.status = 'draft' THEN NEW.total_cents := 0; END IF;
  IF NEW.id % 5 = 0 THEN NEW.status := upper(NEW.status); END IF;
  IF NEW.id = 13 THEN NEW.total_cents := NEW.total_cents + 50; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON public.orders FOR EACH ROW EXECUTE FUNCTION public.touch()`
	// rulesMariaDBTrigger is the same trigger in MariaDB, which takes one
	// event per trigger: %s is INSERT or UPDATE.
	rulesMariaDBTrigger = `CREATE TRIGGER touch_%[1]s BEFORE %[1]s ON orders FOR EACH ROW
BEGIN
  SET NEW.note = CONCAT(NEW.note, ' (migrated)');
  IF NEW.id %% 2 = 0 THEN SET NEW.total_cents = NEW.total_cents + 1; END IF;
  IF NEW.status = 'draft' THEN SET NEW.total_cents = 0; END IF;
  IF NEW.id %% 5 = 0 THEN SET NEW.status = UPPER(NEW.status); END IF;
  IF NEW.id = 13 THEN SET NEW.total_cents = NEW.total_cents + 50; END IF;
END`
	// 20 orders: 3 and 6 upper-case (their status comes back lower-case
	// through the inverse), 7 without a note (it comes back NULL), 15 and
	// 16 drafts.
	rulesRows = `INSERT INTO s.orders SELECT g,
  CASE WHEN g IN (3, 6) THEN 'PAID' WHEN g IN (15, 16) THEN 'DRAFT' ELSE 'paid' END,
  CASE WHEN g = 7 THEN '' ELSE 'n' || g END, g + 0.5 FROM generate_series(1, 20) g`
	// rulesMapping and rulesRules are formats: %[1]s is the target table
	// (public.orders, or orders in the MariaDB database).
	rulesMapping = `mappings:
  - from: s.orders
    to:
      - table: %[1]s
        key: [id]
        columns:
          id: row.id
          status: lower(row.status)
          note: row.note
          total_cents: int(double(row.total) * 100.0)
    inverse:
      columns:
        id: orders.id
        status: orders.status
        note: 'orders.note == "" ? null : orders.note'
      ignore: [total]
`
	rulesRules = `    rules:
      - { name: free_text_note, ignore_column: %[1]s.note }
      - { name: cents_rounding, column: %[1]s.total_cents, equal: 'abs(source - target) <= 1' }
      - { name: status_case, column: %[1]s.status, equal: 'lower(source) == lower(target)' }
      - { name: drafts, ignore_rows: 'row.status == "DRAFT"' }
`
)

// rulesTarget is a target of the rules test: the config's target kind,
// its DSN, and the table the mapping writes, with the trigger on it.
type rulesTarget struct{ kind, dsn, table string }

func rulesPostgresTarget(t *testing.T) rulesTarget {
	dsn := testenv.NewDatabase(t)
	execPG(t, dsn, rulesTargetDDL)
	return rulesTarget{kind: "postgres", dsn: dsn, table: "public.orders"}
}

func rulesMariaDBTarget(t *testing.T) rulesTarget {
	dsn := testenv.NewMariaDBDatabase(t)
	db := openMySQL(t, dsn)
	for _, stmt := range []string{
		"CREATE TABLE orders (id BIGINT PRIMARY KEY, status TEXT NOT NULL, note TEXT NOT NULL, total_cents BIGINT NOT NULL) CHARACTER SET utf8mb4",
		fmt.Sprintf(rulesMariaDBTrigger, "INSERT"),
		fmt.Sprintf(rulesMariaDBTrigger, "UPDATE"),
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return rulesTarget{kind: "mysql", dsn: dsn, table: "orders"}
}

// TestReconcile_RulesAbsorbKnownDifferencesInReverificationSweepAndRoundTrip
// streams 20 orders from PostgreSQL into a target (PostgreSQL, MariaDB)
// whose trigger changes them in ways the mapping's rules declare, and one
// way no rule covers (order 13). The re-verification of the applied rows,
// then a sweep with its round trip, report only order 13, and the sweep
// counts what each rule absorbed; without the rules, every order drifts.
func TestReconcile_RulesAbsorbKnownDifferencesInReverificationSweepAndRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(*testing.T) rulesTarget
	}{{"postgres", rulesPostgresTarget}, {"mariadb", rulesMariaDBTarget}} {
		t.Run(tc.name, func(t *testing.T) { testRules(t, tc.target(t)) })
	}
}

// testRules runs the rules test against tgt, from a new PostgreSQL source.
func testRules(t *testing.T, tgt rulesTarget) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srcDSN := testenv.NewDatabase(t)
	src, err := pgxpool.New(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	execPG(t, srcDSN, rulesSourceDDL)
	head := fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [s.orders]
  postgres: { slot: %s, publication: %[2]s }
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
reconcile:
  interval: 1h
  settle: 10ms
  max_rows_per_second: -1
`, srcDSN, slotFor(t, &shop.Migration{Src: src}), tgt.kind, tgt.dsn)
	mapping := fmt.Sprintf(rulesMapping, tgt.table)
	cfg := parseConfig(t, head+mapping+fmt.Sprintf(rulesRules, tgt.table))

	checkRulesReverification(ctx, t, cfg, srcDSN)
	checkRulesSweep(ctx, t, cfg, tgt.table)

	// Without the rules every order drifts.
	res, err := app.Reconcile(ctx, parseConfig(t, head+mapping), app.ReconcileOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if mr := res.Report.Mappings[0]; mr.Drift() != 20 || mr.Mismatch != 20 {
		t.Errorf("without the rules: %d drifted (%d mismatch), want 20", mr.Drift(), mr.Mismatch)
	}
}

// checkRulesReverification runs the stream, writes the 20 orders, and
// checks that re-verifying them (no sweep runs within the hour) reports
// order 13 only, and that the run exports each rule's metric.
func checkRulesReverification(ctx context.Context, t *testing.T, cfg *config.Config, srcDSN string) {
	t.Helper()
	run := start(t, cfg)
	defer run.Stop(t)
	execPG(t, srcDSN, rulesRows)
	metric := func(name string, labels map[string]string) float64 {
		v, _ := apptest.Metric(run.Reg, name, labels)
		return v
	}
	orders := map[string]string{"mapping": "s.orders"}
	if _, err := poll.Until(ctx, 20*time.Millisecond, time.Minute, func() (bool, error) {
		return metric("tandem_reconcile_rows_checked_total", orders) >= 20, run.Failed()
	}); err != nil {
		t.Fatalf("the applied orders were not re-verified: %v", err)
	}
	verified := map[string]float64{}
	for _, kind := range []string{"missing", "extra", "mismatch", "unmapped"} {
		verified[kind] = metric("tandem_drift_rows", map[string]string{"mapping": "s.orders", "kind": kind})
	}
	if diff := cmp.Diff(map[string]float64{"missing": 0, "extra": 0, "mismatch": 1, "unmapped": 0}, verified); diff != "" {
		t.Errorf("tandem_drift_rows after re-verification (-want +got):\n%s", diff)
	}
	for _, rule := range []string{"free_text_note", "cents_rounding", "status_case", "drafts"} { // exported before a sweep
		if _, ok := apptest.Metric(run.Reg, "tandem_reconcile_rule_rows", map[string]string{"mapping": "s.orders", "rule": rule}); !ok {
			t.Errorf("a run does not export tandem_reconcile_rule_rows{rule=%s}", rule)
		}
	}
}

// checkRulesSweep sweeps with the round trip: order 13 only, and each
// rule's count, in the report and in tandem_reconcile_rule_rows.
func checkRulesSweep(ctx context.Context, t *testing.T, cfg *config.Config, table string) {
	t.Helper()
	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	mr := res.Report.Mappings[0]
	type result struct {
		Missing, Extra, Mismatch, RoundTrip, Unmapped int
		Columns, Rules                                map[string]int
		Drifted                                       []reconcile.Drift
	}
	want := result{Mismatch: 1, Columns: map[string]int{table + ".total_cents": 1},
		// The drafts 15 and 16 drift by their totals (drafts), and count for
		// no other rule. free_text_note: the 18 other notes, and order 7's
		// round trip; cents_rounding: the even orders but 16; status_case:
		// orders 5, 10, 20, and 3 and 6 in the round trip.
		Rules: map[string]int{"free_text_note": 19, "cents_rounding": 9, "status_case": 5, "drafts": 2},
		Drifted: []reconcile.Drift{{Kind: reconcile.KindMismatch, Table: table, Key: map[string]any{"id": int64(13)},
			SourceKey: change.Row{"id": int64(13)}, Columns: []string{"total_cents"},
			Want: map[string]any{"id": int64(13), "status": "paid", "note": "n13", "total_cents": int64(1350)},
			Got:  map[string]any{"id": int64(13), "status": "paid", "note": "n13 (migrated)", "total_cents": int64(1400)}}}}
	got := result{mr.Missing, mr.Extra, mr.Mismatch, mr.RoundTrip, mr.Unmapped, mr.Columns, mr.Rules, mr.Drifted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sweep (-want +got):\n%s", diff)
	}
	reg := prometheus.NewRegistry()
	if _, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond, Metrics: reconcile.NewMetrics(reg)}); err != nil {
		t.Fatal(err)
	}
	for rule, n := range want.Rules {
		if v, _ := apptest.Metric(reg, "tandem_reconcile_rule_rows", map[string]string{"mapping": "s.orders", "rule": rule}); v != float64(n) {
			t.Errorf("tandem_reconcile_rule_rows{rule=%s} = %v, want %d", rule, v, n)
		}
	}
}
