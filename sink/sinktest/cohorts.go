package sinktest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
)

// CohortTarget is a Target whose sink keeps cutover's state
// (sink.CohortStore), with what the cutover subtests need of its database.
type CohortTarget interface {
	Target
	// App opens a plain session on the target database, as the
	// application's, closed when t ends.
	App(t *testing.T) AppSession
	// LockWaits counts the sessions on the target database that wait
	// for a lock.
	LockWaits(t *testing.T) int
	// GuardRefusal reports whether err is a guard trigger's refusal (its
	// SQLSTATE).
	GuardRefusal(err error) bool
}

// CohortHarness is a Harness whose targets are CohortTargets.
type CohortHarness interface {
	Harness
	// Ident quotes a table or column name for the database's SQL.
	Ident(name string) string
}

// AppSession is one connection of the application to the target.
type AppSession interface {
	// Exec runs one statement, committed on its own.
	Exec(ctx context.Context, sql string) error
	// SetOrigin makes the session one of tandem's sinks' (a replication
	// origin set up, @tandem_origin set), which the guards let through.
	SetOrigin(t *testing.T)
}

// cohortTarget makes a target and its sink's CohortStore, failing t when
// the harness or the sink lacks them.
func cohortTarget(t *testing.T, h Harness, ddl string) (CohortTarget, sink.CohortStore) {
	t.Helper()
	tg, ok := h.NewTarget(t, ddl).(CohortTarget)
	if !ok {
		t.Fatalf("the harness's target is not a sinktest.CohortTarget")
	}
	cs, ok := tg.Sink().(sink.CohortStore)
	if !ok {
		t.Fatalf("%T is not a sink.CohortStore", tg.Sink())
	}
	return tg, cs
}

// ignoreClock leaves out what the database's clock sets.
var ignoreClock = cmp.Options{
	cmpopts.IgnoreFields(sink.Ownership{}, "ChangedAt"),
	cmpopts.IgnoreFields(sink.Heartbeat{}, "Updated"),
	cmpopts.IgnoreFields(sink.Misrouted{}, "At"),
	cmpopts.EquateEmpty(),
}

// wantCohorts fails t unless the stored owners are want (but ChangedAt,
// which must be set).
func wantCohorts(t *testing.T, cs sink.CohortStore, want []sink.Ownership) {
	t.Helper()
	got, err := cs.Cohorts(t.Context())
	if err != nil {
		t.Fatalf("Cohorts: %v", err)
	}
	for _, o := range got {
		if o.ChangedAt.IsZero() {
			t.Errorf("cohort %s: no ChangedAt", o.Cohort)
		}
	}
	if diff := cmp.Diff(want, got, ignoreClock); diff != "" {
		t.Errorf("Cohorts (-want +got):\n%s", diff)
	}
}

// wantMisrouted fails t unless the recorded misrouted writes are want
// (but At, which must be set), IDs ascending.
func wantMisrouted(t *testing.T, cs sink.CohortStore, want []sink.Misrouted) {
	t.Helper()
	got, err := cs.Misrouted(t.Context(), 0, 0)
	if err != nil {
		t.Fatalf("Misrouted: %v", err)
	}
	for _, m := range got {
		if m.At.IsZero() {
			t.Errorf("misrouted write %d: no At", m.ID)
		}
	}
	if diff := cmp.Diff(want, got, ignoreClock); diff != "" {
		t.Errorf("Misrouted (-want +got):\n%s", diff)
	}
}

// testCohortState: owners, misrouted writes and heartbeats round trip.
func testCohortState(t *testing.T, h Harness) {
	_, cs := cohortTarget(t, h, "")
	ctx := t.Context()
	wantCohorts(t, cs, nil)
	owners := []sink.Ownership{
		{Cohort: "b", Owner: sink.OwnerSwitching, To: sink.SideNew, Version: 2},
		{Cohort: "a", Owner: sink.OwnerNew, Version: 1},
		{Cohort: "日本 'x`\"", Owner: sink.OwnerOld, Version: 7},
	}
	if err := cs.SetOwners(ctx, owners); err != nil {
		t.Fatalf("SetOwners: %v", err)
	}
	wantCohorts(t, cs, []sink.Ownership{owners[1], owners[0], owners[2]})
	moved := []sink.Ownership{{Cohort: "b", Owner: sink.OwnerNew, Version: 3}}
	if err := cs.SetOwners(ctx, moved); err != nil {
		t.Fatalf("SetOwners: %v", err)
	}
	wantCohorts(t, cs, []sink.Ownership{owners[1], moved[0], owners[2]})
	if err := cs.SetOwners(ctx, []sink.Ownership{{Cohort: "c", Owner: "nobody"}}); err == nil {
		t.Error("SetOwners of an unknown owner succeeded")
	}

	for _, b := range []struct {
		stream string
		lag    time.Duration
	}{{"forward:m", 1500 * time.Millisecond}, {"reverse:m", 0}, {"forward:m", 250 * time.Microsecond}} {
		if err := cs.Beat(ctx, b.stream, b.lag); err != nil {
			t.Fatalf("Beat(%s): %v", b.stream, err)
		}
	}
	beats, err := cs.Heartbeats(ctx)
	if err != nil {
		t.Fatalf("Heartbeats: %v", err)
	}
	for _, hb := range beats {
		if time.Since(hb.Updated).Abs() > time.Hour {
			t.Errorf("heartbeat of %s updated at %v: not the database's clock now", hb.Stream, hb.Updated)
		}
	}
	if diff := cmp.Diff([]sink.Heartbeat{{Stream: "forward:m", Lag: 250 * time.Microsecond}, {Stream: "reverse:m"}}, beats, ignoreClock); diff != "" {
		t.Errorf("Heartbeats (-want +got):\n%s", diff)
	}
	wantMisrouted(t, cs, nil)
}

// waitBlocked polls, within a deadline, until tg has a session waiting for
// a lock, and fails t if done is closed first (what should wait did not).
func waitBlocked(t *testing.T, tg CohortTarget, done <-chan error, what string) {
	t.Helper()
	_, err := poll.Until(t.Context(), 20*time.Millisecond, 10*time.Second, func() (bool, error) {
		select {
		case err := <-done:
			t.Fatalf("%s finished (error %v) while the fence held its cohort", what, err)
		default:
		}
		return tg.LockWaits(t) > 0, nil
	})
	if err != nil {
		t.Fatalf("%s never waited for the fence: %v", what, err)
	}
	select {
	case err := <-done:
		t.Fatalf("%s finished (error %v) while the fence held its cohort", what, err)
	default:
	}
}

// fence fences cohorts, failing t on an error; the fence is released when
// t ends, if it is still open (the sink's Close waits for its connection).
func fence(t *testing.T, cs sink.CohortStore, cohorts ...string) sink.Fence {
	t.Helper()
	f, err := cs.Fence(t.Context(), cohorts)
	if err != nil {
		t.Fatalf("Fence(%v): %v", cohorts, err)
	}
	t.Cleanup(func() { f.Release(context.Background()) })
	return f
}

// finished waits, within a deadline, for what's result.
func finished(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not finish once the fence ended", what)
		return nil
	}
}

// testFenceHoldsBatches: a batch with Side waits for a fence on one of its
// cohorts, then applies its writes as the owners the fence stored say: the
// forward stream (into new) drops the writes of a cohort that moved to
// new, the reverse stream (into old) applies them. A released fence
// changes nothing. Writes without a cohort, the offsets and the dead
// letters are stored in any case.
func testFenceHoldsBatches(t *testing.T, h Harness) {
	ctx := t.Context()
	cohortItem := func(id int64, cohort string) change.Write {
		w := item(change.WriteUpsert, Row{"id": id, "name": "c " + cohort})
		w.Cohort = cohort
		return w
	}
	tests := []struct {
		name    string
		side    sink.Side
		commit  *sink.Ownership // nil: Release
		want    []Row
		cohorts []sink.Ownership
	}{
		{
			name: "forward drops the cohort moved to new", side: sink.SideNew,
			commit:  &sink.Ownership{Cohort: "c1", Owner: sink.OwnerNew, Version: 1},
			want:    []Row{{"id": "2", "name": "c other", "qty": nil, "note": nil}, {"id": "3", "name": "c ", "qty": nil, "note": nil}},
			cohorts: []sink.Ownership{{Cohort: "c1", Owner: sink.OwnerNew, Version: 1}},
		},
		{
			name: "reverse applies the cohort moved to new", side: sink.SideOld,
			commit: &sink.Ownership{Cohort: "c1", Owner: sink.OwnerNew, Version: 1},
			want: []Row{{"id": "1", "name": "c c1", "qty": nil, "note": nil},
				{"id": "3", "name": "c ", "qty": nil, "note": nil}},
			cohorts: []sink.Ownership{{Cohort: "c1", Owner: sink.OwnerNew, Version: 1}},
		},
		{
			name: "a release changes nothing: forward applies the old side's cohort", side: sink.SideNew,
			want: []Row{{"id": "1", "name": "c c1", "qty": nil, "note": nil}, {"id": "2", "name": "c other", "qty": nil, "note": nil},
				{"id": "3", "name": "c ", "qty": nil, "note": nil}},
			cohorts: []sink.Ownership{{Cohort: "c1", Owner: sink.OwnerOld, Version: 0}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg, cs := cohortTarget(t, h, shopDDL)
			f := fence(t, cs, "c1")
			// The fence created the cohort's row, owned by old.
			wantCohorts(t, cs, []sink.Ownership{{Cohort: "c1", Owner: sink.OwnerOld}})
			b := sink.Batch{Side: tc.side, Writes: []change.Write{
				cohortItem(1, "c1"), cohortItem(2, "other"), cohortItem(3, ""),
			}, DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "transform", Error: "e", Topic: "t", Offset: 4}}}
			done := make(chan error, 1)
			other := tg.OpenSink(t) // another process's consumer
			go func() { done <- other.Apply(ctx, b, checkpoint("g", "e", offset("t", 0, 5))) }()
			waitBlocked(t, tg, done, "a batch writing the fenced cohort")
			var err error
			if tc.commit != nil {
				err = f.Commit(ctx, []sink.Ownership{*tc.commit})
			} else {
				err = f.Release(ctx)
			}
			if err != nil {
				t.Fatalf("ending the fence: %v", err)
			}
			if err := finished(t, done, "the batch"); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			wantRows(t, tg, allItems, tc.want)
			wantOffsets(t, tg.Sink(), "g", "e", []sink.Offset{offset("t", 0, 5)})
			if n, err := tg.Sink().CountDeadLetters(ctx, "m"); err != nil || n != 1 {
				t.Errorf("CountDeadLetters = %d, %v; want 1", n, err)
			}
			wantCohorts(t, cs, tc.cohorts)
		})
	}
}

// testBatchWithoutSideAppliesEverything: without Side, the owners do not
// matter.
func testBatchWithoutSideAppliesEverything(t *testing.T, h Harness) {
	tg, cs := cohortTarget(t, h, shopDDL)
	if err := cs.SetOwners(t.Context(), []sink.Ownership{{Cohort: "c1", Owner: sink.OwnerNew, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	w := item(change.WriteUpsert, Row{"id": int64(1), "name": "x"})
	w.Cohort = "c1"
	apply(t, tg.Sink(), sink.Checkpoint{}, w)
	wantRows(t, tg, allItems, []Row{{"id": "1", "name": "x", "qty": nil, "note": nil}})
}

// testGuard: the guard triggers on a table named as badly as the database
// allows let the owning side's writes through, record (report) or refuse
// (reject) the others, make a fenced cohort's writes wait for the fence,
// let tandem's own sessions through untouched, and go with RemoveGuard.
func testGuard(t *testing.T, h Harness) {
	const (
		tableName  = "Wö`rld\"s 'T"
		idName     = "i`d\" 'k"
		cohortName = "Coh'ort`\"ü"
	)
	ctx := t.Context()
	ch, ok := h.(CohortHarness)
	if !ok {
		t.Fatalf("the harness is not a sinktest.CohortHarness")
	}
	tbl, id, col := ch.Ident(tableName), ch.Ident(idName), ch.Ident(cohortName)
	tg, cs := cohortTarget(t, h, "CREATE TABLE "+tbl+" ("+id+" BIGINT PRIMARY KEY, "+col+" VARCHAR(20), v INT);"+shopDDL)
	all := "SELECT * FROM " + tbl + " ORDER BY " + id
	r := func(i int, cohort string, v int) Row {
		return Row{idName: strconv.Itoa(i), cohortName: cohort, "v": strconv.Itoa(v)}
	}
	app := tg.App(t)
	exec := func(sql string) error { return app.Exec(ctx, sql) }
	insert := func(i int, cohort string) string {
		return "INSERT INTO " + tbl + " VALUES (" + strconv.Itoa(i) + ", '" + cohort + "', 1)"
	}
	guarded := []sink.GuardTable{{Table: tableName, CohortColumn: cohortName, Key: []string{idName}}}
	if err := cs.SetOwners(ctx, []sink.Ownership{{Cohort: "c-new", Owner: sink.OwnerNew, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // installing twice replaces the triggers
		if err := cs.InstallGuard(ctx, sink.SideOld, guarded, false); err != nil {
			t.Fatalf("InstallGuard: %v", err)
		}
	}

	// Report: the owning side's write passes unrecorded, the other's
	// passes recorded (a delete by its old row's cohort).
	// A NULL cohort is the default cohort.
	if err := cs.SetOwners(ctx, []sink.Ownership{{Cohort: "default", Owner: sink.OwnerNew, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{insert(1, "c-old"), insert(2, "c-new"), "DELETE FROM " + tbl + " WHERE " + id + " = 2", insert(3, "c-absent"),
		"INSERT INTO " + tbl + " VALUES (8, NULL, 1)"} {
		if err := exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	nullRow := Row{idName: "8", cohortName: nil, "v": "1"}
	wantRows(t, tg, all, []Row{r(1, "c-old", 1), r(3, "c-absent", 1), nullRow})
	misrouted := []sink.Misrouted{
		{ID: 1, Cohort: "c-new", Side: sink.SideOld, Table: tableName, Key: `["2"]`},
		{ID: 2, Cohort: "c-new", Side: sink.SideOld, Table: tableName, Key: `["2"]`},
		{ID: 3, Cohort: "default", Side: sink.SideOld, Table: tableName, Key: `["8"]`},
	}
	wantMisrouted(t, cs, misrouted)
	if got, err := cs.Misrouted(ctx, 1, 1); err != nil || len(got) != 1 || got[0].ID != 2 {
		t.Errorf("Misrouted(after 1, limit 1) = %v, %v; want the second", got, err)
	}

	// Reject: refused, naming the cohort, the table and the owner.
	if err := cs.InstallGuard(ctx, sink.SideOld, guarded, true); err != nil {
		t.Fatalf("InstallGuard with reject: %v", err)
	}
	err := exec(insert(4, "c-new"))
	if err == nil || !tg.GuardRefusal(err) {
		t.Fatalf("a misrouted insert with reject: error %v, want the guard's refusal", err)
	}
	for _, s := range []string{"c-new", tableName, "owned by the new side"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the guard's refusal %q does not say %q", err, s)
		}
	}
	if err := exec("UPDATE " + tbl + " SET v = 2 WHERE " + id + " = 1"); err != nil {
		t.Fatalf("an update of the owning side with reject: %v", err)
	}

	// A fenced cohort's writes wait, then see the owner the fence stored.
	for _, to := range []sink.Owner{sink.OwnerOld, sink.OwnerNew} {
		f := fence(t, cs, "c-old")
		done := make(chan error, 1)
		go func() { done <- exec("UPDATE " + tbl + " SET v = v + 1 WHERE " + id + " = 1") }()
		waitBlocked(t, tg, done, "the application's write of the fenced cohort")
		if err := f.Commit(ctx, []sink.Ownership{{Cohort: "c-old", Owner: to, Version: 1}}); err != nil {
			t.Fatalf("Fence.Commit: %v", err)
		}
		err = finished(t, done, "the application's write")
		if to == sink.OwnerOld && err != nil {
			t.Errorf("the write of a cohort the fence left to old: %v", err)
		}
		if to == sink.OwnerNew && !tg.GuardRefusal(err) {
			t.Errorf("the write of a cohort the fence moved to new: error %v, want the guard's refusal", err)
		}
	}
	wantRows(t, tg, all, []Row{r(1, "c-old", 3), r(3, "c-absent", 1), nullRow})

	// tandem's own session passes untouched, even rejected and fenced.
	f := fence(t, cs, "c-old")
	tandem := tg.App(t)
	tandem.SetOrigin(t)
	// Bounded: were the session not let through, it would wait for the fence.
	bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tandem.Exec(bounded, insert(5, "c-new")); err != nil {
		t.Errorf("tandem's insert: %v", err)
	}
	if err := tandem.Exec(bounded, "UPDATE "+tbl+" SET v = 9 WHERE "+id+" = 1"); err != nil {
		t.Errorf("tandem's update of a fenced cohort: %v", err)
	}
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A table without a cohort column: every row is cohort Default.
	items := []sink.GuardTable{{Table: "items", Default: "d", Key: []string{"id", "name"}}}
	if err := cs.SetOwners(ctx, []sink.Ownership{{Cohort: "d", Owner: sink.OwnerOld, Version: 1}, {Cohort: "default", Owner: sink.OwnerOld, Version: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := cs.InstallGuard(ctx, sink.SideNew, items, false); err != nil {
		t.Fatalf("InstallGuard on items: %v", err)
	}
	if err := exec("INSERT INTO items (id, name) VALUES (7, 'it''s')"); err != nil {
		t.Fatal(err)
	}
	wantMisrouted(t, cs, append(misrouted, sink.Misrouted{ID: 4, Cohort: "d", Side: sink.SideNew, Table: "items", Key: `["7", "it's"]`}))

	// Removed, the guards let everything through.
	if err := cs.RemoveGuard(ctx, append(guarded, items...)); err != nil {
		t.Fatalf("RemoveGuard: %v", err)
	}
	if err := cs.RemoveGuard(ctx, guarded); err != nil {
		t.Fatalf("RemoveGuard again: %v", err)
	}
	if err := exec(insert(6, "c-new")); err != nil {
		t.Errorf("an insert once the guard is removed: %v", err)
	}
	if err := exec("INSERT INTO items (id) VALUES (8)"); err != nil {
		t.Errorf("an insert once the guard is removed: %v", err)
	}
	wantRows(t, tg, all, []Row{r(1, "c-old", 9), r(3, "c-absent", 1), r(5, "c-new", 1), r(6, "c-new", 1), nullRow})
	wantMisrouted(t, cs, append(misrouted, sink.Misrouted{ID: 4, Cohort: "d", Side: sink.SideNew, Table: "items", Key: `["7", "it's"]`}))
}
