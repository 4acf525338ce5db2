package backfill

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// EstimateConfig says what Estimate samples and how the copy would run.
type EstimateConfig struct {
	Tables    []change.Table
	ChunkRows int           // rows per chunk read (default 5000)
	SampleFor time.Duration // reading time per table (default 3s)
	MaxChunks int           // chunks per table at most; 0: no limit but SampleFor
	// MaxRowsPerSecond is backfill.max_rows_per_second (0: unthrottled):
	// the projection under it is the slower of the measured rate and it.
	MaxRowsPerSecond float64
	Parallel         int              // tables copied at once (default 4)
	Now              func() time.Time // the clock; nil: time.Now
}

// TableEstimate is the projection for one table.
type TableEstimate struct {
	Table change.Table
	// Rows is the table's row count by the source's statistics, or the
	// exact count when the sample read the whole table (Exact). When the
	// table has no statistics it is the rows sampled, a lower bound
	// (AtLeast).
	Rows    int64
	Exact   bool
	AtLeast bool
	// Sampled, SampleBytes and SampleTook are what the sample read and
	// how long the reads took.
	Sampled     int64
	SampleBytes int64
	SampleTook  time.Duration
	// RowsPerSecond is the measured read rate; BytesPerRow the average
	// row size in memory.
	RowsPerSecond float64
	BytesPerRow   float64
	// Projected is the time to read Rows at RowsPerSecond (0 for an
	// empty table; -1 when unknown); Limited the same under
	// MaxRowsPerSecond (equal to Projected when unthrottled).
	Projected time.Duration
	Limited   time.Duration
}

// EstimateReport is the projection of a whole backfill.
type EstimateReport struct {
	Tables []TableEstimate // in the order of EstimateConfig.Tables
	Rows   int64
	// Projected is the time to copy every table, Parallel at once,
	// largest first (as Run schedules them); Limited the same under
	// MaxRowsPerSecond, which is shared by every table.
	Projected time.Duration
	Limited   time.Duration
	Parallel  int
}

// Estimate samples each table's copy without writing anything: it reads
// chunks in key order for up to SampleFor (or MaxChunks chunks), measures
// the read rate and row size, and projects how long the copy would take.
// The projection counts reading only: writing to the target comes on top,
// so it is a lower bound.
func Estimate(ctx context.Context, reader Reader, cfg EstimateConfig) (*EstimateReport, error) {
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 5000
	}
	if cfg.SampleFor <= 0 {
		cfg.SampleFor = 3 * time.Second
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rep := &EstimateReport{Parallel: cfg.Parallel}
	for _, name := range cfg.Tables {
		e, err := estimateTable(ctx, reader, name, cfg)
		if err != nil {
			return nil, fmt.Errorf("estimate %s: %w", name, err)
		}
		rep.Tables = append(rep.Tables, e)
		rep.Rows += e.Rows
	}
	rep.Projected = schedule(rep.Tables, cfg.Parallel)
	rep.Limited = rep.Projected
	if cfg.MaxRowsPerSecond > 0 && rep.Projected >= 0 {
		rep.Limited = max(rep.Projected, seconds(float64(rep.Rows)/cfg.MaxRowsPerSecond))
	}
	return rep, nil
}

func estimateTable(ctx context.Context, reader Reader, name change.Table, cfg EstimateConfig) (TableEstimate, error) {
	e := TableEstimate{Table: name}
	t, err := reader.Describe(ctx, name)
	if err != nil {
		return e, err
	}
	if len(t.Key) == 0 {
		return e, fmt.Errorf("the table has no primary key to copy it in order by; add one")
	}
	est, err := reader.Estimate(ctx, name)
	if err != nil {
		return e, err
	}
	var after []string
	for chunks := 0; cfg.MaxChunks <= 0 || chunks < cfg.MaxChunks; chunks++ {
		if e.SampleTook >= cfg.SampleFor {
			break
		}
		start := cfg.Now()
		rows, last, err := reader.Chunk(ctx, t, after, cfg.ChunkRows)
		if err != nil {
			return e, fmt.Errorf("read chunk after %s: %w", encodeKey(after), err)
		}
		e.SampleTook += cfg.Now().Sub(start)
		e.Sampled += int64(len(rows))
		for _, row := range rows {
			e.SampleBytes += int64(approxRowBytes(row))
		}
		if len(rows) < cfg.ChunkRows {
			e.Exact = true
			break
		}
		after = last
	}
	switch {
	case e.Exact:
		e.Rows = e.Sampled
	case est > e.Sampled:
		e.Rows = est
	default: // no statistics, or stale ones: at least what was read
		e.Rows, e.AtLeast = e.Sampled, true
	}
	if e.Sampled > 0 {
		e.BytesPerRow = float64(e.SampleBytes) / float64(e.Sampled)
		if secs := e.SampleTook.Seconds(); secs > 0 {
			e.RowsPerSecond = float64(e.Sampled) / secs
		} else {
			e.RowsPerSecond = math.Inf(1) // faster than the clock can tell
		}
	}
	switch {
	case e.Rows == 0 || math.IsInf(e.RowsPerSecond, 1):
		e.Projected = 0
	case e.RowsPerSecond > 0:
		e.Projected = seconds(float64(e.Rows) / e.RowsPerSecond)
	default:
		e.Projected = -1
	}
	e.Limited = e.Projected
	if cfg.MaxRowsPerSecond > 0 && e.Projected >= 0 {
		e.Limited = max(e.Projected, seconds(float64(e.Rows)/cfg.MaxRowsPerSecond))
	}
	return e, nil
}

// schedule returns how long copying the tables takes, parallel at once,
// largest first, each starting as soon as a copy finishes: Run's order.
// -1 when a table's duration is unknown.
func schedule(tables []TableEstimate, parallel int) time.Duration {
	sorted := slices.Clone(tables)
	slices.SortStableFunc(sorted, func(a, b TableEstimate) int {
		switch {
		case a.Rows > b.Rows:
			return -1
		case a.Rows < b.Rows:
			return 1
		}
		return 0
	})
	free := make([]time.Duration, max(1, parallel)) // when each copy slot is free
	for _, t := range sorted {
		if t.Projected < 0 {
			return -1
		}
		i := slices.Index(free, slices.Min(free))
		free[i] += t.Projected
	}
	return slices.Max(free)
}

func seconds(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// approxRowBytes estimates a row's size: its texts and byte strings, and
// 8 bytes for any other value.
func approxRowBytes(row change.Row) int {
	n := 0
	for _, v := range row {
		switch v := v.(type) {
		case nil:
		case string:
			n += len(v)
		case []byte:
			n += len(v)
		default:
			n += 8
		}
	}
	return n
}
