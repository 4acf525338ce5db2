package backfill

import (
	"context"
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
	store := &memStore{saved: map[string]sink.BackfillProgress{
		"s.b": {Table: "s.b", State: sink.BackfillDone, After: `["7"]`, Rows: 7},
	}}
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
	store := &memStore{saved: map[string]sink.BackfillProgress{
		"s.a": {Table: "s.a", State: sink.BackfillRunning, After: `["20"]`, Rows: 20},
	}}
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

func TestRun_NegativeProgressEveryLogsNoProgressLines(t *testing.T) {
	// A Runner whose ProgressEvery is negative must still run (the
	// periodic logger is off, not ticking every 0 s).
	store := &memStore{}
	sum, _ := run(t, Config{Tables: tables("a"), ChunkRows: 10, ProgressEvery: -1}, memReader{sizes: map[string]int{"s.a": 12}}, store)
	if sum.Rows != 12 {
		t.Errorf("summary %+v", sum)
	}
}
