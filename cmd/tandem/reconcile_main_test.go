package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the PostgreSQL target

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
)

// TestReconcileOnce_DeadLetteredRowsAreUnmappedDriftAndExit1 streams a
// table whose mapping divides by zero on two rows into a PostgreSQL and a
// MariaDB target: both rows are dead-lettered, one dead letter is then
// dropped (`dlq drop`), and 15 rows are edited in the target. `reconcile
// --once` must report both source rows as unmapped (with the error and
// whether a dead letter is kept), exit 1, and --output must hold every
// drifted row, not only the samples.
func TestReconcileOnce_DeadLetteredRowsAreUnmappedDriftAndExit1(t *testing.T) {
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run(kind, func(t *testing.T) { testUnmappedExit1(t, kind) })
	}
}

// streamDeadLetters streams 30 rows of inv.items into a new target of
// kind (its items table open as tgt, closed when t ends); the mapping
// divides by zero on rows 4 and 9, which are dead-lettered. It returns once
// the others are in the target and both dead letters stored, the stream
// stopped.
func streamDeadLetters(t *testing.T, ctx context.Context, kind string) (*config.Config, *sql.DB) {
	t.Helper()
	srcDSN := testenv.NewDatabase(t)
	src, err := pgxpool.New(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	var tgtDSN string
	var tgt *sql.DB
	if kind == "postgres" {
		tgtDSN = testenv.NewDatabase(t)
		tgt, err = sql.Open("pgx", tgtDSN)
	} else {
		tgtDSN = testenv.NewMariaDBDatabase(t)
		tgt, err = mysqlurl.Open(tgtDSN)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close() })
	if _, err := src.Exec(ctx, `CREATE SCHEMA inv; CREATE TABLE inv.items (id bigint PRIMARY KEY, a bigint NOT NULL, b bigint NOT NULL, note text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.ExecContext(ctx, `CREATE TABLE items (id bigint PRIMARY KEY, ratio bigint NOT NULL, note text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	var db string
	if err := src.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	slot := strings.ToLower(db)
	slot = slot[max(0, len(slot)-63):]
	t.Cleanup(func() {
		_, _ = src.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	cfg := apptest.ParseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [inv.items]
  postgres: { slot: %s, publication: %s }
target:
  kind: %s
  dsn: %q
http:
  listen: 127.0.0.1:0
reconcile:
  settle: 10ms
mappings:
  - from: inv.items
    to:
      - table: items
        key: [id]
        columns:
          id: row.id
          ratio: row.a / row.b
          note: row.note
`, srcDSN, slot, slot, kind, tgtDSN))

	// The stream dead-letters rows 4 and 9 (b = 0) and writes the others.
	run := apptest.Start(t, cfg, app.Roles{Capture: true, Apply: true}, slog.LevelWarn)
	if _, err := src.Exec(ctx, `INSERT INTO inv.items SELECT g, g * 10, CASE WHEN g IN (4, 9) THEN 0 ELSE 2 END, 'n' || g FROM generate_series(1, 30) g`); err != nil {
		t.Fatal(err)
	}
	store, closeStore, err := app.ListDeadLetters(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	testenv.WaitFor(t, "28 rows applied and 2 dead letters", time.Minute, func() (bool, error) {
		var rows int
		if err := tgt.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&rows); err != nil {
			return false, err
		}
		dead, err := store.CountDeadLetters(ctx, "")
		return rows == 28 && dead == 2, err
	})
	run.Stop(t)
	return cfg, tgt
}

func testUnmappedExit1(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg, tgt := streamDeadLetters(t, ctx, kind)
	dropDeadLetter(t, ctx, cfg, 9) // as `tandem dlq drop` does

	// Every row the target has is right: the two it lacks are the drift.
	var stdout, stderr bytes.Buffer
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if code := runReconcile(ctx, cfg, reconcileFlags{once: true, format: "text"}, quiet, &stdout, &stderr); code != exitFailed {
		t.Fatalf("reconcile --once: exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	divErr := "mapping inv.items: to[0].columns.ratio (row.a / row.b): division by zero"
	text := "mapping inv.items: 58 rows checked; drift: 0 missing, 0 extra, 0 mismatch, 2 unmapped (source rows the mapping fails on); not drift: 0 in flight, 0 suspended\n" +
		"  unmapped inv.items (id=4)\n    error: " + divErr + "\n    dead letter: yes (tandem dlq list)\n" +
		"  unmapped inv.items (id=9)\n    error: " + divErr + "\n    dead letter: none (dropped, or the row failed in the backfill)\n" +
		"drift found (the diffs read -mapped source +target)\n"
	if diff := cmp.Diff(text, stdout.String()); diff != "" {
		t.Errorf("text report (-want +got):\n%s", diff)
	}

	// With 15 rows edited in the target: the JSON report, and --output.
	if _, err := tgt.ExecContext(ctx, `UPDATE items SET note = 'edited' WHERE id BETWEEN 11 AND 25`); err != nil {
		t.Fatal(err)
	}
	output := filepath.Join(t.TempDir(), "drift.jsonl")
	stdout.Reset()
	if code := runReconcile(ctx, cfg, reconcileFlags{once: true, format: "json", output: output}, quiet, &stdout, &stderr); code != exitFailed {
		t.Fatalf("reconcile --once: exit %d, want 1\n%s\n%s", code, stdout.String(), stderr.String())
	}
	unmapped := func(id float64, deadLetter bool) map[string]any {
		return map[string]any{"kind": "unmapped", "table": "inv.items", "key": map[string]any{"id": id}, "source_key": map[string]any{"id": id},
			"error": divErr, "dead_letter": deadLetter}
	}
	var report struct {
		Drift    bool `json:"drift"`
		Mappings []struct {
			Mapping                                       string
			Missing, Extra, Mismatch, RoundTrip, Unmapped int
			Columns                                       map[string]int
			Samples                                       []map[string]any
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if len(report.Mappings) != 1 {
		t.Fatalf("report: %s", stdout.String())
	}
	mr := report.Mappings[0]
	type counts struct {
		Drift                                         bool
		Missing, Extra, Mismatch, RoundTrip, Unmapped int
		Columns                                       map[string]int
		Samples                                       int
	}
	if diff := cmp.Diff(counts{Drift: true, Mismatch: 15, Unmapped: 2, Columns: map[string]int{"items.note": 15}, Samples: 10},
		counts{report.Drift, mr.Missing, mr.Extra, mr.Mismatch, mr.RoundTrip, mr.Unmapped, mr.Columns, len(mr.Samples)}); diff != "" {
		t.Errorf("report counts (-want +got):\n%s", diff)
	}
	// The unmapped rows sort first (table inv.items).
	if diff := cmp.Diff([]map[string]any{unmapped(4, true), unmapped(9, false)}, mr.Samples[:min(2, len(mr.Samples))]); diff != "" {
		t.Errorf("unmapped samples (-want +got):\n%s", diff)
	}

	// --output: every drifted row, with both values.
	want := []map[string]any{}
	for _, id := range []float64{4, 9} {
		line := unmapped(id, id == 4)
		line["mapping"], line["direction"] = "inv.items", "forward"
		want = append(want, line)
	}
	for id := 11.0; id <= 25; id++ {
		row := func(note string) map[string]any { return map[string]any{"id": id, "ratio": id * 5, "note": note} }
		want = append(want, map[string]any{"mapping": "inv.items", "direction": "forward", "kind": "mismatch", "table": "items", "key": map[string]any{"id": id},
			"source_key": map[string]any{"id": id}, "columns": []any{"note"}, "want": row(fmt.Sprintf("n%v", id)), "got": row("edited")})
	}
	checkOutput(t, output, want)
}

// dropDeadLetter drops the dead letter of inv.items' row id.
func dropDeadLetter(t *testing.T, ctx context.Context, cfg *config.Config, id int) {
	t.Helper()
	store, closeStore, err := app.ListDeadLetters(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	dls, err := store.DeadLetters(ctx, "inv.items", 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []sink.DeadLetterID
	for _, d := range dls {
		if ev, err := change.Decode(d.Key, d.Value); err == nil && fmt.Sprint(ev.KeyRow()["id"]) == fmt.Sprint(id) {
			ids = append(ids, d.ID())
		}
	}
	if dropped, err := app.DropDeadLetters(ctx, cfg, "inv.items", func(d sink.DeadLetterID) bool { return cmp.Equal(ids, []sink.DeadLetterID{d}) }); err != nil || len(dropped) != 1 {
		t.Fatalf("drop row %d's dead letter: dropped %v, %v", id, dropped, err)
	}
}

// checkOutput compares the JSON lines of the file at path with want.
func checkOutput(t *testing.T, path string, want []map[string]any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := []map[string]any{}
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("--output line %q: %v", line, err)
		}
		got = append(got, v)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("--output (-want +got):\n%s", diff)
	}
}
