package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestReconcileCLI_JSONReportAndExitCodes runs `tandem reconcile --once
// --format json` as a user does, on a PostgreSQL pair tandem never
// streamed: the whole JSON document (every key, the check values of both
// sides) and the exit code, 0 without drift, 1 with drift or a check that
// differs or fails (its error in the report beside the other values), 1 when
// a server cannot be reached (an error, reported on stderr with nothing on
// stdout), 2 for a config error.
func TestReconcileCLI_JSONReportAndExitCodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	for dsn, sql := range map[string]string{
		srcDSN: `CREATE SCHEMA inv; CREATE TABLE inv.items (id bigint PRIMARY KEY, a bigint NOT NULL, note text NOT NULL);
INSERT INTO inv.items VALUES (1, 10, 'n1'), (2, 20, 'n2'), (3, 30, 'n3')`,
		tgtDSN: `CREATE TABLE items (id bigint PRIMARY KEY, cents bigint NOT NULL, note text NOT NULL);
INSERT INTO items VALUES (1, 1000, 'n1'), (2, 2000, 'n2'), (3, 3000, 'n3')`,
	} {
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	// countFactor multiplies items_count's target side: "* 10" makes the
	// check differ with every row equal.
	config := func(tgt, countFactor string) string {
		return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [inv.items]
target:
  kind: postgres
  dsn: %q
reconcile:
  settle: 10ms
  checks:
    - name: items_total
      source: SELECT sum(a) FROM inv.items
      target: SELECT sum(cents) / 100 FROM items
    - name: items_count
      source: SELECT count(*) FROM inv.items
      target: SELECT count(*) %s FROM items
mappings:
  - from: inv.items
    to:
      - table: items
        key: [id]
        columns:
          id: row.id
          cents: row.a * 100
          note: row.note
`, srcDSN, tgt, countFactor)
	}
	reconcile := func(t *testing.T, config string) (code int, stdout, stderr string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "tandem.yaml")
		if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code = run([]string{"reconcile", "--once", "--format", "json", "-c", path}, &out, &errOut)
		return code, out.String(), strings.ReplaceAll(errOut.String(), path, "tandem.yaml")
	}
	report := func(t *testing.T, stdout string) map[string]any {
		t.Helper()
		var got map[string]any
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON document: %v\n%s", err, stdout)
		}
		return got
	}
	mapping := func(mismatch float64, columns map[string]any, samples []any) map[string]any {
		return map[string]any{"mapping": "inv.items", "direction": "forward", "checked": 6.0, "summarised": 0.0, "missing": 0.0, "extra": 0.0,
			"mismatch": mismatch, "round_trip": 0.0, "in_flight": 0.0, "suspended": 0.0, "unmapped": 0.0,
			"columns": columns, "samples": samples, "repaired": 0.0}
	}
	// The values of both sides, each under its own name.
	checks := func(total, count float64) []any {
		return []any{
			map[string]any{"name": "items_total", "source": 60.0, "target": total, "differs": total != 60},
			map[string]any{"name": "items_count", "source": 3.0, "target": count, "differs": count != 3},
		}
	}

	t.Run("no drift exits 0", func(t *testing.T) {
		code, stdout, stderr := reconcile(t, config(tgtDSN, ""))
		want := map[string]any{"drift": false, "mappings": []any{mapping(0, map[string]any{}, []any{})}, "checks": checks(60, 3)}
		if diff := cmp.Diff(want, report(t, stdout)); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if code != exitOK {
			t.Errorf("exit %d, want 0; stderr:\n%s", code, stderr)
		}
	})

	t.Run("a check that differs exits 1", func(t *testing.T) {
		code, stdout, stderr := reconcile(t, config(tgtDSN, "* 10"))
		want := map[string]any{"drift": true, "mappings": []any{mapping(0, map[string]any{}, []any{})}, "checks": checks(60, 30)}
		if diff := cmp.Diff(want, report(t, stdout)); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if code != exitFailed {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
	})

	t.Run("a check whose query fails exits 1 with its error", func(t *testing.T) {
		code, stdout, stderr := reconcile(t, config(tgtDSN, "FROM nowhere --"))
		failed := map[string]any{"name": "items_count", "source": 3.0, "target": 0.0, "differs": true,
			"error": `check items_count: target query: ERROR: relation "nowhere" does not exist (SQLSTATE 42P01)`}
		want := map[string]any{"drift": true, "mappings": []any{mapping(0, map[string]any{}, []any{})},
			"checks": []any{checks(60, 3)[0], failed}}
		if diff := cmp.Diff(want, report(t, stdout)); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if code != exitFailed {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
	})

	t.Run("drift exits 1", func(t *testing.T) {
		pool, err := pgxpool.New(ctx, tgtDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		if _, err := pool.Exec(ctx, `UPDATE items SET cents = 2500 WHERE id = 2`); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := reconcile(t, config(tgtDSN, ""))
		sample := map[string]any{"kind": "mismatch", "table": "items", "key": map[string]any{"id": 2.0}, "source_key": map[string]any{"id": 2.0},
			"columns": []any{"cents"}, "want": map[string]any{"id": 2.0, "cents": 2000.0, "note": "n2"}, "got": map[string]any{"id": 2.0, "cents": 2500.0, "note": "n2"}}
		want := map[string]any{"drift": true, "mappings": []any{mapping(1, map[string]any{"items.cents": 1.0}, []any{sample})}, "checks": checks(65, 3)}
		if diff := cmp.Diff(want, report(t, stdout)); diff != "" {
			t.Errorf("report (-want +got):\n%s", diff)
		}
		if code != exitFailed {
			t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
		}
	})

	t.Run("unreachable target exits 1 with the error", func(t *testing.T) {
		unreachable := "postgres://tandem:" + testenv.Password + "@127.0.0.1:1/shop?sslmode=disable&connect_timeout=5"
		code, stdout, stderr := reconcile(t, config(unreachable, ""))
		if code != exitFailed || stdout != "" || !strings.HasPrefix(stderr, "tandem reconcile: ") || strings.Contains(stderr, testenv.Password) {
			t.Errorf("exit %d, want 1 with the error on stderr, nothing on stdout, no password\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})

	t.Run("config error exits 2", func(t *testing.T) {
		code, stdout, stderr := reconcile(t, strings.Replace(config(tgtDSN, ""), "  settle: 10ms", "  setle: 10ms", 1))
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "tandem.yaml:9:3") || !strings.Contains(stderr, "setle") {
			t.Errorf("exit %d, want 2 naming tandem.yaml:9:3 and the key, nothing on stdout\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
}
