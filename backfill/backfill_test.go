package backfill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
)

// memReader serves tables of n rows with keys 1..n (a fake source: the
// readers of real servers have their own tests).
type memReader struct{ sizes map[string]int }

func (r memReader) Describe(_ context.Context, t change.Table) (*change.Schema, error) {
	return &change.Schema{Name: t, Columns: []string{"id"}, Types: map[string]change.Type{"id": change.TypeInt}, Key: []string{"id"}}, nil
}

func (r memReader) Chunk(_ context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	from := 1
	if after != nil {
		n, err := strconv.Atoi(after[0])
		if err != nil {
			return nil, nil, err
		}
		from = n + 1
	}
	var rows []change.Row
	var last []string
	for id := from; id <= r.sizes[t.Name.String()] && len(rows) < limit; id++ {
		rows = append(rows, change.Row{"id": int64(id)})
		last = []string{strconv.Itoa(id)}
	}
	return rows, last, nil
}

func (r memReader) Estimate(_ context.Context, t change.Table) (int64, error) {
	return int64(r.sizes[t.String()]), nil
}

// memStore is an in-memory sink.BackfillStore (the trial copy's) that
// logs each save.
type memStore struct {
	memProgress
	log []string // "table state rows"
}

// storeWith is a memStore holding saved progress.
func storeWith(saved ...sink.BackfillProgress) *memStore {
	s := &memStore{}
	for _, p := range saved {
		s.memProgress.SaveBackfill(context.Background(), p)
	}
	return s
}

func (s *memStore) SaveBackfill(ctx context.Context, p sink.BackfillProgress) error {
	s.mu.Lock()
	s.log = append(s.log, fmt.Sprintf("%s %s %d", p.Table, p.State, p.Rows))
	s.mu.Unlock()
	return s.memProgress.SaveBackfill(ctx, p)
}

func tables(names ...string) []change.Table {
	var ts []change.Table
	for _, n := range names {
		ts = append(ts, change.Table{Schema: "s", Name: n})
	}
	return ts
}

// run runs a Runner whose writes succeed at once, collecting the ids
// written, sorted (chunks of a table are written several at a time).
func run(t *testing.T, cfg Config, r Reader, store *memStore) (Summary, map[string][]int64) {
	t.Helper()
	return runWith(t, cfg, r, store, nil)
}

// runWith is run whose writes call before first (nil: none), and fail
// with its error.
func runWith(t *testing.T, cfg Config, r Reader, store *memStore, before func(Chunk) error) (Summary, map[string][]int64) {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]int64{}
	runner := New(cfg, r, store, func(ctx context.Context, b Chunk) error {
		if before != nil {
			if err := before(b); err != nil {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range b.Table.Reads(b.Rows) {
			if e.Op != change.OpRead {
				t.Errorf("op %v, want read", e.Op)
			}
			got[e.Table.String()] = append(got[e.Table.String()], e.After["id"].(int64))
		}
		return nil
	}, nil, nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ids := range got {
		slices.Sort(ids)
	}
	return sum, got
}

func ids(from, to int) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

func TestRun_CopiesEveryRowOnceAndMarksTablesDone(t *testing.T) {
	r := memReader{sizes: map[string]int{"s.a": 25, "s.b": 10, "s.empty": 0}}
	store := &memStore{}
	sum, got := run(t, Config{Tables: tables("a", "b", "empty"), ChunkRows: 10, Parallel: 1}, r, store)
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(1, 25), "s.b": ids(1, 10)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if sum.Rows != 35 || sum.Tables != 3 {
		t.Errorf("summary %+v", sum)
	}
	// Largest first; running before any chunk; progress per durable chunk; done at the end.
	want := []string{"s.a running 0", "s.b running 0", "s.empty running 0",
		"s.a running 10", "s.a running 20", "s.a running 25",
		"s.b running 10", "s.b running 10",
		"s.empty running 0",
		"s.a done 25", "s.b done 10", "s.empty done 0"}
	if diff := cmp.Diff(want, store.log); diff != "" {
		t.Errorf("saved progress (-want +got):\n%s", diff)
	}
}

func TestRun_ResumesAfterTheSavedKeyAndSkipsDoneTables(t *testing.T) {
	r := memReader{sizes: map[string]int{"s.a": 25, "s.b": 10}}
	store := storeWith(
		sink.BackfillProgress{Table: "s.a", State: sink.BackfillRunning, After: `["20"]`, Rows: 20},
		sink.BackfillProgress{Table: "s.b", State: sink.BackfillDone, After: `["10"]`, Rows: 10})
	sum, got := run(t, Config{Tables: tables("a", "b"), ChunkRows: 10}, r, store)
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(21, 25)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tables("b"), sum.Skipped); diff != "" || sum.Rows != 25 {
		t.Errorf("summary %+v (skipped diff %s)", sum, diff)
	}
	// --restart copies everything again.
	_, got = run(t, Config{Tables: tables("a", "b"), ChunkRows: 10, Restart: true}, r, store)
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(1, 25), "s.b": ids(1, 10)}, got); diff != "" {
		t.Errorf("copied after restart (-want +got):\n%s", diff)
	}
}

func TestRun_SavesProgressInChunkOrderWhenALaterChunkIsWrittenFirst(t *testing.T) {
	store := &memStore{}
	second := make(chan struct{}) // closed once the second chunk is written
	runner := New(Config{Tables: tables("a"), ChunkRows: 10}, memReader{sizes: map[string]int{"s.a": 30}}, store,
		func(ctx context.Context, b Chunk) error {
			switch b.Rows[0]["id"] {
			case int64(1): // the first chunk ends last
				select {
				case <-second:
				case <-ctx.Done():
					return ctx.Err()
				}
			case int64(11):
				close(second)
			}
			return nil
		}, nil, nil)
	if _, err := runner.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"s.a running 0", "s.a running 10", "s.a running 20", "s.a running 30", "s.a running 30", "s.a done 30"}
	if diff := cmp.Diff(want, store.log); diff != "" {
		t.Errorf("saved progress (-want +got):\n%s", diff)
	}
}

func TestRun_AFailedWriteSavesNoProgressPastItAndTheRerunResumesThere(t *testing.T) {
	store := &memStore{}
	var mu sync.Mutex
	var written []int64
	write := func(fail int64) func(context.Context, Chunk) error {
		return func(_ context.Context, b Chunk) error {
			if b.Rows[0]["id"] == fail {
				return errors.New("target refused the chunk")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, row := range b.Rows {
				written = append(written, row["id"].(int64))
			}
			return nil
		}
	}
	reader := memReader{sizes: map[string]int{"s.a": 35}}
	_, err := New(Config{Tables: tables("a"), ChunkRows: 10}, reader, store, write(21), nil, nil).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `backfill s.a: write the chunk after ["20"]: target refused the chunk`) {
		t.Fatalf("Run: %v; want the failed chunk's error", err)
	}
	got, _ := store.BackfillProgress(context.Background())
	if len(got) != 1 || got[0].State != sink.BackfillRunning || got[0].Rows > 20 {
		t.Fatalf("progress after the failure: %+v; want running, at most 20 rows", got)
	}
	// Whatever was saved, the re-run copies every row after it: rows 31-35
	// may have been written (a later chunk), but not saved.
	from := got[0].Rows
	written = nil
	sum, err := New(Config{Tables: tables("a"), ChunkRows: 10}, reader, store, write(-1), nil, nil).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(written)
	if diff := cmp.Diff(ids(int(from)+1, 35), written); diff != "" || sum.Rows != 35 {
		t.Errorf("re-run wrote (-want +got):\n%s\nsummary %+v", diff, sum)
	}
}

func TestNextLimit_GrowsUnderTheByteBoundAndShrinksOverIt(t *testing.T) {
	tests := []struct{ limit, bytes, want int }{
		{100, 1000, 200},         // small rows: double
		{4000, 1000, 5000},       // up to chunk_rows
		{100, 5 << 20, 100},      // between a quarter and the bound: keep
		{100, 64 << 20, 25},      // 4x over: a quarter
		{1, 1 << 30, 1},          // one huge row: never below one
		{5000, 16<<20 + 1, 4999}, // just over: a little less
		{5000, (16 << 20) / 8, 5000},
	}
	for _, tt := range tests {
		if got := nextLimit(tt.limit, 5000, 16<<20, tt.bytes); got != tt.want {
			t.Errorf("nextLimit(%d, bytes %d) = %d, want %d", tt.limit, tt.bytes, got, tt.want)
		}
	}
}

func TestRun_WaitsWhilePausedAndCountsItThrottled(t *testing.T) {
	var calls int
	reasons := []string{"replication lag 45s > 30s", "replication lag 45s > 30s", ""}
	cfg := Config{Tables: tables("a"), ChunkRows: 10, PauseCheckEvery: time.Millisecond,
		Pause: func(context.Context) (string, error) {
			calls++
			if calls <= len(reasons) {
				return reasons[calls-1], nil
			}
			return "", nil
		}}
	sum, got := run(t, cfg, memReader{sizes: map[string]int{"s.a": 15}}, &memStore{})
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(1, 15)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if sum.Throttled <= 0 || calls < 4 {
		t.Errorf("throttled %v after %d pause checks; want > 0 after >= 4", sum.Throttled, calls)
	}
}

// countingReader counts Chunk calls.
type countingReader struct {
	memReader
	mu    sync.Mutex
	calls int
}

func (c *countingReader) Chunk(ctx context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	return c.memReader.Chunk(ctx, t, after, limit)
}

func (c *countingReader) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestRun_ReadsAheadNoFurtherThanMaxInFlightBytesAllow(t *testing.T) {
	reader := &countingReader{memReader: memReader{sizes: map[string]int{"s.a": 25}}}
	var mu sync.Mutex
	started := 0
	release := make(chan struct{})
	runner := New(Config{Tables: tables("a"), ChunkRows: 10, MaxInFlightBytes: 1}, reader, &memStore{},
		func(ctx context.Context, c Chunk) error {
			mu.Lock()
			started++
			mu.Unlock()
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, nil, nil)
	done := make(chan error, 1)
	go func() { _, err := runner.Run(context.Background()); done <- err }()
	// The second chunk is read, but the first, being written, holds the
	// whole budget: the second is not handed to a writer (it would be by
	// now, two writers write a table's chunks).
	writes := func() int { mu.Lock(); defer mu.Unlock(); return started }
	if _, err := poll.Until(context.Background(), time.Millisecond, 10*time.Second, func() (bool, error) {
		return reader.count() >= 2 && writes() >= 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := writes(); n != 1 {
		t.Fatalf("%d writes started with the budget held by one; want 1", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := reader.count(); got != 3 { // 10, 10 and the last 5 rows
		t.Errorf("%d chunks read, want 3", got)
	}
}
