package backfill

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestProgress_ReportsDurableEmittedEstimatedRateAndState(t *testing.T) {
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := storeWith(sink.BackfillProgress{Table: "s.b", State: sink.BackfillDone, After: `["7"]`, Rows: 7})
	reader := memReader{sizes: map[string]int{"s.a": 25, "s.b": 7, "s.c": 10}}
	var (
		runner  *Runner
		mid     []TableProgress
		release = make(chan struct{})
	)
	runner = New(Config{Tables: tables("a", "b", "c"), ChunkRows: 10, Parallel: 1}, reader, store,
		func(ctx context.Context, b Chunk) error {
			switch b.Rows[0]["id"] {
			case int64(11): // a's second chunk: written after the snapshot
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			case int64(21): // a's last chunk (rows 21-25), once the first is durable
				if _, err := poll.Until(ctx, time.Millisecond, 10*time.Second, func() (bool, error) {
					return runner.Progress()[0].Durable == 10, nil
				}); err != nil {
					return err
				}
				clock.Add(2 * time.Second)
				mid = runner.Progress()
				close(release)
			}
			return nil
		}, nil, nil)
	runner.live.now = clock.Now

	before := runner.Progress()
	wantBefore := []TableProgress{
		{Table: tables("a")[0], State: StateWaiting},
		{Table: tables("b")[0], State: StateWaiting},
		{Table: tables("c")[0], State: StateWaiting},
	}
	if diff := cmp.Diff(wantBefore, before); diff != "" {
		t.Errorf("progress before Run (-want +got):\n%s", diff)
	}

	if _, err := runner.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantMid := []TableProgress{
		{Table: tables("a")[0], State: StateCopying, Durable: 10, Emitted: 25, Estimated: 25, RowsPerSecond: 5, Elapsed: 2 * time.Second},
		{Table: tables("b")[0], State: StateSkipped, Durable: 7, Emitted: 7, Estimated: 7},
		{Table: tables("c")[0], State: StateWaiting, Estimated: 10}, // Parallel 1: after a
	}
	if diff := cmp.Diff(wantMid, mid); diff != "" {
		t.Errorf("progress while copying (-want +got):\n%s", diff)
	}
	wantEnd := []TableProgress{
		{Table: tables("a")[0], State: StateDone, Durable: 25, Emitted: 25, Estimated: 25, RowsPerSecond: 12.5, Elapsed: 2 * time.Second},
		{Table: tables("b")[0], State: StateSkipped, Durable: 7, Emitted: 7, Estimated: 7},
		{Table: tables("c")[0], State: StateDone, Durable: 10, Emitted: 10, Estimated: 10},
	}
	if diff := cmp.Diff(wantEnd, runner.Progress()); diff != "" {
		t.Errorf("progress after Run (-want +got):\n%s", diff)
	}
}

func TestProgress_ResumedRowsDoNotCountTowardsTheRate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := storeWith(sink.BackfillProgress{Table: "s.a", State: sink.BackfillRunning, After: `["20"]`, Rows: 20})
	runner := New(Config{Tables: tables("a"), ChunkRows: 10}, memReader{sizes: map[string]int{"s.a": 30}}, store,
		func(ctx context.Context, b Chunk) error {
			clock.Add(time.Second)
			return nil
		}, nil, nil)
	runner.live.now = clock.Now
	if _, err := runner.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Rows 21-30 written in 1 s (the empty last chunk writes nothing).
	want := []TableProgress{{Table: tables("a")[0], State: StateDone, Durable: 30, Emitted: 30, Estimated: 30, RowsPerSecond: 10, Elapsed: time.Second}}
	if diff := cmp.Diff(want, runner.Progress()); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

// progressLines is a slog.Handler that keeps the "backfill progress"
// records a Runner logs, for tests that read them.
type progressLines struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (h *progressLines) Enabled(context.Context, slog.Level) bool { return true }
func (h *progressLines) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *progressLines) WithGroup(string) slog.Handler            { return h }
func (h *progressLines) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "backfill progress" {
		return nil
	}
	line := map[string]any{}
	r.Attrs(func(a slog.Attr) bool { line[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, line)
	return nil
}

func (h *progressLines) get() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.lines)
}

// TestRun_ProgressEveryLogsEachTablesProgress is the positive control of
// the test below: with a short interval, progress lines name the table and
// the rows durable so far, and the handler that reads them sees them.
func TestRun_ProgressEveryLogsEachTablesProgress(t *testing.T) {
	logs := &progressLines{}
	runner := New(Config{Tables: tables("a"), ChunkRows: 10, ProgressEvery: time.Millisecond}, memReader{sizes: map[string]int{"s.a": 12}}, &memStore{},
		func(ctx context.Context, b Chunk) error {
			if b.Rows[0]["id"] != int64(11) {
				return nil
			}
			// The second chunk waits for a line that counts the first as durable.
			_, err := poll.Until(ctx, time.Millisecond, 10*time.Second, func() (bool, error) {
				for _, l := range logs.get() {
					if l["rows_durable"] == int64(10) {
						return true, nil
					}
				}
				return false, nil
			})
			return err
		}, slog.New(logs), nil)
	if _, err := runner.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs.get() {
		if l["table"] != "s.a" {
			t.Errorf("progress line %v, want table s.a", l)
		}
	}
}

func TestRun_NegativeProgressEveryLogsNoProgressLines(t *testing.T) {
	// A Runner whose ProgressEvery is negative must still run (the
	// periodic logger is off, not ticking every 0 s), and log no progress
	// line however long it copies: each chunk gives a ticker 50 ms to
	// show one (the test above sees its first within a millisecond or so).
	logs := &progressLines{}
	runner := New(Config{Tables: tables("a"), ChunkRows: 10, ProgressEvery: -time.Millisecond}, memReader{sizes: map[string]int{"s.a": 12}}, &memStore{},
		func(ctx context.Context, b Chunk) error {
			_, err := poll.Until(ctx, time.Millisecond, 50*time.Millisecond, func() (bool, error) {
				return len(logs.get()) > 0, nil
			})
			if err != nil && !errors.Is(err, poll.ErrTimeout) {
				return err
			}
			return nil
		}, slog.New(logs), nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 12 {
		t.Errorf("summary %+v, want 12 rows", sum)
	}
	if got := logs.get(); len(got) != 0 {
		t.Errorf("progress lines logged with ProgressEvery < 0: %v", got)
	}
}
