package mysql_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/sink"
)

// TestHashRangeKind_SummarisesTheKeyRangeAsTheMD5KindDefinesIt summarises
// key ranges of a table (bounds open or closed, as reconcile passes them)
// and checks each against pgtext.MD5Hash of the text PostgreSQL writes for
// its values: a BIT as its number, an ENUM as its name, a latin1 CHAR as
// its UTF-8 characters without padding, a TIME's fraction without
// trailing zeros.
func TestHashRangeKind_SummarisesTheKeyRangeAsTheMD5KindDefinesIt(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE h (id BIGINT UNSIGNED PRIMARY KEY, flags BIT(5), state ENUM('open', 'paid'), name CHAR(8) CHARACTER SET latin1, at TIME(2));
INSERT INTO h VALUES (1, b'101', 'paid', 'café', '10:00:00.50'), (2, NULL, 'open', '', '00:00:00'), (3, b'0', NULL, 'ab  ', NULL), (4, b'11111', 'open', NULL, '23:59:59.99')`)
	s := func(v string) *string { return &v }
	rows := [][]*string{
		{s("1"), s("5"), s("paid"), s("café"), s("10:00:00.5")},
		{s("2"), nil, s("open"), s(""), s("00:00:00")},
		{s("3"), s("0"), nil, s("ab"), nil},
		{s("4"), s("31"), s("open"), nil, s("23:59:59.99")},
	}
	cols := []string{"id", "flags", "state", "name", "at"}
	prefixed := []bool{false, false, true, true, false} // the strings, after their length
	for _, tc := range []struct {
		after, upTo any
		want        pgtext.RowsHash
	}{
		{nil, nil, pgtext.MD5Hash(prefixed, rows)},
		{nil, int64(2), pgtext.MD5Hash(prefixed, rows[:2])},
		{int64(2), int64(3), pgtext.MD5Hash(prefixed, rows[2:3])},
		{int64(3), nil, pgtext.MD5Hash(prefixed, rows[3:])},
		{int64(4), nil, pgtext.MD5Hash(prefixed, nil)},
	} {
		got, err := tg.sink.HashRangeKind(t.Context(), pgtext.HashMD5, "h", "id", cols, tc.after, tc.upTo)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("keys above %v up to %v (-want +got):\n%s", tc.after, tc.upTo, diff)
		}
	}
	if _, err := tg.sink.HashRangeKind(t.Context(), pgtext.HashText, "h", "id", cols, nil, nil); err == nil {
		t.Error("a range in PostgreSQL's own hash: no error")
	}
	var serr *sink.Error
	if _, err := tg.sink.HashRangeKind(t.Context(), pgtext.HashMD5, "missing", "id", cols, nil, nil); !errors.As(err, &serr) || !errors.Is(err, sink.ErrTableNotFound) {
		t.Errorf("a missing table: error %v, want a *sink.Error wrapping sink.ErrTableNotFound", err)
	}
}
