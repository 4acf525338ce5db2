package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
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
	Parallel         int              // tables, or key ranges of one table, copied at once (default 4)
	Now              func() time.Time // the clock; nil: time.Now
	// Probe, if set, is where each table's copy is tried for SampleFor
	// after its reads are sampled: the copy as Run makes it (its
	// mappings, key ranges, verbatim chunks, Parallel at once, unthrottled)
	// into copies of the target's tables that nothing else sees (package
	// probe), with its progress in memory. The projection is then the
	// trial's rate, source, tandem and target together. nil: the reads
	// alone are timed.
	Probe      WriteTarget
	Mappings   []*transform.Mapping // the copy's, for the trial
	ServerText bool                 // the reader's verbatim text is the server's own (PostgreSQL)
	Log        *slog.Logger         // the trial's log; nil: none
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
	// Trial is what the trial copy did (EstimateConfig.Probe); zero
	// without one.
	Trial Trial
	// Projected is the time to copy Rows: at the trial's rate, with its
	// setup, or without a trial at RowsPerSecond (reads only): 0 for an
	// empty table; -1 when unknown. Limited is the same under
	// MaxRowsPerSecond (equal to Projected when unthrottled).
	Projected time.Duration
	Limited   time.Duration
}

// Trial is what a table's trial copy did.
type Trial struct {
	Rows   int64         // rows written into the probe
	Took   time.Duration // copying them, from the first chunk read
	Setup  time.Duration // before: describing, cutting the key ranges
	Ranges int           // key ranges copied at once
	Whole  bool          // the trial copied the whole table
	// RowsPerSecond is the trial's rate.
	RowsPerSecond float64
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

// Estimate samples each table's copy without writing anything visible: it
// reads chunks in key order for up to SampleFor (or MaxChunks chunks),
// measures the read rate and row size, then, with a Probe, tries the copy
// for SampleFor into the probe, and projects how long the copy would take.
// Without a probe the projection counts reading only: writing to the
// target comes on top, so it is a lower bound.
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
		if cfg.Probe != nil && e.Rows > 0 {
			if e.Trial, err = trialCopy(ctx, reader, name, cfg); err != nil {
				return nil, fmt.Errorf("estimate %s: try the copy: %w", name, err)
			}
			e.project(cfg.MaxRowsPerSecond)
		}
		rep.Tables = append(rep.Tables, e)
		rep.Rows += e.Rows
	}
	rep.Projected = schedule(rep.Tables, cfg.Parallel)
	if cfg.Probe != nil {
		rep.Projected = scheduleTrials(rep.Tables, cfg.Parallel)
	}
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

// trialCopy copies table name as Run would, into cfg.Probe, for
// SampleFor or until the whole table is copied.
func trialCopy(ctx context.Context, reader Reader, name change.Table, cfg EstimateConfig) (Trial, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tables := []change.Table{name}
	w, verbatim, err := newCopyWriter(ctx, cfg.Probe, reader, cfg.Mappings, tables, cfg.ServerText, log)
	if err != nil {
		return Trial{}, err
	}
	discard := func(labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trial"}, labels)
	}
	w.metrics = WriteMetrics{Rows: discard("table", "op"), Errors: discard("table", "reason"), DLQ: discard("mapping", "reason")}
	store := &memProgress{}
	runner := New(Config{Tables: tables, ChunkRows: cfg.ChunkRows, Parallel: cfg.Parallel, ProgressEvery: -1, Verbatim: verbatim},
		reader, store, w.write, log, nil)
	tctx, cancel := context.WithTimeout(ctx, cfg.SampleFor)
	defer cancel()
	start := cfg.Now()
	_, err = runner.Run(tctx)
	took := cfg.Now().Sub(start)
	if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded)) {
		return Trial{}, err
	}
	p := runner.Progress()[0]
	tr := Trial{Rows: p.Durable, Took: p.Elapsed, Setup: max(0, took-p.Elapsed), Ranges: 1, Whole: err == nil}
	if saved, _ := store.BackfillProgress(ctx); len(saved) == 1 {
		if rs, err := decodeRanges(saved[0].After, saved[0].Rows); err == nil {
			tr.Ranges = len(rs)
		}
	}
	if secs := tr.Took.Seconds(); secs > 0 {
		tr.RowsPerSecond = float64(tr.Rows) / secs
	}
	return tr, nil
}

// project projects a table's copy from its trial: the trial's duration
// when it copied the whole table, else its setup and Rows at its rate;
// under the rate limit, at least the setup and Rows at the limit.
func (e *TableEstimate) project(limit float64) {
	t := e.Trial
	switch {
	case t.Whole:
		e.Projected = t.Setup + t.Took
	case t.RowsPerSecond > 0:
		e.Projected = t.Setup + seconds(float64(e.Rows)/t.RowsPerSecond)
	default:
		e.Projected = -1
	}
	e.Limited = e.Projected
	if limit > 0 && e.Projected >= 0 {
		e.Limited = max(e.Projected, t.Setup+seconds(float64(e.Rows)/limit))
	}
}

// scheduleTrials returns how long copying the tables takes from their
// trials: a table copied in k key ranges takes k of the parallel workers
// for its duration; the copy takes at least its longest table, and the
// workers' time shared by them all.
func scheduleTrials(tables []TableEstimate, parallel int) time.Duration {
	var longest, work time.Duration
	for _, t := range tables {
		if t.Projected < 0 {
			return -1
		}
		longest = max(longest, t.Projected)
		work += t.Projected * time.Duration(max(1, t.Trial.Ranges))
	}
	return max(longest, work/time.Duration(max(1, parallel)))
}

// memProgress is a sink.BackfillStore in memory, for a trial copy.
type memProgress struct {
	mu    sync.Mutex
	saved map[string]sink.BackfillProgress
}

func (m *memProgress) BackfillProgress(context.Context) ([]sink.BackfillProgress, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Values(m.saved)), nil
}

func (m *memProgress) SaveBackfill(_ context.Context, p sink.BackfillProgress) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.saved == nil {
		m.saved = map[string]sink.BackfillProgress{}
	}
	m.saved[p.Table] = p
	return nil
}

func (m *memProgress) ResetBackfill(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.saved = nil
	return nil
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
