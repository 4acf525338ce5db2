package sqlbatch

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tandemcdc/tandem/internal/change"
)

func w(op change.WriteOp, id any, cols ...any) change.Write {
	row := map[string]any{"id": id}
	for i := 0; i+1 < len(cols); i += 2 {
		row[cols[i].(string)] = cols[i+1]
	}
	return change.Write{Table: "t", Op: op, Key: []string{"id"}, Row: row}
}

func TestCompact_KeepsTheEffectOfApplyingInOrder(t *testing.T) {
	tests := []struct {
		name string
		in   []change.Write
		want [][]change.Write
	}{
		{"last upsert wins", []change.Write{w(change.WriteUpsert, int64(1), "v", "a"), w(change.WriteUpsert, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteUpsert, int64(1), "v", "b")}}},
		{"upserts of different columns merge", []change.Write{w(change.WriteUpsert, int64(1), "a", 1, "b", 2), w(change.WriteUpsert, int64(1), "b", 3, "c", 4)},
			[][]change.Write{{w(change.WriteUpsert, int64(1), "a", 1, "b", 3, "c", 4)}}},
		{"delete after upsert", []change.Write{w(change.WriteUpsert, int64(1), "v", "a"), w(change.WriteDelete, int64(1))},
			[][]change.Write{{w(change.WriteDelete, int64(1))}}},
		{"upsert after delete is a second round", []change.Write{w(change.WriteDelete, int64(1)), w(change.WriteUpsert, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteDelete, int64(1))}, {w(change.WriteUpsert, int64(1), "v", "b")}}},
		{"insert-if-absent after delete is a second round", []change.Write{w(change.WriteDelete, int64(1)), w(change.WriteInsertIfAbsent, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteDelete, int64(1))}, {w(change.WriteInsertIfAbsent, int64(1), "v", "b")}}},
		{"upsert after insert-if-absent is a second round", []change.Write{w(change.WriteInsertIfAbsent, int64(1), "a", 1), w(change.WriteUpsert, int64(1), "b", 2)},
			[][]change.Write{{w(change.WriteInsertIfAbsent, int64(1), "a", 1)}, {w(change.WriteUpsert, int64(1), "b", 2)}}},
		{"insert-if-absent after upsert does nothing", []change.Write{w(change.WriteUpsert, int64(1), "v", "a"), w(change.WriteInsertIfAbsent, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteUpsert, int64(1), "v", "a")}}},
		{"copy after delete is a second round (its tombstone decides)", []change.Write{w(change.WriteDelete, int64(1)), w(change.WriteCopy, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteDelete, int64(1))}, {w(change.WriteCopy, int64(1), "v", "b")}}},
		{"copy after upsert does nothing: the stream wins", []change.Write{w(change.WriteUpsert, int64(1), "v", "a"), w(change.WriteCopy, int64(1), "v", "old")},
			[][]change.Write{{w(change.WriteUpsert, int64(1), "v", "a")}}},
		{"upsert after copy is a second round", []change.Write{w(change.WriteCopy, int64(1), "v", "old"), w(change.WriteUpsert, int64(1), "v", "new")},
			[][]change.Write{{w(change.WriteCopy, int64(1), "v", "old")}, {w(change.WriteUpsert, int64(1), "v", "new")}}},
		{"insert-if-absent twice keeps the first", []change.Write{w(change.WriteInsertIfAbsent, int64(1), "v", "a"), w(change.WriteInsertIfAbsent, int64(1), "v", "b")},
			[][]change.Write{{w(change.WriteInsertIfAbsent, int64(1), "v", "a")}}},
		{"int and int64 of one value are one key", []change.Write{w(change.WriteUpsert, int64(1), "v", "a"), w(change.WriteUpsert, 1, "v", "b")},
			[][]change.Write{{w(change.WriteUpsert, 1, "v", "b")}}},
		{"delete, upsert, delete ends deleted", []change.Write{w(change.WriteDelete, int64(1)), w(change.WriteUpsert, int64(1), "v", "b"), w(change.WriteDelete, int64(1))},
			[][]change.Write{{w(change.WriteDelete, int64(1))}, {w(change.WriteDelete, int64(1))}}},
		{"new keys join the first round", []change.Write{w(change.WriteDelete, int64(1)), w(change.WriteUpsert, int64(1)), w(change.WriteUpsert, int64(2))},
			[][]change.Write{{w(change.WriteDelete, int64(1)), w(change.WriteUpsert, int64(2))}, {w(change.WriteUpsert, int64(1))}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Compact(tc.in)); diff != "" {
				t.Errorf("Compact (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGroups_OneGroupPerTableOpKeyAndColumnsDeletesFirst(t *testing.T) {
	round := []change.Write{w(change.WriteUpsert, 1, "v", "a"), w(change.WriteDelete, 2), w(change.WriteUpsert, 3, "v", "c"), w(change.WriteUpsert, 4, "x", 1), w(change.WriteDelete, 5)}
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
	other := w(change.WriteUpsert, 9, "v", "z")
	other.Table = "u"
	round = []change.Write{w(change.WriteUpsert, 1, "v", "a"), w(change.WriteUpsert, 2, "x", "b"), w(change.WriteUpsert, 3, "v", "c", "x", "d"), other,
		w(change.WriteInsertIfAbsent, 4, "v", "e"), w(change.WriteUpsert, 5, "v", "f")}
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
	w := func(op change.WriteOp, table string) change.Write {
		return change.Write{Table: table, Op: op, Key: []string{"id"}, Row: map[string]any{"id": 1}}
	}
	got := CopyLocks([]change.Write{
		w(change.WriteUpsert, "a"), w(change.WriteDelete, "z"), w(change.WriteCopy, "m"), w(change.WriteDelete, "m"), w(change.WriteInsertIfAbsent, "b"), w(change.WriteDelete, "c"), w(change.WriteDelete, "c"), w(change.WriteCopy, "d"),
	})
	want := []CopyLock{{Table: "c"}, {Table: "d", Copies: true}, {Table: "m", Copies: true}, {Table: "z"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CopyLocks (-want +got):\n%s", diff)
	}
	// A backfill's chunk, copies only, shares its tables' locks.
	got = CopyLocks([]change.Write{w(change.WriteCopy, "m"), w(change.WriteCopy, "d"), w(change.WriteCopy, "m")})
	want = []CopyLock{{Table: "d", Copies: true, Shared: true}, {Table: "m", Copies: true, Shared: true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CopyLocks of copies only (-want +got):\n%s", diff)
	}
	if got := CopyLocks([]change.Write{w(change.WriteUpsert, "a")}); len(got) != 0 {
		t.Errorf("CopyLocks of an upsert: %v, want none", got)
	}
}
