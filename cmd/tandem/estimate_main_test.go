package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestBackfillEstimate_ProjectsEachTableAndWritesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, _ := tandemtest.OpenShop(ctx, t)
	w := &shop.Workload{Src: m.Src, Seed: 7}
	if err := w.History(ctx, 400); err != nil { // 400 customers, 1200 orders
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	// Small chunks: each table is read in several; a rate limit far below
	// the read rate, so the projection under it is rows / limit.
	config := shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}) +
		"backfill:\n  chunk_rows: 100\n  max_rows_per_second: 100\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, tandemtest.Binary(), "backfill", "--estimate", "-c", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr // pipes, not a terminal
	if err := cmd.Run(); err != nil {
		t.Fatalf("tandem backfill --estimate: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("tandem backfill --estimate:\n%s", out)
	if strings.Contains(out+stderr.String(), testenv.Password) {
		t.Errorf("the DSN password appears in the output")
	}
	// A line per table: the exact count (the sample read the whole table),
	// and under the limit the copy takes rows / 100 s.
	lines := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = f
		}
	}
	for table, rows := range map[string]int{"shop.customers": 400, "shop.orders": 1200, "total": 1600} {
		f := lines[table]
		if len(f) < 3 {
			t.Errorf("no line for %s in:\n%s", table, out)
			continue
		}
		if f[1] != fmt.Sprint(rows) {
			t.Errorf("%s: %s rows, want %d\n%s", table, f[1], rows, out)
		}
		if table != "total" && f[2] != "(exact)" {
			t.Errorf("%s: want an exact count (the sample read the whole table)\n%s", table, out)
		}
		projected, err := time.ParseDuration(f[len(f)-2])
		if err != nil || projected <= 0 || projected > time.Duration(rows)*time.Second/100 {
			t.Errorf("%s: projected %q (%v), want a read faster than the limit\n%s", table, f[len(f)-2], err, out)
		}
		// Under the limit: the rows at the limit, after the copy's setup
		// (describing the table, cutting its key ranges).
		limited, err := time.ParseDuration(f[len(f)-1])
		if want := time.Duration(rows) * time.Second / 100; err != nil || limited < want || limited > want+2*time.Second {
			t.Errorf("%s: projected under the limit %q (%v), want %s and the setup\n%s", table, f[len(f)-1], err, want, out)
		}
	}
	if !strings.Contains(out, "Nothing was written.") {
		t.Errorf("output does not say nothing was written:\n%s", out)
	}
	// Nothing in the target, no slot or publication in the source.
	assertNothingWritten(t, ctx, m)
}

// TestBackfillEstimate_JSONMidMigrationChangesNothingInTheTarget estimates
// a backfill of a migration under way (one table copied, tandem's state
// there): --format json gives projected_seconds per table and in total,
// and every table of the target, tandem's state included, holds what it
// held before, row for row.
func TestBackfillEstimate_JSONMidMigrationChangesNothingInTheTarget(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, slot := tandemtest.OpenShop(ctx, t)
	w := &shop.Workload{Src: m.Src, Seed: 8}
	if err := w.History(ctx, 300); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	config := shop.Config(shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}) + "backfill:\n  chunk_rows: 100\n"
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, tandemtest.Binary(), "backfill", "--table", "shop.customers", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("tandem backfill --table shop.customers: %v\n%s", err, out)
	}
	before := dumpTarget(t, ctx, m)
	if len(before["public.customers"]) != 300 || len(before["tandem.backfills"]) != 1 {
		t.Fatalf("before the estimate: %d customers, %d backfill states; want 300, 1", len(before["public.customers"]), len(before["tandem.backfills"]))
	}
	cmd := exec.CommandContext(ctx, tandemtest.Binary(), "backfill", "--estimate", "--format", "json", "-c", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tandem backfill --estimate --format json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Tables []struct {
			Table            string   `json:"table"`
			Rows             int64    `json:"rows"`
			ProjectedSeconds *float64 `json:"projected_seconds"`
		} `json:"tables"`
		ProjectedSeconds *float64 `json:"projected_seconds"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--format json: %v\n%s", err, stdout.String())
	}
	if len(rep.Tables) != 2 || rep.ProjectedSeconds == nil || *rep.ProjectedSeconds <= 0 {
		t.Errorf("--format json: want 2 tables and projected_seconds > 0:\n%s", stdout.String())
	}
	for _, tb := range rep.Tables {
		if tb.ProjectedSeconds == nil || *tb.ProjectedSeconds <= 0 || *tb.ProjectedSeconds > *rep.ProjectedSeconds {
			t.Errorf("%s: projected_seconds %v, want > 0 and at most the total's", tb.Table, tb.ProjectedSeconds)
		}
	}
	if diff := cmp.Diff(before, dumpTarget(t, ctx, m)); diff != "" {
		t.Errorf("the estimate changed the target (-before +after):\n%.3000s", diff)
	}
}

// dumpTarget reads every row of every table of the target's schemas (the
// migration's and tandem's), each as its text, sorted, by table.
func dumpTarget(t *testing.T, ctx context.Context, m *shop.Migration) map[string][]string {
	t.Helper()
	rows, err := m.Tgt.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_temp%' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, name := range names {
		schema, table, _ := strings.Cut(name, ".")
		rows, err := m.Tgt.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{schema, table}.Sanitize()+` t ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		if out[name], err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
