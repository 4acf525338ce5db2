package sink

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func w(op Op, id any, cols ...any) Write {
	row := map[string]any{"id": id}
	for i := 0; i+1 < len(cols); i += 2 {
		row[cols[i].(string)] = cols[i+1]
	}
	return Write{Table: "t", Op: op, Key: []string{"id"}, Row: row}
}

func TestCompact_KeepsTheEffectOfApplyingInOrder(t *testing.T) {
	tests := []struct {
		name string
		in   []Write
		want [][]Write
	}{
		{"last upsert wins", []Write{w(Upsert, int64(1), "v", "a"), w(Upsert, int64(1), "v", "b")},
			[][]Write{{w(Upsert, int64(1), "v", "b")}}},
		{"upserts of different columns merge", []Write{w(Upsert, int64(1), "a", 1, "b", 2), w(Upsert, int64(1), "b", 3, "c", 4)},
			[][]Write{{w(Upsert, int64(1), "a", 1, "b", 3, "c", 4)}}},
		{"delete after upsert", []Write{w(Upsert, int64(1), "v", "a"), w(Delete, int64(1))},
			[][]Write{{w(Delete, int64(1))}}},
		{"upsert after delete is a second round", []Write{w(Delete, int64(1)), w(Upsert, int64(1), "v", "b")},
			[][]Write{{w(Delete, int64(1))}, {w(Upsert, int64(1), "v", "b")}}},
		{"insert-if-absent after delete is a second round", []Write{w(Delete, int64(1)), w(InsertIfAbsent, int64(1), "v", "b")},
			[][]Write{{w(Delete, int64(1))}, {w(InsertIfAbsent, int64(1), "v", "b")}}},
		{"upsert after insert-if-absent is a second round", []Write{w(InsertIfAbsent, int64(1), "a", 1), w(Upsert, int64(1), "b", 2)},
			[][]Write{{w(InsertIfAbsent, int64(1), "a", 1)}, {w(Upsert, int64(1), "b", 2)}}},
		{"insert-if-absent after upsert does nothing", []Write{w(Upsert, int64(1), "v", "a"), w(InsertIfAbsent, int64(1), "v", "b")},
			[][]Write{{w(Upsert, int64(1), "v", "a")}}},
		{"copy after delete is a second round (its tombstone decides)", []Write{w(Delete, int64(1)), w(Copy, int64(1), "v", "b")},
			[][]Write{{w(Delete, int64(1))}, {w(Copy, int64(1), "v", "b")}}},
		{"copy after upsert does nothing: the stream wins", []Write{w(Upsert, int64(1), "v", "a"), w(Copy, int64(1), "v", "old")},
			[][]Write{{w(Upsert, int64(1), "v", "a")}}},
		{"upsert after copy is a second round", []Write{w(Copy, int64(1), "v", "old"), w(Upsert, int64(1), "v", "new")},
			[][]Write{{w(Copy, int64(1), "v", "old")}, {w(Upsert, int64(1), "v", "new")}}},
		{"insert-if-absent twice keeps the first", []Write{w(InsertIfAbsent, int64(1), "v", "a"), w(InsertIfAbsent, int64(1), "v", "b")},
			[][]Write{{w(InsertIfAbsent, int64(1), "v", "a")}}},
		{"int and int64 of one value are one key", []Write{w(Upsert, int64(1), "v", "a"), w(Upsert, 1, "v", "b")},
			[][]Write{{w(Upsert, 1, "v", "b")}}},
		{"delete, upsert, delete ends deleted", []Write{w(Delete, int64(1)), w(Upsert, int64(1), "v", "b"), w(Delete, int64(1))},
			[][]Write{{w(Delete, int64(1))}, {w(Delete, int64(1))}}},
		{"new keys join the first round", []Write{w(Delete, int64(1)), w(Upsert, int64(1)), w(Upsert, int64(2))},
			[][]Write{{w(Delete, int64(1)), w(Upsert, int64(2))}, {w(Upsert, int64(1))}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Compact(tc.in)); diff != "" {
				t.Errorf("Compact (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyText_IsOneTextPerKeyValue(t *testing.T) {
	got := []string{
		KeyText([]string{"id"}, map[string]any{"id": int64(42)}),
		KeyText([]string{"id"}, map[string]any{"id": 42}),
		KeyText([]string{"a", "b"}, map[string]any{"a": "x\"y", "b": nil, "c": "ignored"}),
		KeyText([]string{"k"}, map[string]any{"k": []byte{0, 0xff}}),
	}
	want := []string{`["42"]`, `["42"]`, `["x\"y","<nil>"]`, `["\\x00ff"]`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("KeyText (-want +got):\n%s", diff)
	}
}

func TestGroups_OneGroupPerTableOpKeyAndColumnsDeletesFirst(t *testing.T) {
	round := []Write{w(Upsert, 1, "v", "a"), w(Delete, 2), w(Upsert, 3, "v", "c"), w(Upsert, 4, "x", 1), w(Delete, 5)}
	var got []string
	for _, g := range Groups(round) {
		got = append(got, fmt.Sprintf("%s %v %d", g.Op, g.Cols, len(g.Rows)))
	}
	want := []string{"delete [id] 2", "upsert [id v] 2", "upsert [id x] 1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Groups (-want +got):\n%s", diff)
	}

	// Neighbours of another shape each start or find their own group: as
	// many columns but others, more columns, another table, another op.
	other := w(Upsert, 9, "v", "z")
	other.Table = "u"
	round = []Write{w(Upsert, 1, "v", "a"), w(Upsert, 2, "x", "b"), w(Upsert, 3, "v", "c", "x", "d"), other,
		w(InsertIfAbsent, 4, "v", "e"), w(Upsert, 5, "v", "f")}
	got = nil
	for _, g := range Groups(round) {
		got = append(got, fmt.Sprintf("%s %s %v %v", g.Op, g.Table, g.Cols, g.Rows))
	}
	want = []string{
		"upsert t [id v] [map[id:1 v:a] map[id:5 v:f]]",
		"upsert t [id x] [map[id:2 x:b]]",
		"upsert t [id v x] [map[id:3 v:c x:d]]",
		"upsert u [id v] [map[id:9 v:z]]",
		"insert_if_absent t [id v] [map[id:4 v:e]]",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Groups of neighbours of other shapes (-want +got):\n%s", diff)
	}
}

func TestCopyLocks_TablesCopiedIntoOrDeletedFromInTableOrder(t *testing.T) {
	w := func(op Op, table string) Write {
		return Write{Table: table, Op: op, Key: []string{"id"}, Row: map[string]any{"id": 1}}
	}
	got := CopyLocks([]Write{
		w(Upsert, "a"), w(Delete, "z"), w(Copy, "m"), w(Delete, "m"), w(InsertIfAbsent, "b"), w(Delete, "c"), w(Delete, "c"), w(Copy, "d"),
	})
	want := []CopyLock{{Table: "c"}, {Table: "d", Copies: true}, {Table: "m", Copies: true}, {Table: "z"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CopyLocks (-want +got):\n%s", diff)
	}
	// A backfill's chunk, copies only, shares its tables' locks.
	got = CopyLocks([]Write{w(Copy, "m"), w(Copy, "d"), w(Copy, "m")})
	want = []CopyLock{{Table: "d", Copies: true, Shared: true}, {Table: "m", Copies: true, Shared: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CopyLocks of copies only (-want +got):\n%s", diff)
	}
	if got := CopyLocks([]Write{w(Upsert, "a")}); len(got) != 0 {
		t.Errorf("CopyLocks of an upsert: %v, want none", got)
	}
}
