package backfill

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// splitReader is a memReader that cuts tables into ranges of equal size
// (the readers of real servers sample theirs and have their own tests).
type splitReader struct {
	memReader
	splits atomic.Int32 // calls of Split
}

func (r *splitReader) Split(_ context.Context, t *change.Schema, n int, minRows int64) ([][]string, error) {
	r.splits.Add(1)
	size := int64(r.sizes[t.Name.String()])
	n = int(min(int64(n), size/max(minRows, 1)))
	var out [][]string
	for i := 1; i < n; i++ {
		out = append(out, []string{strconv.FormatInt(size*int64(i)/int64(n), 10)})
	}
	return out, nil
}

func (r *splitReader) RangeChunk(ctx context.Context, t *change.Schema, after, until []string, limit int) ([]change.Row, []string, error) {
	rows, _, err := r.Chunk(ctx, t, after, limit)
	if err != nil {
		return nil, nil, err
	}
	end, err := strconv.ParseInt(until[0], 10, 64)
	if err != nil {
		return nil, nil, err
	}
	var last []string
	for i, row := range rows {
		if row["id"].(int64) > end {
			rows = rows[:i]
			break
		}
		last = []string{strconv.FormatInt(row["id"].(int64), 10)}
	}
	return rows, last, nil
}

// savedRanges decodes a table's saved progress.
func savedRanges(t *testing.T, s *memStore, table string) (sink.BackfillProgress, []*keyRange) {
	t.Helper()
	p := s.saved[table]
	rs, err := decodeRanges(p.After, p.Rows)
	if err != nil {
		t.Fatal(err)
	}
	return p, rs
}

// One table, Parallel 4: four ranges copied at once (each range's first
// chunk waits until the four have one in flight), every row once, each
// range's end saved, the table done.
func TestRun_CopiesOneTableInKeyRangesAtOnce(t *testing.T) {
	reader := &splitReader{memReader: memReader{sizes: map[string]int{"s.big": 1000, "s.small": 15}}}
	store := &memStore{}
	arrived := make(chan struct{}, 4)
	all := make(chan struct{})
	var once sync.Once
	firsts := map[int64]bool{1: true, 251: true, 501: true, 751: true} // the ranges' first keys
	cfg := Config{Tables: tables("big", "small"), ChunkRows: 50, Parallel: 4}
	sum, got := runWith(t, cfg, reader, store, func(c Chunk) error {
		if c.Table.Name.Name == "big" && firsts[c.Rows[0]["id"].(int64)] {
			arrived <- struct{}{}
			if len(arrived) == 4 {
				once.Do(func() { close(all) })
			}
			select {
			case <-all:
			case <-time.After(10 * time.Second):
				return errors.New("the four ranges were not copied at once")
			}
		}
		return nil
	})
	if diff := cmp.Diff(map[string][]int64{"s.big": ids(1, 1000), "s.small": ids(1, 15)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if sum.Rows != 1015 || sum.Copied != 1015 || sum.Tables != 2 {
		t.Errorf("summary %+v, want 1015 rows of 2 tables", sum)
	}
	p, rs := savedRanges(t, store, "s.big")
	want := []*keyRange{
		{After: []string{"250"}, Until: []string{"250"}, Rows: 250, Done: true},
		{After: []string{"500"}, Until: []string{"500"}, Rows: 250, Done: true},
		{After: []string{"750"}, Until: []string{"750"}, Rows: 250, Done: true},
		{After: []string{"1000"}, Rows: 250, Done: true},
	}
	if diff := cmp.Diff(want, rs); diff != "" || p.State != sink.BackfillDone || p.Rows != 1000 {
		t.Errorf("saved progress of s.big: %s %d rows, ranges (-want +got):\n%s", p.State, p.Rows, diff)
	}
	// Too small for a range of a chunk each: one range, saved as before.
	if p := store.saved["s.small"]; p.After != `["15"]` || p.Rows != 15 || p.State != sink.BackfillDone {
		t.Errorf("saved progress of s.small: %+v, want one range after [15], 15 rows, done", p)
	}
}

// A copy in ranges that fails midway saves each range's last durable
// chunk; the rerun copies exactly the rows not saved, in the same ranges,
// without cutting the table again.
func TestRun_AStoppedCopyInRangesResumesEachRangeAfterItsLastDurableChunk(t *testing.T) {
	reader := &splitReader{memReader: memReader{sizes: map[string]int{"s.big": 2000}}}
	store := &memStore{}
	var writes atomic.Int32
	cfg := Config{Tables: tables("big"), ChunkRows: 40, Parallel: 4}
	runner := New(cfg, reader, store, func(ctx context.Context, c Chunk) error {
		if writes.Add(1) > 30 {
			return errors.New("the target went away")
		}
		return nil
	}, nil, nil)
	if _, err := runner.Run(context.Background()); err == nil {
		t.Fatal("the copy whose writes fail succeeded")
	}
	p, rs := savedRanges(t, store, "s.big")
	if p.State != sink.BackfillRunning || len(rs) != 4 || p.Rows == 0 || p.Rows >= 2000 {
		t.Fatalf("saved after the failure: %s, %d rows, %d ranges; want running, some rows, 4 ranges", p.State, p.Rows, len(rs))
	}
	for i, kr := range rs {
		if kr.Rows > 0 && kr.After[0] != strconv.FormatInt(int64(i)*500+kr.Rows, 10) {
			t.Errorf("range %d saved %d rows after key %v: not its last durable row", i+1, kr.Rows, kr.After)
		}
	}
	saved := p.Rows
	sum, got := run(t, cfg, reader, store)
	var all []int64
	for _, ids := range got {
		all = append(all, ids...)
	}
	slices.Sort(all)
	var want []int64
	for i, kr := range rs {
		want = append(want, ids(i*500+int(kr.Rows)+1, (i+1)*500)...)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("the rerun copied (-want +got):\n%s", diff)
	}
	if sum.Rows != 2000 || sum.Copied != 2000-saved {
		t.Errorf("rerun: %d rows, %d copied; want 2000, %d", sum.Rows, sum.Copied, 2000-saved)
	}
	if n := reader.splits.Load(); n != 1 {
		t.Errorf("Split called %d times, want once (the rerun keeps the saved ranges)", n)
	}
}

// Progress saved by a version that copied a table in one range (its last
// key alone) resumes as one range after that key.
func TestRun_ProgressOfOneRangeResumesAsOneRange(t *testing.T) {
	reader := &splitReader{memReader: memReader{sizes: map[string]int{"s.a": 500}}}
	store := storeWith(sink.BackfillProgress{Table: "s.a", State: sink.BackfillRunning, After: `["120"]`, Rows: 120})
	sum, got := run(t, Config{Tables: tables("a"), ChunkRows: 20, Parallel: 4}, reader, store)
	if diff := cmp.Diff(map[string][]int64{"s.a": ids(121, 500)}, got); diff != "" {
		t.Errorf("copied (-want +got):\n%s", diff)
	}
	if sum.Rows != 500 || reader.splits.Load() != 0 {
		t.Errorf("%d rows, %d splits; want 500 rows, no split", sum.Rows, reader.splits.Load())
	}
	if p := store.saved["s.a"]; p.After != `["500"]` || p.State != sink.BackfillDone {
		t.Errorf("saved %+v, want one range after [500], done", p)
	}
}

func TestDecodeRanges_RefusesMalformedProgress(t *testing.T) {
	for _, tc := range []struct {
		after string
		rows  int64
	}{
		{`{"ranges":[]}`, 0},
		{`{"ranges":[{"after":null,"until":null,"rows":1},{"after":null,"until":null,"rows":1}]}`, 2},
		{`{"ranges":[{"after":[],"until":null,"rows":0}]}`, 0},
		{`{"ranges":[{"after":null,"until":["5"],"rows":3},{"after":["5"],"rows":1}]}`, 3},
		{`{"ranges":`, 0},
		{`[]`, 0},
	} {
		if _, err := decodeRanges(tc.after, tc.rows); err == nil {
			t.Errorf("decodeRanges(%q, %d) succeeded, want an error", tc.after, tc.rows)
		}
	}
	rs := newRanges([][]string{{"a", "1"}, {"b", "2"}})
	back, err := decodeRanges(encodeRanges(rs), 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, back); diff != "" {
		t.Errorf("ranges round trip (-want +got):\n%s", diff)
	}
}
