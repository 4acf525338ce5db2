package mysql_test

import (
	"fmt"
	"testing"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestSplit_RangesCoverTheTableOnceInKeyOrder cuts a table with a
// composite key (text with quotes, an integer) into ranges and reads each
// by RangeChunk and RangeTextChunk (capturetest.RangesCoverTheTable).
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
	// Verbatim rows hold every value as its text.
	capturetest.RangesCoverTheTable(t, r, pairs, 20000, func(row change.Row) change.Row {
		return change.Row{"k": row["k"], "n": fmt.Sprint(row["n"]), "v": row["v"]}
	})
}
