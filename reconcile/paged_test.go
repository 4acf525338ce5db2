package reconcile

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// scanCounter remembers the highest id of public.orders its target has
// handed out in key order.
type scanCounter struct{ scanned atomic.Int64 }

func (c *scanCounter) saw(table string, rows []map[string]any) {
	if table == "public.orders" && len(rows) > 0 {
		c.scanned.Store(max(c.scanned.Load(), rows[len(rows)-1]["id"].(int64)))
	}
}

// scanningTarget is a fakeTarget that counts how far its tables are read.
type scanningTarget struct {
	*fakeTarget
	scanCounter
}

func (t *scanningTarget) ScanRows(ctx context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error) {
	rows, err := t.fakeTarget.ScanRows(ctx, table, key, cols, after, limit)
	t.saw(table, rows)
	return rows, err
}

// scanningHashTarget is a hashingTarget that counts how far its tables are
// read row by row.
type scanningHashTarget struct {
	hashingTarget
	scanCounter
}

func (t *scanningHashTarget) ScanRows(ctx context.Context, table string, key, cols []string, after map[string]any, limit int) ([]map[string]any, error) {
	rows, err := t.hashingTarget.ScanRows(ctx, table, key, cols, after, limit)
	t.saw(table, rows)
	return rows, err
}

// deleteInFlight deletes source rows 3..n, as a large DELETE committed on
// the source and not yet applied, and returns the lag function of a stream
// that applies it up to the rows the sweep has read from the target, and
// where the sweep had read up to when it first re-checked a difference.
func deleteInFlight(src *fakeSource, tgt *fakeTarget, sc *scanCounter, n int64) (lag func() time.Duration, firstRecheck *int64) {
	for id := int64(3); id <= n; id++ {
		delete(src.rows, id)
	}
	at := int64(-1)
	src.onRow = func(int64) {
		if at < 0 {
			at = sc.scanned.Load()
		}
	}
	return func() time.Duration {
		tgt.mu.Lock()
		defer tgt.mu.Unlock()
		for id := int64(3); id <= sc.scanned.Load(); id++ {
			for _, rows := range tgt.tables {
				delete(rows, id)
			}
		}
		return 0
	}, &at
}

// TestSweep_ATargetFarLargerThanItsSourceIsComparedAPageAtATime: a DELETE
// of most of the source's rows, in flight, leaves the target holding rows
// past the source's last chunk. The sweep reads and settles them a page at
// a time instead of reading the whole rest of the target first (a
// million-row DELETE used to take a GiB), walked row by row and by
// summaries, and none of them is drift once the stream has applied them.
func TestSweep_ATargetFarLargerThanItsSourceIsComparedAPageAtATime(t *testing.T) {
	defer func(n int) { maxHeldSuspects = n }(maxHeldSuspects)
	maxHeldSuspects = 4
	const n = 60
	t.Run("row by row", func(t *testing.T) {
		src, fake, mappings := newFixture(t, n)
		tgt := &scanningTarget{fakeTarget: fake}
		lag, firstRecheck := deleteInFlight(src, fake, &tgt.scanCounter, n)
		r := New(Config{ChunkRows: 5, Settle: time.Millisecond, Lag: lag}, src, tgt, mappings, nil, nil)
		checkPaged(t, r, firstRecheck, n)
	})
	t.Run("by summaries", func(t *testing.T) {
		src, fake, mappings := newCopyFixture(t, n)
		tgt := &scanningHashTarget{hashingTarget: fake}
		lag, firstRecheck := deleteInFlight(src.fakeSource, fake.fakeTarget, &tgt.scanCounter, n)
		r := New(Config{ChunkRows: 5, Settle: time.Millisecond, Lag: lag}, src, tgt, mappings, nil, nil)
		checkPaged(t, r, firstRecheck, n)
	})
}

func checkPaged(t *testing.T, r *Reconciler, firstRecheck *int64, n int64) {
	t.Helper()
	rep, err := r.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := rep.Mappings[0]
	if got.Drift() != 0 || got.InFlight == 0 {
		t.Errorf("drift %d (%+v), in flight %d; want 0 and the deleted rows in flight", got.Drift(), got.Samples, got.InFlight)
	}
	// Two pages of 5 hold more than 4 differences; the walk reads a page
	// ahead: the first re-check comes a few pages in, not at the end.
	if *firstRecheck < 5 || *firstRecheck >= n/2 {
		t.Errorf("the first difference was re-checked once the sweep had read the target up to id %d, want a few pages of 5 of %d",
			*firstRecheck, n)
	}
}
