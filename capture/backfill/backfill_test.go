package backfill

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
)

// memReader serves tables of n rows with keys 1..n (a fake source: the
// readers of real servers have their own tests).
type memReader struct{ sizes map[string]int }

func (r memReader) Describe(_ context.Context, t change.Table) (*Table, error) {
	return &Table{Name: t, Columns: []string{"id"}, Types: map[string]change.Type{"id": change.TypeInt}, Key: []string{"id"}}, nil
}

func (r memReader) Chunk(_ context.Context, t *Table, after []string, limit int) ([]change.Row, []string, error) {
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

// memStore is an in-memory sink.BackfillStore.
type memStore struct {
	mu    sync.Mutex
	saved map[string]sink.BackfillProgress
	log   []string // "table state rows"
}

func (s *memStore) BackfillProgress(context.Context) ([]sink.BackfillProgress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sink.BackfillProgress
	for _, p := range s.saved {
		out = append(out, p)
	}
	return out, nil
}

func (s *memStore) SaveBackfill(_ context.Context, p sink.BackfillProgress) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saved == nil {
		s.saved = map[string]sink.BackfillProgress{}
	}
	s.saved[p.Table] = p
	s.log = append(s.log, fmt.Sprintf("%s %s %d", p.Table, p.State, p.Rows))
	return nil
}

func (s *memStore) ResetBackfill(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = nil
	return nil
}

func tables(names ...string) []change.Table {
	var ts []change.Table
	for _, n := range names {
		ts = append(ts, change.Table{Schema: "s", Name: n})
	}
	return ts
}

// run runs a Runner whose emit acknowledges every batch at once (as a
// pipeline whose downstream is instantly durable), collecting the ids.
func run(t *testing.T, cfg Config, r Reader, store *memStore) (Summary, map[string][]int64) {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]int64{}
	var runner *Runner
	runner = New(cfg, r, store, func(ctx context.Context, b change.Batch) error {
		mu.Lock()
		for _, e := range b.Events {
			if e.Op != change.OpRead {
				t.Errorf("op %v, want read", e.Op)
			}
			got[e.Table.String()] = append(got[e.Table.String()], e.After["id"].(int64))
		}
		mu.Unlock()
		return runner.Ack(ctx, b.Pos)
	}, nil, nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
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

func TestRun_CopiesEveryRowOnceInKeyOrderAndMarksTablesDone(t *testing.T) {
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
	store := &memStore{saved: map[string]sink.BackfillProgress{
		"s.a": {Table: "s.a", State: sink.BackfillRunning, After: `["20"]`, Rows: 20},
		"s.b": {Table: "s.b", State: sink.BackfillDone, After: `["10"]`, Rows: 10},
	}}
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

func TestRun_ExternalKafkaEndsCopiedNotDone(t *testing.T) {
	store := &memStore{}
	run(t, Config{Tables: tables("a"), ChunkRows: 10, DurableOnProduce: true}, memReader{sizes: map[string]int{"s.a": 5}}, store)
	got, _ := store.BackfillProgress(context.Background())
	want := []sink.BackfillProgress{{Table: "s.a", State: sink.BackfillCopied, After: `["5"]`, Rows: 5}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(sink.BackfillProgress{}, "Started", "Updated")); diff != "" {
		t.Errorf("final progress (-want +got):\n%s", diff)
	}
}

func TestRun_ProgressIsSavedOnlyWhenAcknowledged(t *testing.T) {
	store := &memStore{}
	var runner *Runner
	var held []change.Position
	runner = New(Config{Tables: tables("a"), ChunkRows: 10}, memReader{sizes: map[string]int{"s.a": 30}}, store,
		func(ctx context.Context, b change.Batch) error {
			held = append(held, b.Pos) // durable later
			if len(held) == 4 {        // the last (empty) chunk: release them in order
				for _, p := range held {
					if err := runner.Ack(ctx, p); err != nil {
						return err
					}
				}
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

func TestAck_OfALaterChunkAcknowledgesEveryEarlierOne(t *testing.T) {
	store := &memStore{}
	var runner *Runner
	var last change.Position
	n := 0
	runner = New(Config{Tables: tables("a", "b"), ChunkRows: 10, Parallel: 1}, memReader{sizes: map[string]int{"s.a": 20, "s.b": 5}}, store,
		func(ctx context.Context, b change.Batch) error {
			n++
			last = b.Pos
			if n == 4 { // a: 10, 10, 0 rows; b: 5 rows — a durable prefix reported by its last chunk only
				return runner.Ack(ctx, last)
			}
			return nil
		}, nil, nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 25 {
		t.Errorf("summary %+v", sum)
	}
	got, _ := store.BackfillProgress(context.Background())
	slicesSortByTable(got)
	want := []sink.BackfillProgress{{Table: "s.a", State: sink.BackfillDone, After: `["20"]`, Rows: 20}, {Table: "s.b", State: sink.BackfillDone, After: `["5"]`, Rows: 5}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(sink.BackfillProgress{}, "Started", "Updated")); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

func slicesSortByTable(ps []sink.BackfillProgress) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Table < ps[j].Table })
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

func (c *countingReader) Chunk(ctx context.Context, t *Table, after []string, limit int) ([]change.Row, []string, error) {
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

func TestRun_WaitsForApplyBeforeReadingAheadPastMaxInFlightRows(t *testing.T) {
	reader := &countingReader{memReader: memReader{sizes: map[string]int{"s.a": 25}}}
	var mu sync.Mutex
	var held []change.Position
	var runner *Runner
	runner = New(Config{Tables: tables("a"), ChunkRows: 10, MaxInFlightRows: 15}, reader, &memStore{},
		func(_ context.Context, b change.Batch) error {
			mu.Lock()
			held = append(held, b.Pos)
			mu.Unlock()
			return nil
		}, nil, nil)
	done := make(chan error, 1)
	go func() { _, err := runner.Run(context.Background()); done <- err }()
	emitted := func() int { mu.Lock(); defer mu.Unlock(); return len(held) }
	// The second chunk is read, but 10 + 10 rows would exceed 15 in flight.
	if _, err := poll.Until(context.Background(), time.Millisecond, 10*time.Second, func() (bool, error) { return reader.count() >= 2, nil }); err != nil {
		t.Fatal(err)
	}
	if n := emitted(); n != 1 {
		t.Fatalf("%d chunks emitted with none durable; want 1", n)
	}
	// Each acknowledgement lets the next chunk go.
	for i := 0; i < 3; i++ { // 10, 10 and the last 5 rows
		if _, err := poll.Until(context.Background(), time.Millisecond, 10*time.Second, func() (bool, error) { return emitted() > i, nil }); err != nil {
			t.Fatalf("chunk %d never emitted: %v", i+1, err)
		}
		mu.Lock()
		p := held[i]
		mu.Unlock()
		if err := runner.Ack(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
