package reconcile

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/transform"
)

// rowsHash is the fakes' summary of rows: their count and the sum of an
// FNV hash of each row's values of cols, printed.
func rowsHash(rows []map[string]any, cols []string) pgtext.RowsHash {
	sum := new(big.Int)
	for _, r := range rows {
		h := fnv.New64a()
		for _, c := range cols {
			fmt.Fprintf(h, "%q;", fmt.Sprint(r[c]))
		}
		sum.Add(sum, new(big.Int).SetUint64(h.Sum64()))
	}
	return pgtext.RowsHash{Rows: int64(len(rows)), Sum: sum.String()}
}

// hashingSource is a fakeSource that summarises chunks, counting them.
type hashingSource struct {
	*fakeSource
	chunks int
}

func (s *hashingSource) HashChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error) {
	s.chunks++
	rows, last, err := s.Chunk(ctx, t, after, limit)
	ms := make([]map[string]any, len(rows))
	for i, r := range rows {
		ms[i] = r
	}
	return rowsHash(ms, cols), last, err
}

// hashingTarget is a fakeTarget that summarises key ranges.
type hashingTarget struct{ *fakeTarget }

func (t hashingTarget) HashRange(_ context.Context, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error) {
	bound := func(v any) int64 {
		n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	var rows []map[string]any
	for _, id := range slices.Sorted(maps.Keys(t.tables[table])) {
		if (after == nil || id > bound(after)) && (upTo == nil || id <= bound(upTo)) {
			rows = append(rows, t.tables[table][id])
		}
	}
	return rowsHash(rows, cols), nil
}

// newCopyFixture is a source of n rows whose mapping copies them (renaming
// status to state), both sides summarising, and a target holding their
// copies.
func newCopyFixture(t *testing.T, n int64) (*hashingSource, hashingTarget, []*transform.Mapping) {
	t.Helper()
	m := compileMapping(t, `  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          state: row.status
`)
	src := &hashingSource{fakeSource: &fakeSource{rows: map[int64]change.Row{}}}
	tgt := hashingTarget{&fakeTarget{types: map[string]string{"id": "bigint", "state": "text"},
		tables: map[string]map[int64]map[string]any{"public.orders": {}}}}
	for id := int64(1); id <= n; id++ {
		src.rows[id] = change.Row{"id": id, "status": "paid", "note": ""}
		tgt.tables["public.orders"][id] = map[string]any{"id": id, "state": "paid"}
	}
	return src, tgt, []*transform.Mapping{m}
}

// TestSweep_ChunksOfACopiedTableAreComparedBySummaries sweeps a mapping
// that copies its table (renaming a column) with both sides summarising
// chunks of 7 rows: only the chunks holding drift are compared row by row,
// and the report is the row-by-row report, drift before the first source
// key and after the last one included.
func TestSweep_ChunksOfACopiedTableAreComparedBySummaries(t *testing.T) {
	src, tgt, mappings := newCopyFixture(t, 50)
	orders := tgt.tables["public.orders"]
	delete(orders, 3)                                              // missing
	orders[4]["state"] = "new"                                     // mismatch
	orders[5]["state"] = "paid  "                                  // tolerated: trim_space
	orders[0] = map[string]any{"id": int64(0), "state": "before"}  // extra, before the first source key
	orders[99] = map[string]any{"id": int64(99), "state": "after"} // extra, after the last

	r := New(Config{ChunkRows: 7, Settle: time.Millisecond, Tolerate: []config.Tolerance{"trim_space"}}, src, tgt, mappings, nil, nil)
	rep, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Mappings[0]
	want := MappingReport{
		Mapping: "shop.orders", Direction: Forward, Checked: 50 + 51, Summarised: 6 * 14, Missing: 1, Extra: 2, Mismatch: 1, Columns: map[string]int{"public.orders.state": 1},
		Samples: []Drift{
			{Kind: KindExtra, Table: "public.orders", Key: map[string]any{"id": int64(0)}, SourceKey: change.Row{"id": int64(0)}, Got: map[string]any{"id": int64(0), "state": "before"}},
			{Kind: KindMissing, Table: "public.orders", Key: map[string]any{"id": int64(3)}, SourceKey: change.Row{"id": int64(3)},
				Want: map[string]any{"id": int64(3), "state": "paid"}},
			{Kind: KindMismatch, Table: "public.orders", Key: map[string]any{"id": int64(4)}, SourceKey: change.Row{"id": int64(4)}, Columns: []string{"state"},
				Want: map[string]any{"id": int64(4), "state": "paid"}, Got: map[string]any{"id": int64(4), "state": "new"}},
			{Kind: KindExtra, Table: "public.orders", Key: map[string]any{"id": int64(99)}, SourceKey: change.Row{"id": int64(99)}, Got: map[string]any{"id": int64(99), "state": "after"}},
		},
	}
	if diff := gocmp.Diff(want, got, gocmp.FilterPath(func(p gocmp.Path) bool { return p.Last().String() == ".Drifted" }, gocmp.Ignore())); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if src.chunks != 8 {
		t.Errorf("%d source chunks summarised, want 8 (50 rows by 7: seven full chunks, the last of one row)", src.chunks)
	}
}

// skewedTarget summarises ranges as hashingTarget does but never alike:
// the target writes equal values differently.
type skewedTarget struct{ hashingTarget }

func (t skewedTarget) HashRange(ctx context.Context, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error) {
	h, err := t.hashingTarget.HashRange(ctx, table, key, cols, after, upTo)
	h.Sum += "0"
	return h, err
}

// TestSweep_SummariesThatNeverMatchGiveWayToRows: when chunk after chunk
// differs in summary but not in rows, the sweep stops summarising after
// falseAlarms chunks and compares the rest row by row, still finding the
// drift there.
func TestSweep_SummariesThatNeverMatchGiveWayToRows(t *testing.T) {
	src, tgt, mappings := newCopyFixture(t, 200)
	tgt.tables["public.orders"][140]["state"] = "new" // past the chunks summarised
	r := New(Config{ChunkRows: 7, Settle: time.Millisecond}, src, skewedTarget{tgt}, mappings, nil, nil)
	rep, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Mappings[0]
	want := MappingReport{Mapping: "shop.orders", Direction: Forward, Checked: 400, Mismatch: 1, Columns: map[string]int{"public.orders.state": 1}, Samples: []Drift{
		{Kind: KindMismatch, Table: "public.orders", Key: map[string]any{"id": int64(140)}, SourceKey: change.Row{"id": int64(140)}, Columns: []string{"state"},
			Want: map[string]any{"id": int64(140), "state": "paid"}, Got: map[string]any{"id": int64(140), "state": "new"}},
	}}
	if diff := gocmp.Diff(want, got, gocmp.FilterPath(func(p gocmp.Path) bool { return p.Last().String() == ".Drifted" }, gocmp.Ignore())); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	// 3 chunks compared, of 29; the source's summaries run at most 4
	// chunks ahead (one in each channel, one waiting to send at each side).
	if src.chunks < falseAlarms || src.chunks > falseAlarms+4 {
		t.Errorf("%d source chunks summarised, want %d to %d", src.chunks, falseAlarms, falseAlarms+4)
	}
}

func TestSameFamily_OnlyTypesWhoseEqualTextIsEqualValues(t *testing.T) {
	for _, tc := range []struct {
		typ  change.Type
		sql  string
		want bool
	}{
		{change.TypeInt, "bigint", true},
		{change.TypeInt, "text", false},
		{change.TypeDecimal, "numeric(12,4)", true},
		{change.TypeDecimal, "double precision", false},
		{change.TypeTime, "timestamp with time zone", true},
		{change.TypeTime, "date", true},
		{change.TypeBytes, "bytea", true},
		{change.TypeBytes, "text", false},
		{change.TypeBool, "boolean", true},
		{change.TypeBool, "text", false},
		{change.TypeJSON, "jsonb", true},
		{change.TypeString, "character varying(20)", true},
		{change.TypeString, "uuid", true},
		{change.TypeString, "integer", false},
	} {
		if got := sameFamily(tc.typ, columnOf(tc.sql).kind); got != tc.want {
			t.Errorf("sameFamily(%s, %s) = %v, want %v", tc.typ, tc.sql, got, tc.want)
		}
	}
}

// TestSweep_RowsTheInverseDoesNotGiveBackAreRoundTripDrift sweeps a
// mapping with an inverse that loses the case of status: a row whose
// target row is right but whose status does not come back is round_trip
// drift, with the column and both values; a row that differs forward is
// only that; the mapping is not summarised (its rows must be read).
func TestSweep_RowsTheInverseDoesNotGiveBackAreRoundTripDrift(t *testing.T) {
	m := compileMapping(t, `  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          state: lower(row.status)
    inverse:
      columns:
        id: orders.id
        status: orders.state
      ignore: [note]
`)
	src := &hashingSource{fakeSource: &fakeSource{rows: map[int64]change.Row{}}}
	tgt := hashingTarget{&fakeTarget{types: map[string]string{"id": "bigint", "state": "text"},
		tables: map[string]map[int64]map[string]any{"public.orders": {}}}}
	for id := int64(1); id <= 20; id++ {
		status := "paid"
		if id == 5 || id == 6 {
			status = "PAID"
		}
		src.rows[id] = change.Row{"id": id, "status": status, "note": ""}
		tgt.tables["public.orders"][id] = map[string]any{"id": id, "state": "paid"}
	}
	tgt.tables["public.orders"][6]["state"] = "refunded" // differs forward too

	reg := prometheus.NewRegistry()
	r := New(Config{ChunkRows: 7, Settle: time.Millisecond}, src, tgt, []*transform.Mapping{m}, NewMetrics(reg), nil)
	rep, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := MappingReport{Mapping: "shop.orders", Direction: Forward, Checked: 40, Mismatch: 1, RoundTrip: 1,
		Columns: map[string]int{"public.orders.state": 1, "shop.orders.status": 1}, Samples: []Drift{
			{Kind: KindMismatch, Table: "public.orders", Key: map[string]any{"id": int64(6)}, SourceKey: change.Row{"id": int64(6)}, Columns: []string{"state"},
				Want: map[string]any{"id": int64(6), "state": "paid"}, Got: map[string]any{"id": int64(6), "state": "refunded"}},
			{Kind: KindRoundTrip, Table: "shop.orders", Key: map[string]any{"id": int64(5)}, SourceKey: change.Row{"id": int64(5)}, Columns: []string{"status"},
				Want: map[string]any{"status": "PAID"}, Got: map[string]any{"status": "paid"}},
		}}
	if diff := gocmp.Diff(want, rep.Mappings[0], gocmp.FilterPath(func(p gocmp.Path) bool { return p.Last().String() == ".Drifted" }, gocmp.Ignore())); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(r.metrics.Drift.WithLabelValues("shop.orders", string(KindRoundTrip))); got != 1 {
		t.Errorf("tandem_drift_rows{kind=round_trip} = %v, want 1", got)
	}
	if src.chunks != 0 {
		t.Errorf("%d chunks summarised, want none", src.chunks)
	}
}
