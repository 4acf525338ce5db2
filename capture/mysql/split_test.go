package mysql_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestSplit_RangesCoverTheTableOnceInKeyOrder cuts a table with a
// composite key (text with quotes, an integer) into ranges and reads each
// by RangeChunk and RangeTextChunk: the ranges, one after the other, read
// the rows Chunk reads over the whole table, in about equal parts; a
// table too small for ranges of minRows is not cut.
func TestSplit_RangesCoverTheTableOnceInKeyOrder(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE pairs (k VARCHAR(20), n BIGINT, v TEXT, PRIMARY KEY (k, n)) CHARACTER SET utf8mb4",
		"INSERT INTO pairs SELECT CONCAT('k''', seq % 7), seq, MD5(seq) FROM seq_1_to_20000",
		"ANALYZE TABLE pairs")
	r, err := mysql.NewTableReader(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pairs, err := r.Describe(t.Context(), change.Table{Schema: db, Name: "pairs"})
	if err != nil {
		t.Fatal(err)
	}
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
		return r.Chunk(t.Context(), pairs, after, 997)
	})
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
		rows := readRange(from, until, func(after, until []string) ([]change.Row, []string, error) {
			return r.RangeChunk(t.Context(), pairs, after, until, 997)
		})
		if n := len(rows); n < 20000/4/2 || n > 20000/4*2 {
			t.Errorf("range %d holds %d rows of 20000: not about a quarter", i+1, n)
		}
		got = append(got, rows...)
		gotText = append(gotText, readRange(from, until, func(after, until []string) ([]change.Row, []string, error) {
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
	// Verbatim rows hold every value as its text.
	text := make([]change.Row, len(want))
	for i, row := range want {
		text[i] = change.Row{"k": row["k"], "n": fmt.Sprint(row["n"]), "v": row["v"]}
	}
	if diff := cmp.Diff(text, gotText); diff != "" {
		t.Errorf("the ranges read verbatim (-Chunk over the table +RangeTextChunk of each range):\n%.3000s", diff)
	}
	if bounds, err := r.Split(t.Context(), pairs, 4, 100000); err != nil || bounds != nil {
		t.Errorf("Split into ranges of 100,000 rows of a table of 20,000: %q, %v; want none", bounds, err)
	}
}
