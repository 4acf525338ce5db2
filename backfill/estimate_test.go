package backfill

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

// clockedReader is a memReader whose every chunk read takes perChunk on
// clock, and whose statistics know nothing of the tables in noStats.
type clockedReader struct {
	memReader
	clock    *fakeClock
	perChunk time.Duration
	noStats  map[string]bool
	chunks   int
}

func (r *clockedReader) Chunk(ctx context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	r.chunks++
	r.clock.Add(r.perChunk)
	return r.memReader.Chunk(ctx, t, after, limit)
}

func (r *clockedReader) Estimate(ctx context.Context, t change.Table) (int64, error) {
	if r.noStats[t.String()] {
		return 0, nil
	}
	return r.memReader.Estimate(ctx, t)
}

func TestEstimate_SamplesEachTableAndProjectsTheCopy(t *testing.T) {
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	reader := &clockedReader{memReader: memReader{sizes: map[string]int{"s.big": 1000, "s.small": 15, "s.empty": 0, "s.nostats": 500}},
		clock: clock, perChunk: time.Second, noStats: map[string]bool{"s.nostats": true}}
	got, err := Estimate(context.Background(), reader, EstimateConfig{
		Tables: tables("big", "small", "empty", "nostats"), ChunkRows: 10, SampleFor: 3 * time.Second,
		MaxRowsPerSecond: 5, Parallel: 2, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &EstimateReport{
		Tables: []TableEstimate{
			// Three chunks in 3 s: 10 rows/s; 1000 rows by statistics.
			{Table: tables("big")[0], Rows: 1000, Sampled: 30, SampleBytes: 240, SampleTook: 3 * time.Second,
				RowsPerSecond: 10, BytesPerRow: 8, Projected: 100 * time.Second, Limited: 200 * time.Second},
			// Read whole (10 + 5 rows): the count is exact.
			{Table: tables("small")[0], Rows: 15, Exact: true, Sampled: 15, SampleBytes: 120, SampleTook: 2 * time.Second,
				RowsPerSecond: 7.5, BytesPerRow: 8, Projected: 2 * time.Second, Limited: 3 * time.Second},
			{Table: tables("empty")[0], Exact: true, SampleTook: time.Second},
			// No statistics: at least what was read.
			{Table: tables("nostats")[0], Rows: 30, AtLeast: true, Sampled: 30, SampleBytes: 240, SampleTook: 3 * time.Second,
				RowsPerSecond: 10, BytesPerRow: 8, Projected: 3 * time.Second, Limited: 6 * time.Second},
		},
		Rows: 1045,
		// Two at once, largest first: big (100 s) beside nostats, small and empty.
		Projected: 100 * time.Second,
		// The rate limit is shared: 1045 rows at 5 rows/s.
		Limited:  209 * time.Second,
		Parallel: 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("estimate (-want +got):\n%s", diff)
	}
}

func TestEstimate_StopsAfterMaxChunksAndWritesNothing(t *testing.T) {
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	reader := &clockedReader{memReader: memReader{sizes: map[string]int{"s.a": 1000}}, clock: clock, perChunk: 10 * time.Millisecond}
	got, err := Estimate(context.Background(), reader, EstimateConfig{Tables: tables("a"), ChunkRows: 10, MaxChunks: 4, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if reader.chunks != 4 {
		t.Errorf("read %d chunks, want 4", reader.chunks)
	}
	want := TableEstimate{Table: tables("a")[0], Rows: 1000, Sampled: 40, SampleBytes: 320, SampleTook: 40 * time.Millisecond,
		RowsPerSecond: 1000, BytesPerRow: 8, Projected: time.Second, Limited: time.Second}
	if diff := cmp.Diff([]TableEstimate{want}, got.Tables); diff != "" {
		t.Errorf("estimate (-want +got):\n%s", diff)
	}
	if got.Projected != time.Second || got.Limited != time.Second {
		t.Errorf("total projected %s, limited %s; want 1s, 1s (unthrottled)", got.Projected, got.Limited)
	}
}

func TestEstimate_TableWithoutPrimaryKeyIsAnError(t *testing.T) {
	_, err := Estimate(context.Background(), keylessReader{}, EstimateConfig{Tables: tables("a")})
	if err == nil {
		t.Fatal("estimate of a table without a primary key: no error")
	}
}

type keylessReader struct{ memReader }

func (keylessReader) Describe(_ context.Context, t change.Table) (*change.Schema, error) {
	return &change.Schema{Name: t, Columns: []string{"id"}}, nil
}
