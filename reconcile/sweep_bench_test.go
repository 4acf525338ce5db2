package reconcile

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// sortedSource is a source table keyed by id 1..n, read by chunk in
// O(chunk): the in-memory benchmark measures the sweep, not its fake.
type sortedSource struct {
	fakeSource
	rows []change.Row // by id, ids 1..n
}

func (s *sortedSource) Chunk(_ context.Context, _ *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	from := 0
	if after != nil {
		id, _ := strconv.Atoi(after[0])
		from = id // rows[id] is id + 1
	}
	out := append(make([]change.Row, 0, limit), s.rows[min(from, len(s.rows)):min(from+limit, len(s.rows))]...)
	if len(out) == 0 {
		return nil, nil, nil
	}
	return out, []string{fmt.Sprint(out[len(out)-1]["id"])}, nil
}

// sortedTarget is target tables keyed by id, scanned in O(limit).
type sortedTarget struct {
	*fakeTarget
	ids map[string][]int64 // per table, sorted
}

func (s *sortedTarget) ScanRows(_ context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error) {
	ids := s.ids[table]
	from := 0
	if after != nil {
		from = sort.Search(len(ids), func(i int) bool { return ids[i] > after[key[0]].(int64) })
	}
	var out []map[string]any
	for _, id := range ids[from:min(from+limit, len(ids))] {
		out = append(out, pick(s.tables[table][id], cols))
	}
	return out, nil
}

// BenchmarkSweep_InMemory sweeps 100,000 equal rows of the split mapping
// (two outputs, one with a `when`) between in-memory tables: tandem's side
// of a sweep alone, without servers. rows/s counts source and target rows,
// as MappingReport.Checked does.
func BenchmarkSweep_InMemory(b *testing.B) {
	const n = 100_000
	src, tgt, mappings := newFixture(&testing.T{}, n)
	ss := &sortedSource{fakeSource: *src}
	for id := int64(1); id <= n; id++ {
		ss.rows = append(ss.rows, src.rows[id])
	}
	st := &sortedTarget{fakeTarget: tgt, ids: map[string][]int64{}}
	for table, rows := range tgt.tables {
		for id := range rows {
			st.ids[table] = append(st.ids[table], id)
		}
		sort.Slice(st.ids[table], func(i, j int) bool { return st.ids[table][i] < st.ids[table][j] })
	}
	r := New(Config{ChunkRows: 5000, Settle: time.Millisecond}, ss, st, mappings, nil, nil)
	b.ReportAllocs()
	b.ResetTimer()
	var checked int64
	for b.Loop() {
		rep, err := r.Sweep(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if rep.Drift() != 0 {
			b.Fatalf("%d drifted rows", rep.Drift())
		}
		checked += rep.Mappings[0].Checked
	}
	b.ReportMetric(float64(checked)/b.Elapsed().Seconds(), "rows/s")
}
