package resync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/transform"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// fixture is a source table, its target tables and the mapping between
// them: items keyed by the source key, by_code keyed by another column,
// flagged only while tag is "flag". name fails on a row whose name is
// "bad".
type fixture struct {
	src, tgt *pgxpool.Pool
	reader   *pgcapture.TableReader
	sink     *sinkpg.Sink
	m        *transform.Mapping
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	f := &fixture{}
	var err error
	for _, db := range []struct {
		pool **pgxpool.Pool
		dsn  string
		ddl  string
	}{
		{&f.src, srcDSN, `CREATE SCHEMA inv; CREATE TABLE inv.items (id bigint PRIMARY KEY, code text NOT NULL, tag text NOT NULL, name text NOT NULL)`},
		{&f.tgt, tgtDSN, `CREATE TABLE items (id bigint PRIMARY KEY, code text, name text);
			CREATE TABLE by_code (code text PRIMARY KEY, item_id bigint); CREATE TABLE flagged (id bigint PRIMARY KEY)`},
	} {
		if *db.pool, err = pgxpool.New(ctx, db.dsn); err != nil {
			t.Fatal(err)
		}
		t.Cleanup((*db.pool).Close)
		if _, err := (*db.pool).Exec(ctx, db.ddl); err != nil {
			t.Fatal(err)
		}
	}
	if f.reader, err = pgcapture.NewTableReader(ctx, srcDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.reader.Close() })
	if f.sink, err = sinkpg.New(ctx, sinkpg.Config{DSN: tgtDSN}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.sink.Close() })
	cfg := apptest.ParseConfig(t, fmt.Sprintf(`source: { kind: postgres, dsn: %q, tables: [inv.items] }
target: { kind: postgres, dsn: %q }
mappings:
  - from: inv.items
    to:
      - table: items
        key: [id]
        columns: { id: row.id, code: row.code, name: 'row.name == "bad" ? string(int(row.name)) : row.name' }
      - table: by_code
        key: [code]
        columns: { code: row.code, item_id: row.id }
      - table: flagged
        key: [id]
        when: row.tag == "flag"
        columns: { id: row.id }
`, srcDSN, tgtDSN))
	ms, err := app.CompileMappings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.m = ms[0]
	return f
}

func (f *fixture) exec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// target reads every target table as text lines, sorted.
func (f *fixture) target(t *testing.T) []string {
	t.Helper()
	rows, err := f.tgt.Query(t.Context(), `SELECT 'items ' || id || ' ' || code || ' ' || name FROM items
		UNION ALL SELECT 'by_code ' || code || ' ' || item_id FROM by_code UNION ALL SELECT 'flagged ' || id FROM flagged`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func (f *fixture) wantTarget(t *testing.T, want ...string) {
	t.Helper()
	slices.Sort(want)
	if diff := cmp.Diff(want, f.target(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("target (-want +got):\n%s", diff)
	}
}

// rows re-syncs rows into target and returns the results and the indexes
// Synced was called with.
func (f *fixture) rows(t *testing.T, target sink.Sink, rows ...resync.Row) ([]resync.Result, []int) {
	t.Helper()
	var synced []int
	res, err := resync.Rows(t.Context(), f.reader, f.m, target, rows, func(_ context.Context, i int) error {
		synced = append(synced, i)
		return nil
	})
	if err != nil {
		t.Fatalf("Rows: %v", err)
	}
	return res, synced
}

func key(id int64) change.Row { return change.Row{"id": id} }

func TestRows_WritesTheCurrentRowAndDeletesWhatItsImagesMappedTo(t *testing.T) {
	f := newFixture(t)
	f.exec(t, f.src, `INSERT INTO inv.items VALUES (1, 'b', '', 'one'), (2, 'c2', 'flag', 'two')`)
	// Row 1 was written when its code was a and it was flagged.
	f.exec(t, f.tgt, `INSERT INTO items VALUES (1, 'a', 'uno'); INSERT INTO by_code VALUES ('a', 1); INSERT INTO flagged VALUES (1)`)
	image := change.Row{"id": int64(1), "code": "a", "tag": "flag", "name": "uno"}
	res, synced := f.rows(t, f.sink, resync.Row{Key: key(1), Images: []change.Row{image}}, resync.Row{Key: key(2)})
	f.wantTarget(t, "items 1 b one", "by_code b 1", "items 2 c2 two", "by_code c2 2", "flagged 2")
	if diff := cmp.Diff([]int{0, 1}, synced); diff != "" {
		t.Errorf("Synced calls (-want +got):\n%s", diff)
	}
	for i, r := range res {
		if r.Err != nil || !r.Exists || r.Writes == 0 {
			t.Errorf("result %d = %+v, want an existing row written without error", i, r)
		}
	}
}

func TestRows_GoneRowLosesItsTargetRows(t *testing.T) {
	f := newFixture(t)
	f.exec(t, f.tgt, `INSERT INTO items VALUES (3, 'c3', 'x'), (4, 'c4', 'y'); INSERT INTO by_code VALUES ('c3', 3), ('c4', 4); INSERT INTO flagged VALUES (3), (4)`)
	image := change.Row{"id": int64(3), "code": "c3", "tag": "flag", "name": "x"}
	// Without an image, row 4's by_code key (from its code) is unknown.
	res, synced := f.rows(t, f.sink, resync.Row{Key: key(3), Images: []change.Row{image}}, resync.Row{Key: key(4)})
	f.wantTarget(t, "items 4 c4 y", "by_code c4 4", "flagged 4")
	if res[0].Err != nil || res[0].Exists {
		t.Errorf("gone row with an image: %+v, want deleted without error", res[0])
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "which target rows to delete is unknown") {
		t.Errorf("gone row without an image: err %v, want one saying its target keys are unknown", res[1].Err)
	}
	if diff := cmp.Diff([]int{0}, synced); diff != "" {
		t.Errorf("Synced calls (-want +got):\n%s", diff)
	}
}

// insertOnDelete is the real sink, inserting a source row just before it
// applies the first batch of deletes: the row comes back while its target
// rows are being deleted.
type insertOnDelete struct {
	sink.Sink
	t    *testing.T
	src  *pgxpool.Pool
	sql  string
	done bool
}

func (s *insertOnDelete) Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	if !s.done && len(b.Writes) > 0 && b.Writes[0].Op == change.WriteDelete {
		s.done = true
		if _, err := s.src.Exec(ctx, s.sql); err != nil {
			s.t.Errorf("%s: %v", s.sql, err)
		}
	}
	return s.Sink.Apply(ctx, b, cp)
}

func TestRows_RowInsertedWhileItsTargetRowsAreDeletedIsResyncedUnderItsLock(t *testing.T) {
	f := newFixture(t)
	f.exec(t, f.tgt, `INSERT INTO items VALUES (5, 'old', 'x'); INSERT INTO by_code VALUES ('old', 5)`)
	target := &insertOnDelete{Sink: f.sink, t: t, src: f.src, sql: `INSERT INTO inv.items VALUES (5, 'new', 'flag', 'five')`}
	image := change.Row{"id": int64(5), "code": "old", "tag": "", "name": "x"}
	res, synced := f.rows(t, target, resync.Row{Key: key(5), Images: []change.Row{image}})
	if !target.done {
		t.Fatal("the row was not looked up as gone first: the test proves nothing")
	}
	f.wantTarget(t, "items 5 new five", "by_code new 5", "flagged 5")
	if res[0].Err != nil || !res[0].Exists || len(synced) != 1 {
		t.Errorf("result %+v, synced %v; want an existing row, written once", res[0], synced)
	}
}

func TestRows_MappingThatStillFailsLeavesTheTargetAlone(t *testing.T) {
	f := newFixture(t)
	f.exec(t, f.src, `INSERT INTO inv.items VALUES (6, 'new', '', 'bad')`)
	f.exec(t, f.tgt, `INSERT INTO items VALUES (6, 'old', 'x'); INSERT INTO by_code VALUES ('old', 6)`)
	image := change.Row{"id": int64(6), "code": "old", "tag": "", "name": "x"}
	res, synced := f.rows(t, f.sink, resync.Row{Key: key(6), Images: []change.Row{image}})
	f.wantTarget(t, "items 6 old x", "by_code old 6")
	var ev *transform.EvalError
	if !errors.As(res[0].Err, &ev) || ev.Path != "to[0].columns.name" {
		t.Errorf("result %+v: want the mapping's error on to[0].columns.name", res[0])
	}
	if len(synced) != 0 {
		t.Errorf("Synced called for a row that failed: %v", synced)
	}
}
