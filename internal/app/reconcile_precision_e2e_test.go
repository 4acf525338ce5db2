package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/reconcile"
)

// precisionSourceDDL is a source of 200 rows whose values a less precise
// target column rounds: timestamps in steps of 777 µs (into millisecond
// columns), numerics of four places (into two), doubles whose shortest
// text ends in a 5 in the third place (1.005, 1.010, ...: their binary
// values are on either side of the half) and doubles of no short float32
// (into real / FLOAT).
const precisionSourceDDL = `CREATE TABLE items (id int PRIMARY KEY, ts timestamptz(6), n numeric(12,4), f double precision, r double precision);
INSERT INTO items SELECT g, timestamptz '2026-01-02 03:04:05+00' + g * interval '777 microseconds', g * 0.0125,
	(1000 + g * 5)::float8 / 1000, g::float8 / 7 FROM generate_series(1, 200) g`

// precisionMapping copies items as it is into the less precise target.
const precisionMapping = `mappings:
  - from: public.items
    to:
      - table: items
        key: [id]
        columns: { id: row.id, ts: row.ts, n: row.n, f: row.f, r: row.r }
`

// TestReconcile_LessPreciseTargetColumnsCompareAsTheyStore backfills a
// PostgreSQL table into a target whose columns keep fewer digits
// (timestamptz(3) / DATETIME(3), numeric(10,2) / DECIMAL(10,2), real /
// FLOAT), where the target database rounds or truncates each value as it
// stores it: reconcile finds no drift in the 200 rows. A real difference
// in each column, seeded afterwards, is still found.
func TestReconcile_LessPreciseTargetColumnsCompareAsTheyStore(t *testing.T) {
	for _, tc := range []struct {
		target, ddl string
		// differ seeds a real difference into row 7 (ts), 8 (n), 9 (f)
		// and 10 (r). MySQL-family timestamps may be truncated or rounded
		// (reconcile accepts both): 2 ms is a difference either way.
		differ string
	}{
		{"postgres", `CREATE TABLE items (id int PRIMARY KEY, ts timestamptz(3), n numeric(10,2), f numeric(10,2), r real)`,
			`UPDATE items SET ts = ts + interval '1 millisecond' WHERE id = 7;
UPDATE items SET n = n + 0.01 WHERE id = 8;
UPDATE items SET f = f - 0.01 WHERE id = 9;
UPDATE items SET r = r * 1.001 WHERE id = 10`},
		{"mysql", `CREATE TABLE items (id INT PRIMARY KEY, ts DATETIME(3), n DECIMAL(10,2), f DECIMAL(10,2), r FLOAT)`,
			`UPDATE items SET ts = ts + INTERVAL 2000 MICROSECOND WHERE id = 7;
UPDATE items SET n = n + 0.01 WHERE id = 8;
UPDATE items SET f = f - 0.01 WHERE id = 9;
UPDATE items SET r = r * 1.001 WHERE id = 10`},
	} {
		t.Run(tc.target, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			src := testenv.NewDatabase(t)
			execPG(t, src, precisionSourceDDL)
			var tgt string
			var execTarget func(sql string)
			if tc.target == "postgres" {
				tgt = testenv.NewDatabase(t)
				execTarget = func(sql string) { execPG(t, tgt, sql) }
			} else {
				tgt = testenv.NewMariaDBDatabase(t)
				execTarget = func(sql string) {
					t.Helper()
					if err := testenv.SharedMariaDB(t).Exec(ctx, dbOfDSN(t, tgt), sql); err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
				}
			}
			execTarget(tc.ddl)
			cfg := pgSourceConfig(t, src, "public.items", tc.target, tgt, precisionMapping)
			if tc.target == "mysql" {
				// tandem's tables in a state database of this test's own
				// (the target's name is made unique by its last part).
				db := dbOfDSN(t, tgt)
				cfg.Target.StateSchema = "precision_state" + db[strings.LastIndexByte(db, '_'):]
			}
			if _, err := runBackfill(t, ctx, cfg, app.BackfillOptions{}); err != nil {
				t.Fatal(err)
			}

			mr := reconcileOnce(t, ctx, cfg)
			// Checked counts the source rows and the target's keys.
			if mr.Checked != 400 || mr.Drift() != 0 {
				t.Errorf("after the backfill: %d rows checked, %d drift (%+v); want 400, none", mr.Checked, mr.Drift(), mr.Samples)
			}

			execTarget(tc.differ)
			mr = reconcileOnce(t, ctx, cfg)
			want := []driftKey{
				{Kind: "mismatch", Table: "items", Key: "map[id:7]", Columns: []string{"ts"}},
				{Kind: "mismatch", Table: "items", Key: "map[id:8]", Columns: []string{"n"}},
				{Kind: "mismatch", Table: "items", Key: "map[id:9]", Columns: []string{"f"}},
				{Kind: "mismatch", Table: "items", Key: "map[id:10]", Columns: []string{"r"}},
			}
			if diff := cmp.Diff(want, driftKeys(mr.Samples)); diff != "" {
				t.Errorf("real differences (-want +got):\n%s", diff)
			}
			if mr.Mismatch != 4 || mr.Drift() != 4 {
				t.Errorf("%d mismatches, %d drift; want 4, 4", mr.Mismatch, mr.Drift())
			}
		})
	}
}

// reconcileOnce runs `tandem reconcile --once` on cfg's one mapping.
func reconcileOnce(t *testing.T, ctx context.Context, cfg *config.Config) reconcile.MappingReport {
	t.Helper()
	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Report.Mappings) != 1 {
		t.Fatalf("%d mapping reports, want 1", len(res.Report.Mappings))
	}
	return res.Report.Mappings[0]
}
