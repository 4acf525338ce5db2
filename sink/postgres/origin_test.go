package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
)

// decoded returns the changes test_decoding reads from slot (without
// consuming them), one line per row change, BEGIN and COMMIT left out;
// onlyLocal leaves out the transactions marked with a replication origin.
func (tg *target) decoded(t *testing.T, slot string, onlyLocal bool) []string {
	t.Helper()
	rows, err := tg.db.Query(t.Context(), `SELECT data FROM pg_logical_slot_peek_changes($1, NULL, NULL,
	'include-xids', '0', 'skip-empty-xacts', '1', 'only-local', $2)`, slot, fmt.Sprint(onlyLocal))
	if err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		if line != "BEGIN" && line != "COMMIT" {
			out = append(out, line)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	return out
}

// decodingSlot creates a test_decoding slot on the target, dropped when
// the test ends.
func (tg *target) decodingSlot(t *testing.T, name string) {
	t.Helper()
	tg.Exec(t, `SELECT pg_create_logical_replication_slot('`+name+`', 'test_decoding')`)
	t.Cleanup(func() {
		if _, err := tg.db.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, name); err != nil {
			t.Errorf("drop slot %s: %v", name, err)
		}
	})
}

// TestNew_OriginMarksEveryTransactionOfTheSink: the rows, copies, dead
// letters, tombstones, offsets, positions and backfill progress a sink
// with an origin writes are all in transactions marked with an origin
// (test_decoding's only-local leaves them out), the application's are not.
func TestNew_OriginMarksEveryTransactionOfTheSink(t *testing.T) {
	tg := newTarget(t, shopDDL)
	slot := "echo_" + strings.ToLower(strings.TrimPrefix(t.Name(), "Test"))
	slot = slot[:min(len(slot), 63)]
	tg.decodingSlot(t, slot)
	s := tg.newSink(t, postgres.Config{DSN: tg.dsn, Origin: "tandem_test_" + slot})
	ctx := t.Context()

	tg.Exec(t, `INSERT INTO items (id, name) VALUES (1, 'app')`)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("SaveBackfill", s.SaveBackfill(ctx, sink.BackfillProgress{Table: "items", State: sink.BackfillRunning}))
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "t", Partition: 0, Next: 3}}}
	must("Apply", s.Apply(ctx, sink.Batch{
		Writes: []change.Write{
			{Table: "items", Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": 2, "name": "tandem"}},
			{Table: "items", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": 1}},
		},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "decode", Error: "bad", Topic: "t", Offset: 1}},
	}, cp))
	must("Apply copies", s.Apply(ctx, sink.Batch{Writes: []change.Write{
		{Table: "items", Op: change.WriteCopy, Key: []string{"id"}, Row: map[string]any{"id": 3, "name": "copied"}},
	}}, sink.Checkpoint{}))
	must("SetOffsets", s.SetOffsets(ctx, sink.Checkpoint{Group: "g2", Epoch: "e", Offsets: []sink.Offset{{Topic: "t", Next: 1}}}))
	must("SavePosition", s.SavePosition(ctx, "src", "0/1"))
	_, err := s.DeleteDeadLetters(ctx, []sink.DeadLetterID{{Mapping: "m", Topic: "t", Offset: 1}})
	must("DeleteDeadLetters", err)
	must("ResetBackfill", s.ResetBackfill(ctx))
	tg.Exec(t, `INSERT INTO items (id, name) VALUES (4, 'app')`)

	want := []string{
		`table public.items: INSERT: id[bigint]:1 name[text]:'app' qty[integer]:null note[text]:null`,
		`table public.items: INSERT: id[bigint]:4 name[text]:'app' qty[integer]:null note[text]:null`,
	}
	if diff := cmp.Diff(want, tg.decoded(t, slot, true)); diff != "" {
		t.Errorf("changes not marked with an origin (-the application's +got):\n%s", diff)
	}
	// They were decoded: only their origin left them out.
	all := tg.decoded(t, slot, false)
	for _, table := range []string{"public.items", "tandem.kafka_offsets", "tandem.dead_letters", "tandem.tombstones", "tandem.source_positions", "tandem.backfills"} {
		n := 0
		for _, l := range all {
			if strings.HasPrefix(l, "table "+table+":") {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no change of %s decoded at all: %q", table, all)
		}
	}
	if len(all) <= len(want) {
		t.Errorf("decoded %d changes in all, want the sink's beside the application's %d", len(all), len(want))
	}
}

// TestNew_SinksWithOneOriginStartAndWriteTogether: sinks sharing an
// origin that does not exist yet start at the same time, and their
// concurrent transactions each get an origin of the family.
func TestNew_SinksWithOneOriginStartAndWriteTogether(t *testing.T) {
	tg := newTarget(t, shopDDL)
	pc, err := pgx.ParseConfig(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	origin := "tandem_test_" + pc.Database // origins are server-wide: one per test database
	const sinks, writers = 3, 3
	var wg sync.WaitGroup
	errs := make(chan error, sinks*writers)
	for i := range sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.New(t.Context(), postgres.Config{DSN: tg.dsn + "&pool_max_conns=" + fmt.Sprint(writers), Origin: origin})
			if err != nil {
				errs <- fmt.Errorf("sink %d: %w", i, err)
				return
			}
			defer s.Close()
			var ww sync.WaitGroup
			for j := range writers {
				ww.Add(1)
				go func() {
					defer ww.Done()
					for k := range 10 {
						id := (i*writers+j)*100 + k
						err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{{Table: "items", Op: change.WriteUpsert,
							Key: []string{"id"}, Row: map[string]any{"id": id, "name": "tandem"}}}}, sink.Checkpoint{})
						if err != nil {
							errs <- fmt.Errorf("sink %d writer %d: %w", i, j, err)
							return
						}
					}
				}()
			}
			ww.Wait()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want []row
	for i := range sinks * writers {
		for k := range 10 {
			want = append(want, row{"id": fmt.Sprint(i*100 + k), "name": "tandem", "qty": nil, "note": nil})
		}
	}
	tg.wantRows(t, allItems, want)
	// Every origin is of the family, and the family is no larger than the
	// sessions that may have been open at once.
	rows, err := tg.db.Query(t.Context(), `SELECT roname FROM pg_replication_origin WHERE roname LIKE $1 ORDER BY roident`, origin+"%")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	family := map[string]bool{}
	for i := range sinks * writers {
		family[postgres.SessionOrigin(origin, i)] = true
	}
	if len(names) == 0 {
		t.Error("no origin of the family was created")
	}
	for _, name := range names {
		if !family[name] {
			t.Errorf("origin %q is not one of the first %d of family %q (all: %q)", name, sinks*writers, origin, names)
		}
	}
}
