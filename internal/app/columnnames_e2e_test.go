package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// oddNamesDDL is a table whose column names are no identifiers: a space,
// a double quote, non-ASCII letters, a currency sign.
const oddNamesDDL = `CREATE TABLE odd (id integer PRIMARY KEY, "order id" integer, "say ""hi""" text, "naïve" text,
	"prix_€" numeric(10,2), "Größe" integer)`

// oddNamesTargetDDL is where the mapping writes them, under names as odd.
const oddNamesTargetDDL = `CREATE TABLE odd_new (id integer PRIMARY KEY, "order id x10" integer, "say ""hi""" text,
	"NAÏVE" text, "prix_€" numeric(10,2))`

// A mapping reads columns whose names are no identifiers with
// row["name"] and writes target columns named as oddly: backfill, the
// stream (insert, update, delete) and reconcile all handle them, on real
// servers.
func TestRun_ColumnsWhoseNamesAreNoIdentifiers(t *testing.T) {
	ctx := context.Background()
	srcDSN := testenv.NewDatabase(t)
	src := pgConnect(t, srcDSN)
	tgtDSN := testenv.NewDatabase(t)
	tgt := pgConnect(t, tgtDSN)
	if _, err := src.Exec(ctx, oddNamesDDL); err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.Exec(ctx, oddNamesTargetDDL); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, `INSERT INTO odd VALUES (1, 7, 'hé "quoted"', 'café', 12.50, 3), (2, 8, NULL, 'x', NULL, 0)`); err != nil {
		t.Fatal(err)
	}
	slot := "odd_" + dbOfDSN(t, srcDSN)
	t.Cleanup(func() {
		_, _ = src.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	cfg := parseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [public.odd]
  postgres: { slot: %s, publication: %s }
kafka:
  topic_prefix: odd
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: public.odd
    to:
      - table: public.odd_new
        key: [id]
        when: 'row["Größe"] > 0'
        columns:
          id: row.id
          "order id x10": row["order id"] * 10
          'say "hi"': row['say "hi"']
          NAÏVE: upper(row["naïve"])
          prix_€: row["prix_€"]
`, srcDSN, slot, slot, tgtDSN))
	checkClean(t, cfg)
	if _, err := runBackfill(t, ctx, cfg, app.BackfillOptions{}); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	read := func() ([][]string, error) {
		return cart.PGText(ctx, tgt, `SELECT id::text, "order id x10"::text, "say ""hi""", "NAÏVE", "prix_€"::text FROM odd_new ORDER BY id`)
	}
	waitText(t, "backfill", [][]string{{"1", "70", `hé "quoted"`, "CAFÉ", "12.50"}}, read)

	start(t, cfg)
	if _, err := src.Exec(ctx, `INSERT INTO odd VALUES (3, 9, 'trois', 'ÿ', 0.01, 1);
		UPDATE odd SET "order id" = 70, "naïve" = 'naïve' WHERE id = 1;
		UPDATE odd SET "Größe" = 5 WHERE id = 2;
		INSERT INTO odd VALUES (4, 1, 'gone', 'gone', 1, 1);
		DELETE FROM odd WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	waitText(t, "stream", [][]string{
		{"1", "700", `hé "quoted"`, "NAÏVE", "12.50"},
		{"2", "80", cart.Null, "X", cart.Null},
		{"3", "90", "trois", "Ÿ", "0.01"},
	}, read)

	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, mr := range res.Report.Mappings {
		if mr.Drift() != 0 || mr.Checked != 6 { // three source rows and three target keys
			t.Errorf("reconcile of %s: %d drifted of %d checked, want 0 of 6: %+v", mr.Mapping, mr.Drift(), mr.Checked, mr.Samples)
		}
	}
}
