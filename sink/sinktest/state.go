package sinktest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// testOffsets: offsets are stored with the batch by group and epoch, never
// move backwards (a batch starting before them is fenced), and SetOffsets
// overwrites them.
func testOffsets(t *testing.T, h Harness) {
	type step struct {
		set    bool // SetOffsets instead of Apply
		fenced bool // Apply must fail with ErrFenced and change nothing
		cp     sink.Checkpoint
	}
	from := func(o sink.Offset, from int64) sink.Offset { o.From = from; return o }
	cp := checkpoint
	type groupEpoch struct{ group, epoch string }
	tests := []struct {
		name  string
		steps []step
		want  map[groupEpoch][]sink.Offset
	}{
		{
			name: "a batch starting at the stored offset moves it on",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{cp: cp("g", "e1", from(offset("t", 0, 12), 10), from(offset("t", 1, 15), 10), offset("u", 0, 1))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 12), offset("t", 1, 15), offset("u", 0, 1)},
			},
		},
		{
			name: "a batch starting before the stored offset is fenced and changes nothing",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{fenced: true, cp: cp("g", "e1", from(offset("t", 0, 5), 2), from(offset("t", 1, 15), 10), offset("u", 0, 1))},
				{fenced: true, cp: cp("g", "e1", from(offset("t", 1, 11), 9))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 10), offset("t", 1, 10)},
			},
		},
		{
			name: "offsets never move backwards",
			steps: []step{
				{cp: cp("g", "e", offset("t", 0, 100))},
				{cp: cp("g", "e", from(offset("t", 0, 120), 100))},
				{fenced: true, cp: cp("g", "e", from(offset("t", 0, 110), 100))},
				{fenced: true, cp: cp("g", "e", from(offset("t", 0, 50), 40))},
			},
			want: map[groupEpoch][]sink.Offset{{"g", "e"}: {offset("t", 0, 120)}},
		},
		{
			name: "another epoch replaces them, and each epoch reads only its own",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{cp: cp("g", "e2", offset("t", 0, 3))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 1, 10)},
				{"g", "e2"}: {offset("t", 0, 3)},
			},
		},
		{
			name: "groups are apart, and topics differing in case are two topics",
			steps: []step{
				{cp: cp("g", "e", offset("t", 0, 10))},
				{cp: cp("h", "e", offset("t", 0, 3))},
				{cp: cp("g", "e", offset("T", 0, 4))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e"}:     {offset("T", 0, 4), offset("t", 0, 10)},
				{"h", "e"}:     {offset("t", 0, 3)},
				{"G", "e"}:     nil,
				{"other", "e"}: nil,
			},
		},
		{
			name: "SetOffsets overwrites, backwards too",
			steps: []step{
				{cp: cp("g", "e1", offset("t", 0, 10), offset("t", 1, 10))},
				{set: true, cp: cp("g", "e1", offset("t", 0, 2), offset("t", 2, 7))},
				{set: true, cp: cp("g", "e2", offset("t", 1, 1))},
			},
			want: map[groupEpoch][]sink.Offset{
				{"g", "e1"}: {offset("t", 0, 2), offset("t", 2, 7)},
				{"g", "e2"}: {offset("t", 1, 1)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := h.NewTarget(t, "")
			s := tg.Sink()
			for _, st := range tc.steps {
				switch {
				case st.set:
					if err := s.SetOffsets(t.Context(), st.cp); err != nil {
						t.Fatalf("SetOffsets: %v", err)
					}
				case st.fenced:
					if err := applyErr(t, s, st.cp); !errors.Is(err, sink.ErrFenced) {
						t.Fatalf("Apply = %v, want ErrFenced", err)
					}
				default:
					apply(t, s, st.cp)
				}
			}
			// Another sink (another process) reads the same.
			other := tg.OpenSink(t)
			for ge, want := range tc.want {
				wantOffsets(t, s, ge.group, ge.epoch, want)
				wantOffsets(t, other, ge.group, ge.epoch, want)
			}
		})
	}
}

// testPartitionNamedTwice: a checkpoint naming a partition twice is
// refused, and not as ErrFenced.
func testPartitionNamedTwice(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	err := applyErr(t, tg.Sink(), checkpoint("g", "e", offset("t", 0, 1), offset("t", 0, 2)),
		item(change.WriteUpsert, Row{"id": int64(1)}))
	if errors.Is(err, sink.ErrFenced) {
		t.Errorf("Apply = %v, want an error other than ErrFenced", err)
	}
	wantRows(t, tg, allItems, nil)
	wantOffsets(t, tg.Sink(), "g", "e", nil)
}

// testFencedBatchWritesNothing: a second consumer's batch that starts
// before what the first stored is fenced: no rows, no dead letters, and
// ErrFenced is not a *sink.Error. It resumes from the stored offset.
func testFencedBatchWritesNothing(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	// Consumer A owned partition 0 and applied records 0..9; a rebalance
	// gave it to B, which read from 5 before A's commit and now applies
	// records 5..14.
	a, b := tg.Sink(), tg.OpenSink(t)
	cp := func(from, next int64) sink.Checkpoint {
		return checkpoint("g", "e", sink.Offset{Topic: "items", Partition: 0, From: from, Next: next})
	}
	apply(t, a, cp(0, 10), item(change.WriteUpsert, Row{"id": int64(1), "name": "by A"}))
	err := b.Apply(t.Context(), sink.Batch{
		Writes: []change.Write{
			item(change.WriteUpsert, Row{"id": int64(1), "name": "by B"}),
			item(change.WriteUpsert, Row{"id": int64(2), "name": "by B"}),
		},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "transform", Error: "x", Topic: "items", Partition: 0, Offset: 7}},
	}, cp(5, 15))
	if !errors.Is(err, sink.ErrFenced) {
		t.Fatalf("B's Apply = %v, want ErrFenced", err)
	}
	var se *sink.Error
	if errors.As(err, &se) {
		t.Errorf("ErrFenced came as a *sink.Error (%v): callers tell them apart", se)
	}
	wantRows(t, tg, allItems, []Row{{"id": "1", "name": "by A", "qty": nil, "note": nil}})
	if n, err := a.CountDeadLetters(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("CountDeadLetters after the fenced batch = %d, %v; want 0", n, err)
	}
	wantOffsets(t, a, "g", "e", []sink.Offset{offset("items", 0, 10)})
	// B resumes from the stored offset.
	apply(t, b, cp(10, 15), item(change.WriteUpsert, Row{"id": int64(2), "name": "by B"}))
	wantOffsets(t, a, "g", "e", []sink.Offset{offset("items", 0, 15)})
}

// testDeadLettersStoredOnce: dead letters are stored with their batch only,
// once per mapping and record (the first copy kept), binary records and
// messages that are not UTF-8 too.
func testDeadLettersStoredOnce(t *testing.T, h Harness) {
	tg := h.NewTarget(t, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	s := tg.Sink()
	dl := sink.DeadLetter{Mapping: "m", Reason: "transform", Error: "no such key: x", Topic: "t", Partition: 1, Offset: 7,
		Key: []byte(`{"id":7}`), Value: []byte(`{"after":{"id":7}}`)}
	// A message quoting a binary record is not valid UTF-8.
	binary := sink.DeadLetter{Mapping: "m", Reason: "decode", Error: "bad byte \xff in record", Topic: "t", Partition: 1, Offset: 8,
		Key: nil, Value: []byte{0, 0xff, 0xfe}}
	stored := func() []sink.DeadLetter {
		t.Helper()
		got, err := s.DeadLetters(t.Context(), "", 0)
		if err != nil {
			t.Fatalf("DeadLetters: %v", err)
		}
		out := make([]sink.DeadLetter, len(got))
		for i, d := range got {
			out[i] = d.DeadLetter
		}
		return out
	}
	// A batch that fails (NOT NULL) stores no dead letter either.
	bad := change.Write{Table: "items", Op: change.WriteUpsert, Key: []string{"id"}, Row: Row{"id": int64(1), "name": nil}}
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{bad}, DeadLetters: []sink.DeadLetter{dl}}, sink.Checkpoint{}); err == nil {
		t.Fatal("Apply of a NOT NULL violation succeeded")
	}
	if diff := cmp.Diff([]sink.DeadLetter(nil), stored(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("dead letters after a failed batch (-want +got):\n%s", diff)
	}
	changed := dl
	changed.Error = "a later copy"
	for _, dls := range [][]sink.DeadLetter{{dl, binary}, {changed}, {dl, dl}} {
		if err := s.Apply(t.Context(), sink.Batch{DeadLetters: dls}, sink.Checkpoint{}); err != nil {
			t.Fatal(err)
		}
	}
	wantBinary := binary
	wantBinary.Error = "bad byte \uFFFD in record"
	sortByOffset := cmpopts.SortSlices(func(a, b sink.DeadLetter) bool { return a.Offset < b.Offset })
	if diff := cmp.Diff([]sink.DeadLetter{dl, wantBinary}, stored(), sortByOffset, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	// Another mapping's dead letter of the same record is its own.
	other := dl
	other.Mapping = "m2"
	if err := s.Apply(t.Context(), sink.Batch{DeadLetters: []sink.DeadLetter{other}}, sink.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountDeadLetters(t.Context(), "m2"); err != nil || n != 1 {
		t.Errorf("CountDeadLetters(m2) = %d, %v; want 1", n, err)
	}
	if n, err := s.CountDeadLetters(t.Context(), "m"); err != nil || n != 2 {
		t.Errorf("CountDeadLetters(m) = %d, %v; want 2", n, err)
	}
}

func testDeadLettersListAndDelete(t *testing.T, h Harness) {
	deadLettersListOldestFirstAndDeleteByName(t, h.NewTarget(t, "").Sink())
}

func testApplyWithoutCheckpoint(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	applyWithoutCheckpointWritesRows(t, tg.Sink(), func() []map[string]any { return tg.Rows(t, allItems) })
}

// testPositions: SavePosition replaces a source's position, sources are
// apart (case too), and another sink loads what the first saved.
func testPositions(t *testing.T, h Harness) {
	tg := h.NewTarget(t, "")
	ctx := t.Context()
	s := tg.Sink()
	if pos, found, err := s.LoadPosition(ctx, "shop"); err != nil || found || pos != "" {
		t.Fatalf("LoadPosition before any save = %q, %v, %v; want \"\", false, nil", pos, found, err)
	}
	long := strings.Repeat("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-99999,", 2000) // a GTID set of many servers
	for _, st := range []struct{ source, pos string }{
		{"shop", "mysql-bin.000003:4"},
		{"Shop", "other source, other case"},
		{"shop", "0-1-42"},
		{"shop`s \"x\"", long},
	} {
		if err := s.SavePosition(ctx, st.source, st.pos); err != nil {
			t.Fatalf("SavePosition(%q): %v", st.source, err)
		}
	}
	want := map[string]string{"shop": "0-1-42", "Shop": "other source, other case", "shop`s \"x\"": long}
	for _, r := range []Sink{s, tg.OpenSink(t)} {
		for source, pos := range want {
			got, found, err := r.LoadPosition(ctx, source)
			if err != nil || !found || got != pos {
				t.Errorf("LoadPosition(%q) = %.40q, %v, %v; want %.40q, true, nil", source, got, found, err, pos)
			}
		}
	}
}

// tomb is a tombstone as Target.Tombstones reads it.
func tomb(table, key string) Row { return Row{"target_table": table, "row_key": key} }

// wantTombstones fails t unless tg's tombstones are want.
func wantTombstones(t *testing.T, tg Target, want []Row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.Tombstones(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("tombstones (-want +got):\n%s", diff)
	}
}

// backfill saves the progress of a backfill of table in state, failing t on an error.
func backfill(t *testing.T, s sink.BackfillStore, table string, state sink.BackfillState) {
	t.Helper()
	if err := s.SaveBackfill(t.Context(), sink.BackfillProgress{Table: table, State: state}); err != nil {
		t.Fatalf("SaveBackfill(%s, %s): %v", table, state, err)
	}
}

// testBackfillCopiesAndTombstones: while a backfill runs, deletes leave
// tombstones and copies skip their keys and every row there; the same
// batches again change nothing.
func testBackfillCopiesAndTombstones(t *testing.T, h Harness) {
	tests := []struct {
		name       string
		seed       string             // SQL run before the batches
		state      sink.BackfillState // the backfill's state while they are applied; "" for none
		batches    [][]change.Write   // each applied by one Apply, in order
		items      []Row              // allItems afterwards
		lines      []Row              // allLines afterwards
		tombstones []Row              // tombstones afterwards
	}{
		{
			name:  "a copy after a delete of the same key in one batch is not resurrected",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL), (2, 'kept', 2, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil}),
			}},
			items:      []Row{{"id": "2", "name": "kept", "qty": "2", "note": nil}},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "a copy after a delete of the same key in the next batch is not resurrected",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
			},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "a copy of a key deleted before the row was ever copied is not inserted",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(7)})},
				{item(change.WriteCopy, Row{"id": int64(7), "name": "copied", "qty": int64(7), "note": nil})},
			},
			tombstones: []Row{tomb("items", `["7"]`)},
		},
		{
			name:  "a copy of an existing row leaves it as it was",
			seed:  `INSERT INTO items VALUES (1, 'stream', 5, 'newer')`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
			},
			items: []Row{{"id": "1", "name": "stream", "qty": "5", "note": "newer"}},
		},
		{
			name:  "a copy of a new key inserts it, beside a delete of another key",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteCopy, Row{"id": int64(2), "name": "two", "qty": int64(2), "note": "n"}),
				item(change.WriteCopy, Row{"id": int64(3), "name": "three", "qty": nil, "note": nil}),
			}},
			items: []Row{
				{"id": "2", "name": "two", "qty": "2", "note": "n"},
				{"id": "3", "name": "three", "qty": nil, "note": nil},
			},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "a row the stream re-inserted after deleting it wins over the copy",
			seed:  `INSERT INTO items VALUES (1, 'old', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)}), item(change.WriteUpsert, Row{"id": int64(1), "name": "new", "qty": int64(2), "note": nil})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "old", "qty": int64(1), "note": nil})},
			},
			items:      []Row{{"id": "1", "name": "new", "qty": "2", "note": nil}},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "copy, delete and copy of one key across three batches",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
				{item(change.WriteDelete, Row{"id": int64(1)})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied again", "qty": int64(1), "note": nil})},
			},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "copy, delete and copy of one key in one batch",
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil}),
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteCopy, Row{"id": int64(1), "name": "copied again", "qty": int64(1), "note": nil}),
			}},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "composite keys",
			seed:  `INSERT INTO order_lines VALUES (1, 1, 'x'), (1, 2, 'y')`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{line(change.WriteDelete, Row{"order_id": int64(1), "line": int64(1)})},
				{
					line(change.WriteCopy, Row{"order_id": int64(1), "line": int64(1), "sku": "x"}),
					line(change.WriteCopy, Row{"order_id": int64(1), "line": int64(2), "sku": "y copied"}),
					line(change.WriteCopy, Row{"order_id": int64(2), "line": int64(1), "sku": "z"}),
					// the same values in the other key column: another key
					line(change.WriteCopy, Row{"order_id": int64(11), "line": int64(1), "sku": "w"}),
				},
			},
			lines: []Row{
				{"order_id": "1", "line": "2", "sku": "y"},
				{"order_id": "2", "line": "1", "sku": "z"},
				{"order_id": "11", "line": "1", "sku": "w"},
			},
			tombstones: []Row{tomb("order_lines", `["1","1"]`)},
		},
		{
			name:  "int and int64 key values are one key: one tombstone, and it stops the copy",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int(1)})},
				{item(change.WriteDelete, Row{"id": int64(1)}), item(change.WriteDelete, Row{"id": int32(2)})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": nil, "note": nil}),
					item(change.WriteCopy, Row{"id": int(2), "name": "copied", "qty": nil, "note": nil})},
			},
			tombstones: []Row{tomb("items", `["1"]`), tomb("items", `["2"]`)},
		},
		{
			name: "a delete with no backfill leaves no tombstone, and a copy is an insert-if-absent",
			seed: `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": nil, "note": nil})},
			},
			items: []Row{{"id": "1", "name": "copied", "qty": nil, "note": nil}},
		},
		{
			name:  "a delete while a backfill is copied (not yet applied) leaves a tombstone",
			state: sink.BackfillCopied,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)})},
				{item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": nil, "note": nil})},
			},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
		{
			name:  "a delete after the backfill is done leaves no tombstone",
			state: sink.BackfillDone,
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)})},
			},
		},
		{
			name:  "a key deleted twice has one tombstone",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, Row{"id": int64(1)})},
				{item(change.WriteUpsert, Row{"id": int64(1), "name": "back"}), item(change.WriteDelete, Row{"id": int64(1)})},
			},
			tombstones: []Row{tomb("items", `["1"]`)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := h.NewTarget(t, shopDDL+tc.seed)
			if tc.state != "" {
				backfill(t, tg.Sink(), "shop.src", tc.state)
			}
			for range 2 { // each batch again, in order: nothing changes
				for _, b := range tc.batches {
					apply(t, tg.Sink(), sink.Checkpoint{}, b...)
				}
				wantRows(t, tg, allItems, tc.items)
				wantRows(t, tg, allLines, tc.lines)
				wantTombstones(t, tg, tc.tombstones)
			}
		})
	}
}

// testTombstonesFollowTheBackfillState: Apply caches nothing of the
// backfill state another process saves.
func testTombstonesFollowTheBackfillState(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	s, other := tg.Sink(), tg.OpenSink(t)
	del := func(id int64) { t.Helper(); apply(t, s, sink.Checkpoint{}, item(change.WriteDelete, Row{"id": id})) }
	del(1)
	wantTombstones(t, tg, nil)
	backfill(t, other, "shop.a", sink.BackfillDone)
	del(2)
	wantTombstones(t, tg, nil)
	backfill(t, other, "shop.b", sink.BackfillRunning)
	del(3)
	wantTombstones(t, tg, []Row{tomb("items", `["3"]`)})
	backfill(t, other, "shop.b", sink.BackfillCopied)
	del(4)
	backfill(t, other, "shop.b", sink.BackfillDone)
	del(5)
	wantTombstones(t, tg, []Row{tomb("items", `["3"]`), tomb("items", `["4"]`)})
}

// testResetBackfill: ResetBackfill forgets every table's progress and every
// tombstone.
func testResetBackfill(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	s := tg.Sink()
	backfill(t, s, "shop.a", sink.BackfillRunning)
	backfill(t, s, "shop.b", sink.BackfillDone)
	apply(t, s, sink.Checkpoint{}, item(change.WriteDelete, Row{"id": int64(1)}), line(change.WriteDelete, Row{"order_id": int64(1), "line": int64(2)}))
	wantTombstones(t, tg, []Row{tomb("items", `["1"]`), tomb("order_lines", `["1","2"]`)})
	if err := s.ResetBackfill(t.Context()); err != nil {
		t.Fatalf("ResetBackfill: %v", err)
	}
	wantTombstones(t, tg, nil)
	got, err := s.BackfillProgress(t.Context())
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("BackfillProgress after ResetBackfill = %+v, want none", got)
	}
	// The tombstone is gone: a copy of the key inserts it.
	apply(t, s, sink.Checkpoint{}, item(change.WriteCopy, Row{"id": int64(1), "name": "copied", "qty": nil, "note": nil}))
	wantRows(t, tg, allItems, []Row{{"id": "1", "name": "copied", "qty": nil, "note": nil}})
}

// testBackfillProgress: SaveBackfill replaces a table's progress, kept to
// the microsecond, read back ordered by table by any sink; zero times are
// the time of saving; unknown states are refused.
func testBackfillProgress(t *testing.T, h Harness) {
	tg := h.NewTarget(t, "")
	s := tg.Sink()
	ctx := t.Context()
	jst := time.FixedZone("JST", 9*3600)
	t0 := time.Date(2024, 2, 29, 23, 59, 59, 123456789, jst)
	t1 := t0.Add(90*time.Minute + 987654321)
	long := strings.Repeat(`["日本語のキー",`, 10000) // longer than a VARCHAR index could hold
	const weird = "we`i\"rd.ta'ble"
	saves := []sink.BackfillProgress{
		{Table: "shop.orders", State: sink.BackfillRunning, Started: t0, Updated: t0},
		{Table: "shop.Items", State: sink.BackfillDone, After: `["99"]`, Rows: 99, Started: t0, Updated: t1},
		{Table: "shop.orders", State: sink.BackfillCopied, After: long, Rows: 1 << 40, Started: t0, Updated: t1},
		{Table: weird, State: sink.BackfillRunning, Started: t1, Updated: t1},
	}
	for _, p := range saves {
		if err := s.SaveBackfill(ctx, p); err != nil {
			t.Fatalf("SaveBackfill(%.80v): %v", p, err)
		}
	}
	us := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	want := []sink.BackfillProgress{
		{Table: "shop.Items", State: sink.BackfillDone, After: `["99"]`, Rows: 99, Started: us(t0), Updated: us(t1)},
		{Table: "shop.orders", State: sink.BackfillCopied, After: long, Rows: 1 << 40, Started: us(t0), Updated: us(t1)},
		{Table: weird, State: sink.BackfillRunning, Started: us(t1), Updated: us(t1)},
	}
	// Read by another sink: it is all in the target.
	got, err := tg.OpenSink(t).BackfillProgress(ctx)
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BackfillProgress (-want +got):\n%.2000s", diff)
	}
	// Zero times are the time of saving.
	before := time.Now()
	if err := s.SaveBackfill(ctx, sink.BackfillProgress{Table: "a.new", State: sink.BackfillRunning}); err != nil {
		t.Fatal(err)
	}
	got, err = s.BackfillProgress(ctx)
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	now := cmpopts.EquateApproxTime(time.Minute)
	if diff := cmp.Diff(sink.BackfillProgress{Table: "a.new", State: sink.BackfillRunning, Started: before, Updated: before}, got[0], now); diff != "" {
		t.Errorf("progress saved with zero times (-want +got):\n%s", diff)
	}
	// Unknown states are refused.
	if err := s.SaveBackfill(ctx, sink.BackfillProgress{Table: "a.b", State: "paused"}); err == nil {
		t.Error("SaveBackfill of state \"paused\" succeeded, want an error")
	}
}

// testLargeBackfillBatches: a batch of more tombstones and copies than one
// statement takes is split and applied whole, in one batch and in two.
func testLargeBackfillBatches(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	backfill(t, tg.Sink(), "shop.src", sink.BackfillRunning)
	// 2,500 deletes (several tombstone statements) and 20,000 copies of 4
	// columns (80,000 values).
	const n = 20000
	deleted := func(i int) bool { return i%8 == 3 }
	var dels, copies []change.Write
	var want []Row
	for i := range n {
		if deleted(i) {
			dels = append(dels, item(change.WriteDelete, Row{"id": int64(i)}))
		}
		copies = append(copies, item(change.WriteCopy, Row{"id": int64(i), "name": fmt.Sprint("n", i), "qty": int64(i % 7), "note": strings.Repeat("x", i%300)}))
		if !deleted(i) {
			want = append(want, Row{"id": fmt.Sprint(i), "name": fmt.Sprint("n", i), "qty": fmt.Sprint(i % 7), "note": strings.Repeat("x", i%300)})
		}
	}
	apply(t, tg.Sink(), sink.Checkpoint{}, append(dels, copies...)...)
	wantRows(t, tg, allItems, want)
	if got := len(tg.Tombstones(t)); got != len(dels) {
		t.Errorf("%d tombstones, want %d", got, len(dels))
	}
	tg.Exec(t, "DELETE FROM items")
	apply(t, tg.Sink(), sink.Checkpoint{}, copies...)
	wantRows(t, tg, allItems, want)
}

// testProcessesStartingTogether starts several sinks at once on a target
// whose state schema does not exist yet, as apply processes scaled out on
// a fresh target do: every one opens (none fails creating tandem's tables
// because another created them meanwhile).
func testProcessesStartingTogether(t *testing.T, h Harness) {
	tg := h.NewTarget(t, "")
	const n = 6
	errs := tg.StartSinks(t, n)
	if diff := cmp.Diff(make([]error, n), errs, cmpopts.EquateErrors()); diff != "" {
		t.Errorf("%d sinks opened at once on a fresh state schema (-want +got):\n%s", n, diff)
	}
}

// testDriftCounts: a sweep's counts replace the stored counts of the
// mappings they name, and only those; they read back by mapping and kind,
// stamped with the database's clock.
func testDriftCounts(t *testing.T, h Harness) {
	s := h.NewTarget(t, "").Sink()
	ctx := t.Context()
	store := func(counts ...sink.DriftCount) {
		t.Helper()
		if err := s.StoreDrift(ctx, counts); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Minute) // the database's clock, give or take
	store(sink.DriftCount{Mapping: "orders", Kind: "missing", Rows: 3}, sink.DriftCount{Mapping: "orders", Kind: "extra", Rows: 1},
		sink.DriftCount{Mapping: "reverse:orders", Kind: "mismatch", Rows: 2})
	store(sink.DriftCount{Mapping: "orders", Kind: "missing", Rows: 0}, sink.DriftCount{Mapping: "orders", Kind: "mismatch", Rows: 7})
	store()
	got, err := s.Drift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Swept.Before(start) || c.Swept.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s %s swept at %s, want about now", c.Mapping, c.Kind, c.Swept)
		}
	}
	want := []sink.DriftCount{{Mapping: "orders", Kind: "mismatch", Rows: 7}, {Mapping: "orders", Kind: "missing", Rows: 0},
		{Mapping: "reverse:orders", Kind: "mismatch", Rows: 2}}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(sink.DriftCount{}, "Swept")); diff != "" {
		t.Errorf("drift counts (-want +got):\n%s", diff)
	}
}
