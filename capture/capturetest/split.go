package capturetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/change"
)

// RangesCoverTheTable checks a SplitTextReader's ranges on tb, a table of
// rows rows (a few thousand or more): Split cuts it into 4 ranges of at
// least 1000 rows, and the ranges, read one after the other by RangeChunk
// and by RangeTextChunk, read the rows Chunk reads over the whole table,
// each range about a quarter of them; a table too small for ranges of
// minRows is not cut. verbatim is a row as Chunk reads it, with the
// values RangeTextChunk's decoded rows hold in its place (what the
// server's text of each value decodes to).
func RangesCoverTheTable(t *testing.T, r backfill.SplitTextReader, tb *change.Schema, rows int, verbatim func(change.Row) change.Row) {
	t.Helper()
	ctx := t.Context()
	// readRange reads the rows after from up to until, chunk by chunk.
	readRange := func(from, until []string, read func(after, until []string) ([]change.Row, []string, error)) []change.Row {
		var out []change.Row
		after := from
		for {
			rows, last, err := read(after, until)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rows...)
			if len(rows) == 0 {
				return out
			}
			after = last
		}
	}
	want := readRange(nil, nil, func(after, _ []string) ([]change.Row, []string, error) {
		return r.Chunk(ctx, tb, after, 997)
	})
	if len(want) != rows {
		t.Fatalf("Chunk over the table read %d rows, want %d", len(want), rows)
	}
	bounds, err := r.Split(ctx, tb, 4, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(bounds) != 3 {
		t.Fatalf("Split into 4 ranges: %d bounds %q, want 3", len(bounds), bounds)
	}
	var got, gotText []change.Row
	starts := append([][]string{nil}, bounds...)
	for i, from := range starts {
		var until []string
		if i < len(bounds) {
			until = bounds[i]
		}
		ranged := readRange(from, until, func(after, until []string) ([]change.Row, []string, error) {
			return r.RangeChunk(ctx, tb, after, until, 997)
		})
		if n := len(ranged); n < rows/4/2 || n > rows/4*2 {
			t.Errorf("range %d holds %d rows of %d: not about a quarter", i+1, n, rows)
		}
		got = append(got, ranged...)
		gotText = append(gotText, readRange(from, until, func(after, until []string) ([]change.Row, []string, error) {
			c, err := r.RangeTextChunk(ctx, tb, tb.Columns, after, until, 997)
			if err != nil {
				return nil, nil, err
			}
			rows, err := c.Decode()
			return rows, c.Last, err
		})...)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the ranges read (-Chunk over the table +RangeChunk of each range):\n%.3000s", diff)
	}
	text := make([]change.Row, len(want))
	for i, row := range want {
		text[i] = verbatim(row)
	}
	if diff := cmp.Diff(text, gotText); diff != "" {
		t.Errorf("the ranges read verbatim (-Chunk over the table +RangeTextChunk of each range):\n%.3000s", diff)
	}
	if bounds, err := r.Split(ctx, tb, 4, int64(rows)*5); err != nil || bounds != nil {
		t.Errorf("Split into ranges of %d rows of a table of %d: %q, %v; want none", rows*5, rows, bounds, err)
	}
}
