package postgres

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

// TestSplit_RangesCoverTheTableOnceInKeyOrder cuts tables (a composite key
// of text with quotes and integers; a table smaller than the ranges asked
// for) and reads each range by RangeChunk and RangeTextChunk: the ranges,
// one after the other, read the rows Chunk reads over the whole table,
// and are of about equal size.
func TestSplit_RangesCoverTheTableOnceInKeyOrder(t *testing.T) {
	f := newFixture(t, `CREATE TABLE pairs (k text, n bigint, v text, PRIMARY KEY (k, n));
	CREATE TABLE few (id int PRIMARY KEY)`)
	f.exec(`INSERT INTO pairs SELECT 'k''' || (g % 7), g, md5(g::text) FROM generate_series(1, 20000) g;
	INSERT INTO few SELECT generate_series(1, 30)`)
	r, err := NewTableReader(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	readAll := func(read func(after []string) ([]change.Row, []string, error)) []change.Row {
		var out []change.Row
		var after []string
		for {
			rows, last, err := read(after)
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
	pairs, err := r.Describe(t.Context(), tbl("pairs"))
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(func(after []string) ([]change.Row, []string, error) { return r.Chunk(t.Context(), pairs, after, 997) })
	bounds, err := r.Split(t.Context(), pairs, 4, 1000)
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
		rows := readAll(func(after []string) ([]change.Row, []string, error) {
			if after == nil {
				after = from
			}
			return r.RangeChunk(t.Context(), pairs, after, until, 997)
		})
		if n := len(rows); n < 20000/4/2 || n > 20000/4*2 {
			t.Errorf("range %d holds %d rows of 20000: not about a quarter", i+1, n)
		}
		got = append(got, rows...)
		gotText = append(gotText, readAll(func(after []string) ([]change.Row, []string, error) {
			if after == nil {
				after = from
			}
			c, err := r.RangeTextChunk(t.Context(), pairs, pairs.Columns, after, until, 997)
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
	if diff := cmp.Diff(want, gotText); diff != "" {
		t.Errorf("the ranges read verbatim (-Chunk over the table +RangeTextChunk of each range):\n%.3000s", diff)
	}
	// 30 rows: 3 ranges of at least 10, none of 100, none for one worker.
	few, err := r.Describe(t.Context(), tbl("few"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n       int
		minRows int64
		want    [][]string
	}{{4, 10, [][]string{{"10"}, {"20"}}}, {4, 100, nil}, {1, 1, nil}} {
		bounds, err := r.Split(t.Context(), few, tc.n, tc.minRows)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, bounds); diff != "" {
			t.Errorf("Split(few, %d, %d) (-want +got):\n%s", tc.n, tc.minRows, diff)
		}
	}
}
