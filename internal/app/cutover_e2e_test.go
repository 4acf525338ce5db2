package app_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/canary"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// canaryMigration is the canary scenario's two databases: an old side of
// kind (postgres or mysql) and a PostgreSQL new side.
type canaryMigration struct {
	kind     string
	old, new *canary.DB
	cfg      *config.Config
}

func newCanaryMigration(t *testing.T, kind, guard string) *canaryMigration {
	t.Helper()
	ctx := context.Background()
	m := &canaryMigration{kind: kind}
	newDSN := testenv.NewDatabase(t)
	var oldDSN, source string
	switch kind {
	case "postgres":
		oldDSN = testenv.NewDatabase(t)
		slot := strings.ToLower(dbOfDSN(t, oldDSN))
		slot = slot[max(0, len(slot)-50):]
		source = canary.PostgresSource(oldDSN, slot)
		from := "public.orders"
		back := slot + "_back"
		m.cfg = canaryConfig(t, source, from, newDSN, guard, back)
		t.Cleanup(func() { dropSlots(oldDSN, slot); dropSlots(newDSN, back) })
	case "mysql":
		oldDSN = testenv.NewMariaDBDatabase(t)
		c, err := mysqlurl.Parse(oldDSN)
		if err != nil {
			t.Fatal(err)
		}
		id := 5000 + serverIDCounter.Add(1)
		source = fmt.Sprintf("  kind: mysql\n  dsn: %q\n  tables: [%s.orders]\n  mysql: { server_id: %d }\n", oldDSN, c.DBName, id)
		slot := strings.ToLower(dbOfDSN(t, newDSN))
		back := slot[max(0, len(slot)-50):] + "_back"
		m.cfg = canaryConfig(t, source, c.DBName+".orders", newDSN, guard, back)
		// The old side's state is a database of the MariaDB server, which
		// other tests share: one of its own, so that their dead letters,
		// owners and heartbeats are not this migration's.
		m.cfg.Target.StateSchema = fmt.Sprintf("tandem_canary_%d", id)
		t.Cleanup(func() {
			dropSlots(newDSN, back)
			if err := testenv.SharedMariaDB(t).Exec(context.Background(), c.DBName, "DROP DATABASE IF EXISTS "+m.cfg.Target.StateSchema); err != nil {
				t.Errorf("drop the old side's state database: %v", err)
			}
		})
	}
	var err error
	if m.old, err = canary.Open(kind, oldDSN); err != nil {
		t.Fatal(err)
	}
	if m.new, err = canary.Open("postgres", newDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.old.Close(); m.new.Close() })
	for _, s := range strings.Split(canary.OldDDL[kind], ";") {
		if _, err := m.old.ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.new.ExecContext(ctx, canary.NewDDL); err != nil {
		t.Fatal(err)
	}
	return m
}

// canaryConfig is the canary migration's tandem.yaml.
func canaryConfig(t *testing.T, source, from, newDSN, guard, back string) *config.Config {
	t.Helper()
	return parseConfig(t, canary.Config(canary.ConfigOptions{Source: source, From: from, NewDSN: newDSN, Back: back, Guard: guard}))
}

// dropSlots drops the inactive replication slots of the database of dsn.
func dropSlots(dsn, slot string) {
	db, err := canary.Open("postgres", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
}

// switchCohorts switches cohorts (to the new side, or back), retrying
// while a gate refuses (a reconcile that meets rows still in flight, a
// heartbeat not yet written), and returns the switch's result.
func switchCohorts(t *testing.T, cfg *config.Config, opts app.SwitchOptions) {
	t.Helper()
	var last error
	_, err := poll.Until(context.Background(), 200*time.Millisecond, 90*time.Second, func() (bool, error) {
		res, err := app.Switch(context.Background(), cfg, opts)
		if errors.Is(err, app.ErrSwitchRefused) {
			if last == nil || last.Error() != err.Error() {
				st, serr := app.ReadStatus(context.Background(), cfg)
				t.Logf("switch refused: %v; streams: %+v (%v)", err, st.Streams, serr)
			}
			last = err
			return false, nil
		}
		if err == nil {
			t.Logf("switched %v (back %v): fenced %s", res.Cohorts, opts.Back, res.Fenced)
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("switch %v (back %v): %v (last refusal: %v)", opts.Cohorts, opts.Back, err, last)
	}
}

// owners reads the cohorts' owners of both databases through tandem status.
func owners(t *testing.T, cfg *config.Config) map[string]string {
	t.Helper()
	st, err := app.ReadStatus(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range st.Cohorts {
		out[c.Cohort] = c.Owner
	}
	return out
}

func TestCutover_CanaryMerchantsSwitchOneAtATimeRollBackAndAllWithThreeWriters(t *testing.T) {
	t.Parallel() // the longest tests of the package, on databases of their own: beside each other
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run(kind+"_to_postgres", func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			m := newCanaryMigration(t, kind, config.GuardReject)
			run := start(t, m.cfg)
			a := canary.NewApp(m.old, m.new, m.cfg.Target.StateSchema)
			a.Start(canary.Load{PerSecond: 170, Writers: 3}) // what 3 writers each sleeping 10 ms between writes achieved
			defer func() {
				if err := a.Stop(); err != nil {
					t.Error(err)
				}
			}()
			forwardEvents := func() float64 {
				v, _ := apptest.Metric(run.Reg, "tandem_capture_events_total", nil)
				return v
			}
			step := func(name string, opts *app.SwitchOptions, want map[string]string) {
				t.Helper()
				before := a.OldOps.Load() + a.NewOps.Load()
				testenv.WaitFor(t, "the writers to write", 30*time.Second, func() (bool, error) {
					return a.OldOps.Load()+a.NewOps.Load() > before+30, a.Err()
				})
				if opts != nil {
					switchCohorts(t, m.cfg, *opts) // the writers go on through it
				}
				resume := a.Pause()
				defer resume()
				if err := a.Converged(ctx, 60*time.Second); err != nil {
					for _, n := range []string{"tandem_dlq_events_total", "tandem_apply_errors_total", "tandem_cutover_misrouted_writes_total", "tandem_apply_rows_total"} {
						v, _ := apptest.Metric(run.Reg, n, nil)
						t.Logf("%s = %v", n, v)
					}
					t.Fatalf("after %s: %v", name, err)
				}
				if diff := cmp.Diff(want, owners(t, m.cfg)); diff != "" {
					t.Errorf("after %s: owners (-want +got):\n%s", name, diff)
				}
				// No echo: the forward capture saw exactly the application's
				// writes on the old side, none of the reverse stream's.
				testenv.WaitFor(t, "the forward capture to count the old side's writes", 30*time.Second, func() (bool, error) {
					return forwardEvents() == float64(a.OldOps.Load()), nil
				})
				t.Logf("after %s: %d writes on the old side, %d on the new, %d refused and retried", name, a.OldOps.Load(), a.NewOps.Load(), a.Refused.Load())
			}
			step("the writers' start", nil, map[string]string{})
			step("switching merchant 1", &app.SwitchOptions{Cohorts: []string{"1"}}, map[string]string{"1": "new"})
			step("switching merchant 2", &app.SwitchOptions{Cohorts: []string{"2"}}, map[string]string{"1": "new", "2": "new"})
			step("switching merchant 3", &app.SwitchOptions{Cohorts: []string{"3"}}, map[string]string{"1": "new", "2": "new", "3": "new"})
			step("rolling merchant 2 back", &app.SwitchOptions{Cohorts: []string{"2"}, Back: true}, map[string]string{"1": "new", "2": "old", "3": "new"})
			all := map[string]string{}
			for i := 1; i <= canary.Merchants; i++ {
				all[fmt.Sprint(i)] = "new"
			}
			step("switching all", &app.SwitchOptions{All: true}, all)
			if a.NewOps.Load() == 0 {
				t.Error("no write went to the new side")
			}
		})
	}
}

// ownersStored reads both databases' owner rows of the cohorts as
// "<old>/<new>", for asserting that a refused switch changed nothing.
func ownersStored(t *testing.T, m *canaryMigration) map[string]string {
	t.Helper()
	read := func(db *canary.DB) map[string]string {
		rows, err := db.QueryContext(context.Background(), `SELECT cohort, owner, version FROM tandem.cohorts ORDER BY cohort`)
		if err != nil {
			if strings.Contains(err.Error(), "exist") {
				return nil
			}
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var c, o string
			var v int64
			if err := rows.Scan(&c, &o, &v); err != nil {
				t.Fatal(err)
			}
			out[c] = fmt.Sprintf("%s@%d", o, v)
		}
		return out
	}
	out := map[string]string{}
	for c, o := range read(m.old) {
		out["old:"+c] = o
	}
	for c, o := range read(m.new) {
		out["new:"+c] = o
	}
	return out
}

func TestCutover_EachGateRefusesWithItsReasonAndChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newCanaryMigration(t, "postgres", config.GuardReject)
	refuse := func(name, wantReason string) {
		t.Helper()
		before := ownersStored(t, m)
		_, err := app.Switch(ctx, m.cfg, app.SwitchOptions{Cohorts: []string{"1"}})
		if !errors.Is(err, app.ErrSwitchRefused) || !strings.Contains(err.Error(), wantReason) {
			t.Fatalf("%s: switch = %v, want a refusal saying %q", name, err, wantReason)
		}
		if diff := cmp.Diff(before, ownersStored(t, m)); diff != "" {
			t.Errorf("%s: the refused switch changed the owners (-before +after):\n%s", name, diff)
		}
	}
	// No stream has run: the lag gate refuses.
	refuse("no tandem running", "forward lag: the forward stream of mapping public.orders has never run")

	run := start(t, m.cfg)
	if _, err := m.old.ExecContext(ctx, `INSERT INTO orders VALUES (1, 1, 100, 'new', 'card'), (2, 1, 200, 'new', ''), (3, 2, 300, 'paid', 'cash')`); err != nil {
		t.Fatal(err)
	}
	// A row only the new schema has is drift: the reconcile gate refuses.
	unguarded(t, m.new, `INSERT INTO orders VALUES (99, 1, 5, 'stray')`)
	refuse("drift", "reconcile: reconcile finds 1 drifted rows in cohorts 1")
	unguarded(t, m.new, `DELETE FROM orders WHERE id = 99`)
	// A change the target refuses is a dead letter: the gate refuses.
	if _, err := m.new.ExecContext(ctx, `ALTER TABLE orders ADD CONSTRAINT no_bad CHECK (state <> 'bad')`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.old.ExecContext(ctx, `INSERT INTO orders VALUES (4, 3, 400, 'bad', '')`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the refused row's dead letter", 30*time.Second, func() (bool, error) {
		v, _ := apptest.Metric(run.Reg, "tandem_dlq_events_total", nil)
		return v == 1, nil
	})
	refuse("a dead letter", "dead letters: 1 dead letters stored in the target database")
	if _, err := m.old.ExecContext(ctx, `DELETE FROM orders WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	dropDeadLetters(t, m)

	// A fence timeout too short for the drain undoes the switch.
	short := *m.cfg
	cut := *short.Cutover
	cut.FenceTimeout = time.Microsecond
	short.Cutover = &cut
	_, err := app.Switch(ctx, &short, app.SwitchOptions{Cohorts: []string{"1"}})
	if !errors.Is(err, app.ErrSwitchRefused) || !strings.Contains(err.Error(), "fence_timeout") {
		t.Fatalf("switch with a 1µs fence timeout = %v, want a refusal naming cutover.fence_timeout", err)
	}
	if got := owners(t, m.cfg)["1"]; got != "old" {
		t.Errorf("after the undone switch merchant 1 is owned by %q, want old", got)
	}

	// Every gate passes: merchant 1 moves, and the application's writes
	// follow it.
	switchCohorts(t, m.cfg, app.SwitchOptions{Cohorts: []string{"1"}})
	if diff := cmp.Diff(map[string]string{"1": "new"}, owners(t, m.cfg)); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	// A write on the side that does not own its cohort is refused (guard: reject).
	_, err = m.old.ExecContext(ctx, `UPDATE orders SET amount_cents = 1 WHERE id = 1`)
	if err == nil || !strings.Contains(err.Error(), "cohort") {
		t.Errorf("an update of merchant 1's order on the old side = %v, want the guard's refusal", err)
	}

	// A merged old row is kept whole when one of its new parts is deleted,
	// and deleted with the part it comes from.
	exec := func(db *canary.DB, stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := db.ExecContext(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	exec(m.new, `DELETE FROM payments WHERE order_id = 1`, `UPDATE orders SET state = 'paid' WHERE id = 2`)
	wantOld := []canary.Order{
		{ID: 1, Merchant: 1, Amount: 100, Status: "new", Method: ""},
		{ID: 2, Merchant: 1, Amount: 200, Status: "paid", Method: ""},
		{ID: 3, Merchant: 2, Amount: 300, Status: "paid", Method: "cash"},
	}
	waitOld(t, m, wantOld)
	exec(m.new, `INSERT INTO payments VALUES (2, 1, 'wire')`, `DELETE FROM payments WHERE order_id = 2`, `INSERT INTO payments VALUES (2, 1, 'card')`)
	wantOld[1].Method = "card"
	waitOld(t, m, wantOld)
	exec(m.new, `DELETE FROM orders WHERE id = 1`)
	waitOld(t, m, wantOld[1:])

	// Reconcile compares each cohort the way its owner writes it: merchant
	// 2's row forward (the old side is the truth), merchant 1's through the
	// inverse (the new side is), and repair sets each right from its
	// owner's side.
	unguarded(t, m.old, `UPDATE orders SET amount_cents = 777 WHERE id = 2`) // merchant 1: the forward stream drops it
	unguarded(t, m.new, `UPDATE orders SET amount_cents = 1 WHERE id = 3`)   // merchant 2: the reverse stream drops it
	type drifted struct {
		Direction, Kind, Cohort, Table string
		Key                            map[string]any
		Columns                        []string
		Want, Got                      any
	}
	var got []drifted
	testenv.WaitFor(t, "both drifted rows to be seen by a reconcile", 30*time.Second, func() (bool, error) {
		res, err := app.Reconcile(ctx, m.cfg, app.ReconcileOptions{Settle: time.Millisecond})
		if err != nil {
			return false, err
		}
		got = nil
		for _, mr := range res.Report.Mappings {
			for _, d := range mr.Drifted {
				got = append(got, drifted{mr.Direction, string(d.Kind), d.Cohort, d.Table, d.Key, d.Columns, d.Want["amount_cents"], d.Got["amount_cents"]})
			}
		}
		return res.Report.Drift() == 2, nil
	})
	wantDrift := []drifted{
		{"forward", "mismatch", "2", "orders", map[string]any{"id": int64(3)}, []string{"amount_cents"}, int64(300), int64(1)},
		{"reverse", "mismatch", "1", "public.orders", map[string]any{"id": int64(2)}, []string{"amount_cents"}, int64(200), int64(777)},
	}
	if diff := cmp.Diff(wantDrift, got); diff != "" {
		t.Errorf("drifted rows (-want +got):\n%s", diff)
	}
	// tandem status shows the last sweep's counts, both ways.
	st, err := app.ReadStatus(ctx, m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	gotCounts := map[string]int{}
	for _, d := range st.Drift {
		gotCounts[d.Mapping+" "+d.Kind] = d.Rows
	}
	wantCounts := map[string]int{}
	for _, mapping := range []string{"public.orders", "reverse:public.orders"} {
		for _, kind := range []string{"missing", "extra", "mismatch", "round_trip", "unmapped"} {
			wantCounts[mapping+" "+kind] = 0
		}
		wantCounts[mapping+" mismatch"] = 1
	}
	if diff := cmp.Diff(wantCounts, gotCounts); diff != "" {
		t.Errorf("tandem status's drift (-want +got):\n%s", diff)
	}
	res, err := app.Reconcile(ctx, m.cfg, app.ReconcileOptions{Repair: true, Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"public.orders": 1, "reverse:public.orders": 1}, res.Repaired); diff != "" || res.Report.Drift() != 0 {
		t.Errorf("repair: %d rows drifted after it; rows repaired (-want +got):\n%s", res.Report.Drift(), diff)
	}
	orders, _, err := m.new.NewRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []canary.NewOrder{{ID: 2, Merchant: 1, Amount: 200, State: "paid"}, {ID: 3, Merchant: 2, Amount: 300, State: "paid"}}
	if diff := cmp.Diff(want, orders); diff != "" {
		t.Errorf("new orders after a repair (-want +got):\n%s", diff)
	}
	waitOld(t, m, wantOld[1:])
}

// waitOld polls until the old orders table holds want.
func waitOld(t *testing.T, m *canaryMigration, want []canary.Order) {
	t.Helper()
	var got []canary.Order
	_, err := poll.Until(context.Background(), 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		var err error
		got, err = m.old.OldOrders(context.Background())
		return cmp.Equal(want, got), err
	})
	if err != nil {
		t.Fatalf("old orders: %v (-want +got):\n%s", err, cmp.Diff(want, got))
	}
}

// dropDeadLetters removes the dead letters stored in the new database.
func dropDeadLetters(t *testing.T, m *canaryMigration) {
	t.Helper()
	if _, err := m.new.ExecContext(context.Background(), `DELETE FROM tandem.dead_letters`); err != nil {
		t.Fatal(err)
	}
}

// unguarded runs stmt on a PostgreSQL database with its triggers off (the
// guard's too), as a hand-made fix would.
func unguarded(t *testing.T, db *canary.DB, stmt string) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, s := range []string{`SET LOCAL session_replication_role = replica`, stmt} {
		if _, err := tx.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestCutover_SplitRolesOnAnExternalKafkaSwitchAndRollBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newCanaryMigration(t, "postgres", config.GuardReject)
	cluster := externalKafka(t)
	m.cfg.Kafka.Brokers = cluster.ListenAddrs()
	startWith(t, m.cfg, app.Roles{Capture: true})
	startWith(t, m.cfg, app.Roles{Apply: true})
	a := canary.NewApp(m.old, m.new, m.cfg.Target.StateSchema)
	a.Start(canary.Load{PerSecond: 140, Writers: 2}) // what 2 writers each sleeping 10 ms between writes achieved
	defer func() {
		if err := a.Stop(); err != nil {
			t.Error(err)
		}
	}()
	for _, back := range []bool{false, true} {
		before := a.OldOps.Load() + a.NewOps.Load()
		testenv.WaitFor(t, "the writers to write", 30*time.Second, func() (bool, error) {
			return a.OldOps.Load()+a.NewOps.Load() > before+30, a.Err()
		})
		switchCohorts(t, m.cfg, app.SwitchOptions{Cohorts: []string{"1", "2"}, Back: back})
		resume := a.Pause()
		if err := a.Converged(ctx, 60*time.Second); err != nil {
			resume()
			t.Fatalf("after the switch (back %v): %v", back, err)
		}
		resume()
	}
	if a.NewOps.Load() == 0 {
		t.Error("no write went to the new side")
	}
}

// With guard: report, a write on the side that does not own its cohort
// goes through, is recorded, and counts once in
// tandem_cutover_misrouted_writes_total{cohort,side}, the counter
// TandemMisroutedWrites alerts on: the value, not only the series.
func TestCutover_GuardReportCountsEachMisroutedWriteOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newCanaryMigration(t, "postgres", config.GuardReport)
	run := start(t, m.cfg)
	misrouted := func(cohort, side string) float64 {
		v, _ := apptest.Metric(run.Reg, "tandem_cutover_misrouted_writes_total", map[string]string{"cohort": cohort, "side": side})
		return v
	}
	// Merchant 1 is owned by the old side: a write of it on the new side is
	// misrouted, and with guard: report it is made.
	if _, err := m.new.ExecContext(ctx, `INSERT INTO orders VALUES (98, 1, 5, 'stray')`); err != nil {
		t.Fatalf("a misrouted write under guard: report: %v", err)
	}
	testenv.WaitFor(t, "the misrouted write counted", 30*time.Second, func() (bool, error) {
		return misrouted("1", "new") == 1, nil
	})
	if _, err := m.new.ExecContext(ctx, `UPDATE orders SET state = 'stray2' WHERE id = 98`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the second misrouted write counted", 30*time.Second, func() (bool, error) {
		return misrouted("1", "new") == 2, nil
	})
	// A write on the owning side is no misrouted write; the counts stay.
	if _, err := m.old.ExecContext(ctx, `INSERT INTO orders VALUES (1, 1, 100, 'new', 'card')`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the owning side's write applied", 30*time.Second, func() (bool, error) {
		var n int
		err := m.new.QueryRowContext(ctx, `SELECT count(*) FROM orders WHERE id = 1`).Scan(&n)
		return n == 1, err
	})
	if got := map[string]float64{"1/new": misrouted("1", "new"), "1/old": misrouted("1", "old")}; !cmp.Equal(got, map[string]float64{"1/new": 2, "1/old": 0}) {
		t.Errorf("misrouted writes = %v, want 2 on the new side and none on the old", got)
	}
}
