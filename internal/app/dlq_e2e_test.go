package app_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/transform"
)

// The mapping of the dead-letter tests: ratio divides by b, which fails on
// b = 0 until the expression is guarded. by_code is keyed by a non-key
// column, flagged has a `when`: a fixed row must lose the target rows its
// old images had there.
const (
	dlqSourceDDL = `CREATE SCHEMA inv;
CREATE TABLE inv.items (id bigint PRIMARY KEY, a bigint NOT NULL, b bigint NOT NULL, code text NOT NULL, tag text NOT NULL DEFAULT '');
ALTER TABLE inv.items REPLICA IDENTITY FULL`
	dlqTargetDDL = `CREATE TABLE public.items (id bigint PRIMARY KEY, ratio bigint NOT NULL, code text NOT NULL);
CREATE TABLE public.flagged (id bigint PRIMARY KEY);
CREATE TABLE public.by_code (code text PRIMARY KEY, item_id bigint NOT NULL)`
	brokenRatio = `row.a / row.b`
	fixedRatio  = `'row.b == 0 ? 0 : row.a / row.b'`
)

func dlqConfig(m *shop.Migration, slot, ratio string) string {
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [inv.items]
  postgres: { slot: %s, publication: %s }
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: inv.items
    to:
      - table: public.items
        key: [id]
        columns:
          id: row.id
          ratio: %s
          code: row.code
      - table: public.flagged
        key: [id]
        when: row.tag == "flag"
        columns:
          id: row.id
      - table: public.by_code
        key: [code]
        columns:
          code: row.code
          item_id: row.id
`, m.SrcDSN, slot, slot, m.TgtDSN, ratio)
}

// invItem is a row of public.items; invCode one of public.by_code.
type (
	invItem struct {
		ID, Ratio int64
		Code      string
	}
	invCode struct {
		Code   string
		ItemID int64
	}
	// invTarget is the whole target of the dead-letter tests.
	invTarget struct {
		Items   []invItem
		Flagged []int64
		ByCode  []invCode
	}
)

// invExpected computes the target from the source rows, in Go, as the
// fixed mapping defines it.
func invExpected(ctx context.Context, src *pgxpool.Pool) (*invTarget, error) {
	rows, err := src.Query(ctx, `SELECT id, a, b, code, tag FROM inv.items ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &invTarget{}
	for rows.Next() {
		var id, a, b int64
		var code, tag string
		if err := rows.Scan(&id, &a, &b, &code, &tag); err != nil {
			return nil, err
		}
		ratio := int64(0)
		if b != 0 {
			ratio = a / b
		}
		out.Items = append(out.Items, invItem{id, ratio, code})
		if tag == "flag" {
			out.Flagged = append(out.Flagged, id)
		}
		out.ByCode = append(out.ByCode, invCode{code, id})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out.ByCode, func(a, b invCode) int { return strings.Compare(a.Code, b.Code) })
	return out, nil
}

// invRead reads the whole target.
func invRead(ctx context.Context, tgt *pgxpool.Pool) (*invTarget, error) {
	out := &invTarget{}
	rows, err := tgt.Query(ctx, `SELECT id, ratio, code FROM public.items ORDER BY id`)
	if err != nil {
		return nil, err
	}
	if out.Items, err = pgx.CollectRows(rows, pgx.RowToStructByPos[invItem]); err != nil {
		return nil, err
	}
	rows, err = tgt.Query(ctx, `SELECT id FROM public.flagged ORDER BY id`)
	if err != nil {
		return nil, err
	}
	if out.Flagged, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return nil, err
	}
	rows, err = tgt.Query(ctx, `SELECT code, item_id FROM public.by_code ORDER BY code COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	if out.ByCode, err = pgx.CollectRows(rows, pgx.RowToStructByPos[invCode]); err != nil {
		return nil, err
	}
	return out, nil
}

// deadLetterCount counts the dead letters kept in the target.
func deadLetterCount(ctx context.Context, tgt *pgxpool.Pool) (int, error) {
	var n int
	err := tgt.QueryRow(ctx, `SELECT count(*) FROM tandem.dead_letters`).Scan(&n)
	return n, err
}

// TestDLQReplay_ResyncsCurrentRowsAndConvergesWithTheStream runs a mapping
// that fails on some rows, replays its dead letters first with the mapping
// still broken (only the rows that are good now, or gone, are re-synced),
// then with the fixed mapping while the stream runs it and a writer keeps
// changing those rows: the target ends equal to the source, with no dead
// letter left, and a second replay does nothing.
func TestDLQReplay_ResyncsCurrentRowsAndConvergesWithTheStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := shop.Open(ctx, testenv.NewDatabase(t), testenv.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	for _, ddl := range []struct {
		pool *pgxpool.Pool
		sql  string
	}{{m.Src, dlqSourceDDL}, {m.Tgt, dlqTargetDDL}} {
		if _, err := ddl.pool.Exec(ctx, ddl.sql); err != nil {
			t.Fatal(err)
		}
	}
	slot := slotFor(t, m)
	broken := parseConfig(t, dlqConfig(m, slot, brokenRatio))
	run := start(t, broken)

	exec := func(sql string) {
		t.Helper()
		if _, err := m.Src.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// 1 stays good. 2 is inserted bad. 3 is good, then updated bad with a
	// new code and no flag: its old by_code and flagged rows stay. 4 is
	// inserted bad, then deleted. 5 is inserted bad, then fixed at the
	// source. 6 is good, then updated bad. 7 is good, updated bad with a
	// new code, then deleted: the delete's keys miss its old by_code row.
	exec(`INSERT INTO inv.items VALUES (1, 10, 2, 'c1', 'flag'), (2, 10, 0, 'c2', 'flag'), (3, 9, 3, 'c3', 'flag'),
		(4, 1, 0, 'c4', ''), (5, 8, 0, 'c5', ''), (6, 12, 4, 'c6', ''), (7, 7, 7, 'c7', 'flag')`)
	exec(`UPDATE inv.items SET b = 0, code = 'c3x', tag = '' WHERE id = 3`)
	exec(`UPDATE inv.items SET b = 0 WHERE id = 6`)
	exec(`UPDATE inv.items SET b = 0, code = 'c7x' WHERE id = 7`)
	exec(`DELETE FROM inv.items WHERE id IN (4, 7)`)
	exec(`UPDATE inv.items SET b = 2, tag = 'flag' WHERE id = 5`)

	// What the broken stream leaves: dead letters for 2, 3, 4, 5 (its
	// insert), 6 and 7, the old rows of 3 and 6, and 7's old by_code row.
	stale := &invTarget{
		Items:   []invItem{{1, 5, "c1"}, {3, 3, "c3"}, {5, 4, "c5"}, {6, 3, "c6"}},
		Flagged: []int64{1, 3, 5},
		ByCode:  []invCode{{"c1", 1}, {"c3", 3}, {"c5", 5}, {"c6", 6}, {"c7", 7}},
	}
	waitTarget := func(what string, want func() (*invTarget, error), dead int) {
		t.Helper()
		var diff string
		_, err := poll.Until(ctx, 20*time.Millisecond, time.Minute, func() (bool, error) {
			w, err := want()
			if err != nil {
				return false, err
			}
			got, err := invRead(ctx, m.Tgt)
			if err != nil {
				return false, err
			}
			n, err := deadLetterCount(ctx, m.Tgt)
			if err != nil {
				return false, nil // not created yet
			}
			diff = cmp.Diff(w, got, cmpopts.EquateEmpty())
			if n != dead {
				diff += fmt.Sprintf("\n%d dead letters, want %d", n, dead)
			}
			return diff == "", nil
		})
		if err != nil {
			t.Fatalf("waiting for %s: %v (-want +got):\n%s", what, err, diff)
		}
	}
	waitTarget("the broken stream to apply what it can and keep 6 dead letters", func() (*invTarget, error) { return stale, nil }, 6)
	run.Stop(t)

	// Still broken: 4 and 7 are gone (7's old by_code row goes too), 5 is
	// good now: re-synced. 2, 3 and 6 still fail, keep their dead letters,
	// and their target rows stay.
	rep, err := app.ReplayDeadLetters(ctx, broken, "")
	if err != nil {
		t.Fatalf("replay with the broken mapping: %v", err)
	}
	type failure struct {
		Key  string
		Kept int
	}
	var failed []failure
	for _, f := range rep.Failures {
		failed = append(failed, failure{f.Key, len(f.DeadLetters)})
		var ev *transform.EvalError
		if !strings.Contains(f.Err.Error(), "to[0].columns.ratio") || !strings.Contains(f.Err.Error(), "division by zero") || !errors.As(f.Err, &ev) {
			t.Errorf("failure of %s: %v; want the column and the error", f.Key, f.Err)
		}
		if f.Mapping != "inv.items" || f.Table.String() != "inv.items" {
			t.Errorf("failure of %s names mapping %s, table %s; want inv.items", f.Key, f.Mapping, f.Table)
		}
	}
	slices.SortFunc(failed, func(a, b failure) int { return strings.Compare(a.Key, b.Key) })
	if diff := cmp.Diff([]failure{{"id=2", 1}, {"id=3", 1}, {"id=6", 1}}, failed); diff != "" {
		t.Errorf("failures of the replay with the broken mapping (-want +got):\n%s", diff)
	}
	if rep.Rows != 3 || rep.Removed != 3 || rep.Kept() != 3 {
		t.Errorf("replay with the broken mapping: %d rows, %d removed, %d kept; want 3, 3, 3", rep.Rows, rep.Removed, rep.Kept())
	}
	stale.ByCode = stale.ByCode[:4]
	waitTarget("the target after the broken replay", func() (*invTarget, error) { return stale, nil }, 3)

	// Fixed, with the stream running the fixed mapping and a writer
	// changing rows 2 and 6 meanwhile (3 is left to the replay alone).
	fixed := parseConfig(t, dlqConfig(m, slot, fixedRatio))
	start(t, fixed)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	written := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(5, 6))
		for i := 0; wctx.Err() == nil && i < 200; i++ {
			id := []int64{2, 6}[i%2]
			_, err := m.Src.Exec(wctx, `UPDATE inv.items SET a = $2, b = $3, code = $4, tag = $5 WHERE id = $1`,
				id, rng.Int64N(100), rng.Int64N(3), fmt.Sprintf("c%d-%d", id, i), []string{"", "flag"}[rng.IntN(2)])
			if err != nil && wctx.Err() == nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	rep, err = app.ReplayDeadLetters(ctx, fixed, "inv.items")
	if err != nil {
		t.Fatalf("replay with the fixed mapping: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatalf("writer: %v", err)
	}
	for _, f := range rep.Failures {
		t.Errorf("replay with the fixed mapping: %s %s still fails: %v", f.Mapping, f.Key, f.Err)
	}
	if rep.Rows != 3 || rep.Removed != 3 {
		t.Errorf("replay with the fixed mapping: %d rows, %d removed; want 3, 3", rep.Rows, rep.Removed)
	}
	// The replay writes rows' current state while the stream may still be
	// applying older changes of them (the interim the resync argument
	// allows): wait for the stream to have applied everything written,
	// the slot acknowledging past the source's WAL end (the embedded
	// broker acknowledges only what the target holds), then for equality.
	var walEnd string
	if err := m.Src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walEnd); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the stream to apply everything written", time.Minute, func() (bool, error) {
		var past bool
		err := m.Src.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, slot, walEnd).Scan(&past)
		return past, err
	})
	expected := func() (*invTarget, error) { return invExpected(ctx, m.Src) }
	waitTarget("the target to equal the source, mapped, with no dead letter left", expected, 0)
	before, err := invRead(ctx, m.Tgt)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Items) != 5 || len(before.ByCode) != 5 {
		t.Errorf("target %+v: want rows 1, 2, 3, 5 and 6, else the test proves little", before)
	}

	// A second replay finds nothing to do.
	rep, err = app.ReplayDeadLetters(ctx, fixed, "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&resync.Report{}, rep, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("second replay (-want +got):\n%s", diff)
	}
	after, err := invRead(ctx, m.Tgt)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the second replay changed the target (-before +after):\n%s", diff)
	}

	if _, err := app.ReplayDeadLetters(ctx, fixed, "nope"); !errors.Is(err, app.ErrUnknownMapping) {
		t.Errorf("replay of an unknown mapping = %v, want ErrUnknownMapping", err)
	}
}
