package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		limited, err := time.ParseDuration(f[len(f)-1])
		if want := time.Duration(rows) * time.Second / 100; err != nil || limited != want {
			t.Errorf("%s: projected under the limit %q (%v), want %s\n%s", table, f[len(f)-1], err, want, out)
		}
	}
	if !strings.Contains(out, "Nothing was written.") {
		t.Errorf("output does not say nothing was written:\n%s", out)
	}
	// Nothing in the target, no slot or publication in the source.
	assertNothingWritten(t, ctx, m)
}
