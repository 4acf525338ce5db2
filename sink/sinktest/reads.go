package sinktest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// accountsDDL is a table the reads read, with NULLs, an empty string and a
// key past 32 bits. Its values are of the types whose Go form both
// databases' readers agree on (integers as int64, text as string); each
// sink's own tests read every other type.
const accountsDDL = `CREATE TABLE accounts (id BIGINT PRIMARY KEY, n INT, name VARCHAR(20), note TEXT);
INSERT INTO accounts VALUES (1, -7, 'one', 'x'), (2, NULL, NULL, NULL), (3, 0, '', ''), (9000000000, 5, 'big', NULL);
`

// accounts are the rows of accountsDDL as ReadKeys and Lookup return them, by id.
var accounts = map[int64]Row{
	1:          {"id": int64(1), "n": int64(-7), "name": "one", "note": "x"},
	2:          {"id": int64(2), "n": nil, "name": nil, "note": nil},
	3:          {"id": int64(3), "n": int64(0), "name": "", "note": ""},
	9000000000: {"id": int64(9000000000), "n": int64(5), "name": "big", "note": nil},
}

var accountColumns = []string{"id", "n", "name", "note"}

// seed upserts rows into table, keyed by key, in a random order.
func seed(t *testing.T, s Sink, table string, key []string, rows []Row) {
	t.Helper()
	ws := make([]change.Write, len(rows))
	for i, j := range rand.New(rand.NewPCG(1, 2)).Perm(len(rows)) {
		ws[i] = write(change.WriteUpsert, table, rows[j], key...)
	}
	apply(t, s, sink.Checkpoint{}, ws...)
}

// testReadKeys: ReadKeys returns the rows of the keys asked for (a key
// given as another Go type of the same value too), once each, with the
// columns asked for, typed as Lookup types them.
func testReadKeys(t *testing.T, h Harness) {
	tg := h.NewTarget(t, accountsDDL)
	s := tg.Sink()
	got := ReadKeys(t, s, "accounts", []string{"id"}, accountColumns,
		Row{"id": int64(1)}, Row{"id": int64(404)}, Row{"id": uint64(9000000000)},
		Row{"id": "3"}, Row{"id": float64(2)}, Row{"id": int64(1)}) // 404 is missing; 1 asked twice
	want := []map[string]any{accounts[1], accounts[2], accounts[3], accounts[9000000000]}
	if diff := gocmp.Diff(want, got, ByKey("id")); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	for _, r := range got {
		l, found, err := s.Lookup(t.Context(), "accounts", Row{"id": r["id"]})
		if err != nil || !found {
			t.Fatalf("Lookup(id %v) = %v, %v, %v; want a row", r["id"], l, found, err)
		}
		if diff := gocmp.Diff(l, r); diff != "" {
			t.Errorf("ReadKeys and Lookup of id %v differ (-Lookup +ReadKeys):\n%s", r["id"], diff)
		}
	}
	// Only the columns asked for, in any order.
	got = ReadKeys(t, s, "accounts", []string{"id"}, []string{"name", "id"}, Row{"id": int64(3)})
	if diff := gocmp.Diff([]map[string]any{{"id": int64(3), "name": ""}}, got); diff != "" {
		t.Errorf("ReadKeys(name, id) (-want +got):\n%s", diff)
	}
	// By a column that is not the key; no keys, no rows.
	got = ReadKeys(t, s, "accounts", []string{"name"}, []string{"id"}, Row{"name": "big"})
	if diff := gocmp.Diff([]map[string]any{{"id": int64(9000000000)}}, got); diff != "" {
		t.Errorf("ReadKeys(by name) (-want +got):\n%s", diff)
	}
	if got := ReadKeys(t, s, "accounts", []string{"id"}, accountColumns); len(got) != 0 {
		t.Errorf("ReadKeys(no keys) = %v, want none", got)
	}
}

// testReadKeysCompositeKey: a composite key matches rows holding all its
// values, and NULL matches nothing.
func testReadKeysCompositeKey(t *testing.T, h Harness) {
	const a, b = "aaaaaaaa-0000-0000-0000-000000000001", "bbbbbbbb-0000-0000-0000-000000000002"
	tg := h.NewTarget(t, `CREATE TABLE pairs (tenant INT, ref VARCHAR(36), qty INT, PRIMARY KEY (tenant, ref));
INSERT INTO pairs VALUES (1, '`+a+`', 10), (1, '`+b+`', 20), (2, '`+a+`', 30)`)
	key := []string{"tenant", "ref"}
	got := ReadKeys(t, tg.Sink(), "pairs", key, []string{"tenant", "ref", "qty"},
		Row{"tenant": int64(1), "ref": a},
		Row{"tenant": int64(2), "ref": b}, // a row has each value, none both
		Row{"tenant": "2", "ref": a},
		Row{"tenant": int64(1), "ref": nil}, // NULL matches nothing
	)
	want := []map[string]any{
		{"tenant": int64(1), "ref": a, "qty": int64(10)},
		{"tenant": int64(2), "ref": a, "qty": int64(30)},
	}
	if diff := gocmp.Diff(want, got, ByKey(key...)); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
}

// testReadKeysManyKeys: 5,000 keys in one call, more than one statement
// takes, and on a key of 16 columns more values than one statement could
// hold as parameters (65,535).
func testReadKeysManyKeys(t *testing.T, h Harness) {
	var wide []string
	for i := range 16 {
		wide = append(wide, fmt.Sprintf("c%d", i))
	}
	tg := h.NewTarget(t, "CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20));\n"+
		"CREATE TABLE wide ("+strings.Join(wide, " INT, ")+" INT, PRIMARY KEY ("+strings.Join(wide, ", ")+"))")
	s := tg.Sink()
	wideRow := func(id int64) Row {
		w := Row{}
		for j, c := range wide {
			w[c] = id + int64(j)
		}
		return w
	}
	var items, wides []Row
	for id := int64(1); id <= 10000; id++ {
		items = append(items, Row{"id": id, "name": fmt.Sprint("item ", id)})
		wides = append(wides, wideRow(id))
	}
	seed(t, s, "items", []string{"id"}, items)
	seed(t, s, "wide", wide, wides)
	var keys, wideKeys []Row
	var want, wantWide []map[string]any
	for i := int64(1); i <= 5000; i++ {
		id := 2 * i // evens, and 500 past the last row
		if i%10 == 0 {
			id = 100000 + i
		}
		keys = append(keys, Row{"id": id})
		wideKeys = append(wideKeys, wideRow(id))
		if id <= 10000 {
			want = append(want, map[string]any{"id": id, "name": fmt.Sprint("item ", id)})
			wantWide = append(wantWide, wideRow(id))
		}
	}
	if diff := gocmp.Diff(want, ReadKeys(t, s, "items", []string{"id"}, []string{"id", "name"}, keys...), ByKey("id")); diff != "" {
		t.Errorf("ReadKeys(items) (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(wantWide, ReadKeys(t, s, "wide", wide, wide, wideKeys...), ByKey(wide...)); diff != "" {
		t.Errorf("ReadKeys(wide) (-want +got):\n%s", diff)
	}
}

// testReadErrors: a missing table or column and a value the database
// cannot compare are *sink.Errors naming the table, classified, without
// the password.
func testReadErrors(t *testing.T, h Harness) {
	tg := h.NewTarget(t, accountsDDL)
	id := []string{"id"}
	nan := []map[string]any{{"id": math.NaN()}}
	tests := []struct {
		name   string
		table  string
		call   func(r RowReader, table string) error
		is     error
		reason sink.Reason
	}{
		{"ReadKeys of a missing table", "nope", func(r RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, id, []map[string]any{{"id": int64(1)}})
			return err
		}, sink.ErrTableNotFound, "table_missing"},
		{"ReadKeys of a missing column", "accounts", func(r RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, []string{"id", "nope"}, []map[string]any{{"id": int64(1)}})
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ReadKeys by a missing column", "accounts", func(r RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, []string{"nope"}, id, []map[string]any{{"nope": int64(1)}})
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ReadKeys by a value the column cannot hold", "accounts", func(r RowReader, table string) error {
			_, err := r.ReadKeys(t.Context(), table, id, id, nan)
			return err
		}, nil, "data"},
		{"ScanRows of a missing table", "nope", func(r RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, id, id, nil, 10)
			return err
		}, sink.ErrTableNotFound, "table_missing"},
		{"ScanRows by a missing column", "accounts", func(r RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, []string{"nope"}, []string{"nope"}, nil, 10)
			return err
		}, sink.ErrColumnNotFound, "column_missing"},
		{"ScanRows after a value the column cannot hold", "accounts", func(r RowReader, table string) error {
			_, err := r.ScanRows(t.Context(), table, id, id, nan[0], 10)
			return err
		}, nil, "data"},
		{"ColumnTypes of a missing table", "nope", func(r RowReader, table string) error {
			_, err := r.ColumnTypes(t.Context(), table)
			return err
		}, sink.ErrTableNotFound, "table_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(tg.Sink(), tt.table)
			if err == nil {
				t.Fatal("no error")
			}
			wantSinkError(t, tg, err, tt.is, tt.reason, tt.table)
		})
	}
}

// testReadsDoNotWaitForAWriter: with a write transaction holding rows, the
// reads answer at once with the committed rows (a locking read would wait
// for the writer, here until the deadline).
func testReadsDoNotWaitForAWriter(t *testing.T, h Harness) {
	tg := h.NewTarget(t, accountsDDL)
	release := tg.Hold(t, `UPDATE accounts SET name = 'changing' WHERE id = 1;
DELETE FROM accounts WHERE id = 2; INSERT INTO accounts (id) VALUES (4)`)
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := tg.Sink().ReadKeys(ctx, "accounts", []string{"id"}, []string{"id", "name"},
		[]map[string]any{{"id": int64(1)}, {"id": int64(2)}, {"id": int64(4)}})
	if err != nil {
		t.Fatalf("ReadKeys: %v", err)
	}
	want := []map[string]any{{"id": int64(1), "name": "one"}, {"id": int64(2), "name": nil}}
	if diff := gocmp.Diff(want, got, ByKey("id")); diff != "" {
		t.Errorf("ReadKeys (-want +got):\n%s", diff)
	}
	keys, err := tg.Sink().ScanRows(ctx, "accounts", []string{"id"}, []string{"id"}, nil, 10)
	if err != nil {
		t.Fatalf("ScanRows: %v", err)
	}
	if diff := gocmp.Diff([]map[string]any{{"id": int64(1)}, {"id": int64(2)}, {"id": int64(3)}, {"id": int64(9000000000)}}, keys); diff != "" {
		t.Errorf("ScanRows (-want +got):\n%s", diff)
	}
	if _, found, err := tg.Sink().Lookup(ctx, "accounts", Row{"id": int64(2)}); err != nil || !found {
		t.Errorf("Lookup(id 2) = %v, %v; want the committed row", found, err)
	}
}

// testScanRowsInKeyOrder: ScanRows pages through every key once, in key
// order: numbers by value, text as text (c10 before c9), composite keys
// column by column.
func testScanRowsInKeyOrder(t *testing.T, h Harness) {
	tg := h.NewTarget(t, `CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(20));
CREATE TABLE pairs (a INT, b VARCHAR(10), c BIGINT, PRIMARY KEY (a, b, c))`)
	s := tg.Sink()
	var items, pairs, want []Row
	for i := int64(1); i <= 1000; i++ {
		items = append(items, Row{"id": 7 * i, "name": "item"})
		pairs = append(pairs, Row{"a": i % 7, "b": fmt.Sprint("c", i%100), "c": -i})
		want = append(want, Row{"id": 7 * i})
	}
	seed(t, s, "items", []string{"id"}, items)
	seed(t, s, "pairs", []string{"a", "b", "c"}, pairs)
	if diff := gocmp.Diff(want, ScanAll(t, s, "items", []string{"id"}, 64)); diff != "" {
		t.Errorf("ScanRows(items) (-want +got):\n%s", diff)
	}
	want = slices.SortedFunc(slices.Values(pairs), func(x, y Row) int {
		return cmp.Or(cmp.Compare(x["a"].(int64), y["a"].(int64)), strings.Compare(x["b"].(string), y["b"].(string)),
			cmp.Compare(x["c"].(int64), y["c"].(int64)))
	})
	if diff := gocmp.Diff(want, ScanAll(t, s, "pairs", []string{"a", "b", "c"}, 64)); diff != "" {
		t.Errorf("ScanRows(pairs) (-want +got):\n%s", diff)
	}
	// An exact number of pages ends with an empty one.
	if got := ScanAll(t, s, "items", []string{"id"}, 100); len(got) != 1000 {
		t.Errorf("ScanRows(items, limit 100) returned %d keys, want 1000", len(got))
	}
	// Whole rows, in key order, after a key.
	rows, err := s.ScanRows(t.Context(), "items", []string{"id"}, []string{"id", "name"}, Row{"id": int64(14)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []map[string]any{{"id": int64(21), "name": "item"}, {"id": int64(28), "name": "item"}, {"id": int64(35), "name": "item"}}
	if diff := gocmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("ScanRows(items after 14) (-want +got):\n%s", diff)
	}
}

// testScanRowsLeavesOutNullKeys: a unique key holding NULL is no key.
func testScanRowsLeavesOutNullKeys(t *testing.T, h Harness) {
	tg := h.NewTarget(t, `CREATE TABLE codes (id BIGINT PRIMARY KEY, a INT, b VARCHAR(10), UNIQUE (a, b));
INSERT INTO codes VALUES (1, 1, 'x'), (2, 1, NULL), (3, NULL, 'x'), (4, 2, 'y'), (5, 1, NULL), (6, NULL, NULL)`)
	want := []map[string]any{{"a": int64(1), "b": "x"}, {"a": int64(2), "b": "y"}}
	if diff := gocmp.Diff(want, ScanAll(t, tg.Sink(), "codes", []string{"a", "b"}, 1)); diff != "" {
		t.Errorf("ScanRows (-want +got):\n%s", diff)
	}
	if got, err := tg.Sink().ScanRows(t.Context(), "codes", []string{"id"}, []string{"id"}, nil, 0); err != nil || len(got) != 0 {
		t.Errorf("ScanRows(limit 0) = %v, %v, want nothing", got, err)
	}
}

// testColumnTypes: ColumnTypes names every column's type, lowercase (the
// names are each database's, which its sink's own tests check).
func testColumnTypes(t *testing.T, h Harness) {
	tg := h.NewTarget(t, accountsDDL)
	got, err := tg.Sink().ColumnTypes(t.Context(), "accounts")
	if err != nil {
		t.Fatalf("ColumnTypes: %v", err)
	}
	var cols []string
	for c, typ := range got {
		cols = append(cols, c)
		if typ == "" || typ != strings.ToLower(typ) {
			t.Errorf("ColumnTypes: %s is of type %q, want a lowercase name", c, typ)
		}
	}
	slices.Sort(cols)
	if diff := gocmp.Diff([]string{"id", "n", "name", "note"}, cols); diff != "" {
		t.Errorf("ColumnTypes' columns (-want +got):\n%s", diff)
	}
}

// customersDDL is a table to look up by: legacy_id is unique, so are
// tenant and code together; city is not.
const customersDDL = `CREATE TABLE customers (id BIGINT PRIMARY KEY, legacy_id VARCHAR(20) UNIQUE, tenant INT, code VARCHAR(10),
	city VARCHAR(20), note TEXT, UNIQUE (tenant, code));
INSERT INTO customers VALUES (9000000000, 'L-1', 1, 'A', 'Oslo', NULL), (2, 'L-2', 1, 'B', 'Oslo', 'x'),
	(3, NULL, 2, 'C', NULL, NULL), (4, NULL, 3, 'C', NULL, NULL)`

// testLookup: Lookup returns the whole row all of whose where columns hold
// the values, found=false when there is none; NULL matches nothing.
func testLookup(t *testing.T, h Harness) {
	tg := h.NewTarget(t, customersDDL)
	customer1 := Row{"id": int64(9000000000), "legacy_id": "L-1", "tenant": int64(1), "code": "A", "city": "Oslo", "note": nil}
	customer2 := Row{"id": int64(2), "legacy_id": "L-2", "tenant": int64(1), "code": "B", "city": "Oslo", "note": "x"}
	tests := []struct {
		where Row
		want  Row // nil: not found
	}{
		{Row{"legacy_id": "L-1"}, customer1},
		{Row{"id": int64(9000000000)}, customer1},
		{Row{"id": uint64(2)}, customer2},
		{Row{"id": "2"}, customer2},
		{Row{"tenant": int64(1), "code": "A"}, customer1},
		{Row{"city": "Oslo", "note": "x"}, customer2},
		{Row{"tenant": int64(2), "code": "B"}, nil}, // a row on each column, none on both
		{Row{"legacy_id": "L-404"}, nil},
		{Row{"id": int64(-1)}, nil},
		{Row{"legacy_id": nil}, nil}, // not the two rows whose legacy_id is NULL
		{Row{"tenant": int64(1), "code": nil}, nil},
	}
	for _, tt := range tests {
		got, found, err := tg.Sink().Lookup(t.Context(), "customers", tt.where)
		if err != nil {
			t.Errorf("Lookup(%v): %v", tt.where, err)
			continue
		}
		if found != (tt.want != nil) {
			t.Errorf("Lookup(%v) found = %v, want %v", tt.where, found, tt.want != nil)
		}
		if diff := gocmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Lookup(%v) (-want +got):\n%s", tt.where, diff)
		}
	}
}

// testLookupErrors: two matching rows, a missing table or column, a value
// the column cannot hold and an empty where are errors naming the table
// (and the columns, for two matches), classified, without the password.
func testLookupErrors(t *testing.T, h Harness) {
	tg := h.NewTarget(t, customersDDL)
	tests := []struct {
		name   string
		table  string
		where  Row
		is     error
		reason sink.Reason // of the *sink.Error; "" for none
		names  []string
	}{
		{"two matches", "customers", Row{"city": "Oslo", "tenant": int64(1)}, sink.ErrNotUnique, "not_unique", []string{"city", "tenant"}},
		{"missing table", "nope", Row{"id": int64(1)}, sink.ErrTableNotFound, "table_missing", nil},
		{"missing column", "customers", Row{"id": int64(1), "nope": "x"}, sink.ErrColumnNotFound, "column_missing", []string{"nope"}},
		{"value the column cannot hold", "customers", Row{"id": math.NaN()}, nil, "data", nil},
		{"empty where", "customers", Row{}, nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := tg.Sink().Lookup(t.Context(), tt.table, tt.where)
			if err == nil {
				t.Fatalf("Lookup = %v, %v, want an error", got, found)
			}
			if tt.reason != "" {
				wantSinkError(t, tg, err, tt.is, tt.reason, tt.table)
			} else if !strings.Contains(err.Error(), tt.table) {
				t.Errorf("error %q does not name table %s", err, tt.table)
			}
			for _, name := range tt.names {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}
