package backfill

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Over the whole copy, and so over any window from its start, the rows
// written never run ahead of max_rows_per_second: the rate's bucket starts
// empty and holds one chunk. Slowness on a loaded machine only lowers the
// rate, so the bound holds whatever the load.
func TestRun_RateLimitHoldsFromTheStart(t *testing.T) {
	const rate, chunk, rows = 4000.0, 200, 3000
	type written struct {
		at   time.Duration
		rows int
	}
	var mu sync.Mutex
	var log []written
	total := 0
	start := time.Now()
	runner := New(Config{Tables: tables("a", "b"), ChunkRows: chunk, MaxRowsPerSecond: rate, Parallel: 2},
		memReader{sizes: map[string]int{"s.a": rows / 2, "s.b": rows / 2}}, &memStore{},
		func(_ context.Context, c Chunk) error {
			mu.Lock()
			defer mu.Unlock()
			total += c.Len()
			log = append(log, written{time.Since(start), total})
			return nil
		}, nil, nil)
	sum, err := runner.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if total != rows || sum.Rows != rows {
		t.Fatalf("copied %d rows (summary %d), want %d", total, sum.Rows, rows)
	}
	for _, w := range log {
		if limit := rate*w.at.Seconds() + 1; float64(w.rows) > limit {
			t.Errorf("%d rows written %s after the start: more than the rate allows (%.0f)", w.rows, w.at, limit)
		}
	}
	// The whole copy waited for the rate: at least (rows - 0) / rate.
	if min := time.Duration(float64(rows) / rate * float64(time.Second)); sum.Throttled < min/2 {
		t.Errorf("throttled %s of a copy the rate bounds to at least %s", sum.Throttled, min)
	}
}

// Pause checks that find nothing to wait for count as no throttling, however
// long the check itself takes (a lag or load query on a busy server).
func TestRun_PauseChecksThatDoNotPauseAreNotThrottling(t *testing.T) {
	var checks int
	cfg := Config{Tables: tables("a"), ChunkRows: 10,
		Pause: func(ctx context.Context) (string, error) {
			checks++
			select { // a check that takes its time, as a query does
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
			}
			return "", nil
		}}
	sum, got := run(t, cfg, memReader{sizes: map[string]int{"s.a": 35}}, &memStore{})
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(1, 35)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if sum.Throttled != 0 || checks < 4 {
		t.Errorf("throttled %v after %d checks that never paused; want 0 after >= 4", sum.Throttled, checks)
	}
}
