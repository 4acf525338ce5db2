package reconcile

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSweep_InMemory sweeps 100,000 equal rows of the split mapping
// (two outputs, one with a `when`) between in-memory tables: the cost of
// tandem's side of a sweep alone, without servers. The rows/s it reports
// count source and target rows, as MappingReport.Checked does.
func BenchmarkSweep_InMemory(b *testing.B) {
	src, tgt, mappings := newFixture(&testing.T{}, 100_000)
	r := New(Config{ChunkRows: 5000, Settle: time.Millisecond}, src, tgt, mappings, nil, nil)
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
