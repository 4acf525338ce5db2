package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/internal/testenv"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
)

// TestChunkSummaries_EqualRowsSummariseAlikeAndAnyChangeShows checks the
// two halves of reconcile's chunk summaries on real servers: the source
// reader's HashChunk and the target sink's HashRange summarise equal rows
// alike, chunk by chunk, with the target's columns in another order and
// named otherwise, and whatever either session's time zone; and a change
// of one value (NULL to ”, padding, a swap of two columns' values) makes
// its chunk's summaries differ, and only its chunk's.
func TestChunkSummaries_EqualRowsSummariseAlikeAndAnyChangeShows(t *testing.T) {
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	conn := func(dsn string) *pgx.Conn {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	src, tgt := conn(srcDSN), conn(tgtDSN)
	const values = `(1, 'plain', 'ab', true, 1.50, '2024-01-02 03:04:05.123456+00', '\x00ff', '{"a": [1, 2]}', NULL),
	(2, '', NULL, false, -0.01, '1970-01-01 00:00:00+00', '', '{}', 'x'),
	(3, 'a,b', 'a', NULL, 0, NULL, NULL, 'null', ''),
	(4, 'quote " and \ back', 'quote', true, 99999999.99, 'infinity', '\x01', '[]', 'y'),
	(5, 'ünïcödé 😀', '', false, 1, '2000-02-29 23:59:59+00', '\x', '"s"', NULL),
	(6, NULL, 'x', true, 2, '2024-06-01 12:00:00+02', NULL, NULL, 'z'),
	(7, '(1,2)', 'y', false, 3, '2024-06-01 12:00:00+00', '\x02', '1', 'w')`
	for _, sql := range []string{
		`CREATE SCHEMA s`,
		`CREATE TABLE s.t (id bigint PRIMARY KEY, a text, b char(5), c boolean, d numeric(10,2), e timestamptz, f bytea, g jsonb, h text)`,
		`INSERT INTO s.t VALUES ` + values,
	} {
		if _, err := src.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, sql := range []string{
		`CREATE TABLE public.t (h2 text, id bigint PRIMARY KEY, b2 char(5), a2 text, c2 boolean, d2 numeric(10,2), e2 timestamptz, f2 bytea, g2 jsonb)`,
		`INSERT INTO public.t (id, a2, b2, c2, d2, e2, f2, g2, h2) VALUES ` + values,
	} {
		if _, err := tgt.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	reader, err := pgcapture.NewTableReader(ctx, srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	table, err := reader.Describe(ctx, change.Table{Schema: "s", Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	// The target's sessions read times in another zone: the summaries'
	// own settings override it.
	sink, err := sinkpg.New(ctx, sinkpg.Config{DSN: tgtDSN + "&options=-c%20TimeZone%3DAmerica/New_York", ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	srcCols := []string{"id", "a", "b", "c", "d", "e", "f", "g", "h"}
	tgtCols := []string{"id", "a2", "b2", "c2", "d2", "e2", "f2", "g2", "h2"}

	// chunks summarises both sides in chunks of 3.
	chunks := func() []summaryChunk {
		t.Helper()
		return summaryChunks(3, func(after []string) (pgtext.RowsHash, []string) {
			sh, last, err := reader.HashChunk(ctx, table, srcCols, after, 3)
			if err != nil {
				t.Fatal(err)
			}
			return sh, last
		}, func(lo, hi any) pgtext.RowsHash {
			th, err := sink.HashRange(ctx, "public.t", "id", tgtCols, lo, hi)
			if err != nil {
				t.Fatal(err)
			}
			return th
		})
	}
	if diff := cmp.Diff([]summaryChunk{{3, true}, {3, true}, {1, true}}, chunks()); diff != "" {
		t.Fatalf("equal tables: chunks (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		change, undo string
		differ       []int // the chunks whose summaries differ
	}{
		{`UPDATE public.t SET a2 = '' WHERE id = 6`, `UPDATE public.t SET a2 = NULL WHERE id = 6`, []int{1}}, // NULL is not ''
		{`UPDATE public.t SET h2 = NULL WHERE id = 5`, `SELECT 1`, []int{}},                                  // already NULL: no change
		{`UPDATE public.t SET b2 = NULL WHERE id = 5`, `UPDATE public.t SET b2 = '' WHERE id = 5`, []int{1}}, // '' in char(5) is spaces, not NULL
		{`UPDATE public.t SET a2 = 'x', h2 = 'plain' WHERE id = 4`, `UPDATE public.t SET a2 = 'quote " and \ back', h2 = 'y' WHERE id = 4`, []int{1}},
		{`UPDATE public.t SET a2 = h2, h2 = a2 WHERE id = 2`, `UPDATE public.t SET a2 = h2, h2 = a2 WHERE id = 2`, []int{0}}, // a swap
		{`UPDATE public.t SET e2 = e2 + interval '1 microsecond' WHERE id = 1`, `UPDATE public.t SET e2 = e2 - interval '1 microsecond' WHERE id = 1`, []int{0}},
		{`DELETE FROM public.t WHERE id = 7`, `INSERT INTO public.t (id, a2, b2, c2, d2, e2, f2, g2, h2) VALUES (7, '(1,2)', 'y', false, 3, '2024-06-01 12:00:00+00', '\x02', '1', 'w')`, []int{2}},
		{`INSERT INTO public.t (id) VALUES (8)`, `DELETE FROM public.t WHERE id = 8`, []int{2}}, // past the source's last key: the last chunk's
	} {
		if _, err := tgt.Exec(ctx, tc.change); err != nil {
			t.Fatal(err)
		}
		got := chunks()
		if _, err := tgt.Exec(ctx, tc.undo); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.differ, differing(got)); diff != "" {
			t.Errorf("after %s: chunks whose summaries differ (-want +got):\n%s", tc.change, diff)
		}
	}
	if diff := cmp.Diff([]summaryChunk{{3, true}, {3, true}, {1, true}}, chunks()); diff != "" {
		t.Errorf("after undoing every change: chunks (-want +got):\n%s", diff)
	}
}

// TestReconcile_ColumnTypesThatWriteValuesDifferentlyFallBackToRows
// reconciles a copied table whose target stores its amounts at another
// scale (numeric(12,4) for numeric(10,2): "1.50" is "1.5000") and its
// times with a zone: every chunk's summaries differ while its rows are
// equal, so the sweep soon compares rows instead, and finds no drift but
// the one row seeded.
func TestReconcile_ColumnTypesThatWriteValuesDifferentlyFallBackToRows(t *testing.T) {
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	execPG(t, srcDSN, `CREATE SCHEMA s; CREATE TABLE s.accounts (id bigint PRIMARY KEY, balance numeric(10,2), seen timestamp);
INSERT INTO s.accounts SELECT g, g / 4.0, timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, 60) g`)
	execPG(t, tgtDSN, `CREATE TABLE public.accounts (id bigint PRIMARY KEY, balance numeric(12,4), seen timestamptz);
SET TimeZone = 'UTC';
INSERT INTO public.accounts SELECT g, g / 4.0, timestamp '2024-01-01' + g * interval '1 minute' FROM generate_series(1, 60) g;
UPDATE public.accounts SET balance = 0 WHERE id = 50`)
	cfg := parseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [s.accounts]
  postgres: { slot: unused, publication: unused }
target:
  kind: postgres
  dsn: %q
reconcile:
  chunk_rows: 4
mappings:
  - from: s.accounts
    to:
      - table: public.accounts
        key: [id]
        columns:
          id: row.id
          balance: row.balance
          seen: row.seen
`, srcDSN, tgtDSN))
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Settle: 10 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "comparing rows for the rest of this sweep") {
		t.Errorf("the sweep did not give up summaries; its log:\n%s", logged.String())
	}
	got := res.Report.Mappings[0]
	if got.Checked != 120 || got.Summarised != 0 || got.Mismatch != 1 || got.Drift() != 1 {
		t.Errorf("report: %d checked, %d summarised, %d mismatch, %d drift; want 120, 0, 1, 1", got.Checked, got.Summarised, got.Mismatch, got.Drift())
	}
	if len(got.Samples) != 1 || fmt.Sprint(got.Samples[0].Key) != "map[id:50]" {
		t.Errorf("drifted rows: %+v, want the row of id 50", got.Samples)
	}
}
