package mysql_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestHashChunkKind_SummarisesEachChunkAsTheMD5KindDefinesIt summarises a
// table in chunks of 4 and checks each chunk's row count, last key and
// digest against pgtext.MD5Hash of the text PostgreSQL writes for its values
// (a decimal's scale kept, a datetime's fraction without trailing zeros,
// bytes as their md5), and that a chunk past the end is empty.
func TestHashChunkKind_SummarisesEachChunkAsTheMD5KindDefinesIt(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	s := func(v string) *string { return &v }
	md5hex := func(v string) *string { d := md5.Sum([]byte(v)); return s(hex.EncodeToString(d[:])) }
	// Each row as inserted, and as its values' text.
	rows := []struct {
		values string
		text   []*string
	}{
		{`1, 'a', -5, 1.25, '2024-01-01 00:00:00.5', 'x'`, []*string{s("1"), s("a"), s("-5"), s("1.250"), s("2024-01-01 00:00:00.5"), md5hex("x")}},
		{`2, NULL, 0, 0, '2024-01-01 00:00:00', NULL`, []*string{s("2"), nil, s("0"), s("0.000"), s("2024-01-01 00:00:00"), nil}},
		{`3, '', 2147483647, -3.1, NULL, ''`, []*string{s("3"), s(""), s("2147483647"), s("-3.100"), nil, md5hex("")}},
		{`4, 'ü😀', NULL, NULL, '2024-01-01 10:00:00.123', 'yz'`, []*string{s("4"), s("ü😀"), nil, nil, s("2024-01-01 10:00:00.123"), md5hex("yz")}},
	}
	for i := int64(5); i <= 10; i++ {
		rows = append(rows, struct {
			values string
			text   []*string
		}{fmt.Sprintf(`%d, 'r%d', %d, %d.125, '2024-01-01 00:00:%02d.100', NULL`, i, i, i, i, i),
			[]*string{s(fmt.Sprint(i)), s(fmt.Sprintf("r%d", i)), s(fmt.Sprint(i)), s(fmt.Sprintf("%d.125", i)), s(fmt.Sprintf("2024-01-01 00:00:%02d.1", i)), nil}})
	}
	values := make([]string, len(rows))
	for i, r := range rows {
		values[i] = "(" + r.values + ")"
	}
	mustExec(t, db, "CREATE TABLE t (id BIGINT PRIMARY KEY, s VARCHAR(20), n INT, d DECIMAL(8,3), at DATETIME(3), b VARBINARY(10)) CHARACTER SET utf8mb4",
		"INSERT INTO t VALUES "+strings.Join(values, ", "))
	r, err := mysql.NewTableReader(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	table, err := r.Describe(t.Context(), change.Table{Schema: db, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	prefixed := []bool{false, true, false, false, false, false} // s, a string, after its length
	type chunk struct {
		Hash pgtext.RowsHash
		Last []string
	}
	var got []chunk
	var after []string
	for range 4 {
		h, last, err := r.HashChunkKind(t.Context(), pgtext.HashMD5, table, table.Columns, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, chunk{h, last})
		after = last
		if last == nil {
			break
		}
	}
	texts := func(from, to int) [][]*string {
		var out [][]*string
		for _, r := range rows[from:to] {
			out = append(out, r.text)
		}
		return out
	}
	want := []chunk{
		{pgtext.MD5Hash(prefixed, texts(0, 4)), []string{"4"}},
		{pgtext.MD5Hash(prefixed, texts(4, 8)), []string{"8"}},
		{pgtext.MD5Hash(prefixed, texts(8, 10)), []string{"10"}},
		{pgtext.MD5Hash(prefixed, nil), nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chunks (-want +got):\n%s", diff)
	}
	if _, _, err := r.HashChunkKind(t.Context(), pgtext.HashText, table, table.Columns, nil, 4); err == nil ||
		!strings.Contains(err.Error(), "not hashtextextended") {
		t.Errorf("a chunk in PostgreSQL's own hash: error %v, want one saying MariaDB does not compute it", err)
	}
}
