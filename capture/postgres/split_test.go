package postgres

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/internal/change"
)

// TestSplit_RangesCoverTheTableOnceInKeyOrder cuts tables (a composite key
// of text with quotes and integers, read by RangeChunk and RangeTextChunk
// as capturetest.RangesCoverTheTable checks; a table smaller than the
// ranges asked for) into ranges.
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
	pairs, err := r.Describe(t.Context(), tbl("pairs"))
	if err != nil {
		t.Fatal(err)
	}
	// COPY text decodes to the values Chunk reads.
	capturetest.RangesCoverTheTable(t, r, pairs, 20000, func(row change.Row) change.Row { return row })
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
