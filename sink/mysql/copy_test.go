package mysql_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

// tombstones reads the tombstones of the target's state database, and
// whether each key_hash is the SHA-256 of its row_key.
func (tg *target) tombstones(t *testing.T) []row {
	t.Helper()
	return tg.Rows(t, "SELECT target_table, row_key, key_hash = UNHEX(SHA2(row_key, 256)) AS hashed FROM `"+
		tg.state+"`.tombstones ORDER BY target_table, row_key")
}

// wantTombstones fails the test unless the target's tombstones are want.
func (tg *target) wantTombstones(t *testing.T, want []row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.tombstones(t), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("tombstones (-want +got):\n%s", diff)
	}
}

// tomb is a tombstone as target.tombstones reads it.
func tomb(table, key string) row { return row{"target_table": table, "row_key": key, "hashed": "1"} }

// backfill saves the progress of a backfill of table in state, failing the test on an error.
func backfill(t *testing.T, s sink.BackfillStore, table, state string) {
	t.Helper()
	if err := s.SaveBackfill(t.Context(), sink.BackfillProgress{Table: table, State: state}); err != nil {
		t.Fatalf("SaveBackfill(%s, %s): %v", table, state, err)
	}
}

func TestApply_BackfillCopiesAndTombstones(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		seed       string           // SQL run before the batches
		state      string           // the backfill's state while they are applied; "" for none
		batches    [][]change.Write // each applied by one Apply, in order
		items      []row            // allItems afterwards
		lines      []row            // allLines afterwards
		tombstones []row            // tombstones afterwards
	}{
		{
			name:  "a copy after a delete of the same key in one batch is not resurrected",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL), (2, 'kept', 2, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil}),
			}},
			items:      []row{{"id": "2", "name": "kept", "qty": "2", "note": nil}},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "a copy after a delete of the same key in the next batch is not resurrected",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
			},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "a copy of a key deleted before the row was ever copied is not inserted",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(7)})},
				{item(change.WriteCopy, row{"id": int64(7), "name": "copied", "qty": int64(7), "note": nil})},
			},
			tombstones: []row{tomb("items", `["7"]`)},
		},
		{
			name:  "a copy of an existing row leaves it as it was",
			seed:  `INSERT INTO items VALUES (1, 'stream', 5, 'newer')`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
			},
			items: []row{{"id": "1", "name": "stream", "qty": "5", "note": "newer"}},
		},
		{
			name:  "a copy of a new key inserts it, beside a delete of another key",
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteCopy, row{"id": int64(2), "name": "two", "qty": int64(2), "note": "n"}),
				item(change.WriteCopy, row{"id": int64(3), "name": "three", "qty": nil, "note": nil}),
			}},
			items: []row{
				{"id": "2", "name": "two", "qty": "2", "note": "n"},
				{"id": "3", "name": "three", "qty": nil, "note": nil},
			},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "a row the stream re-inserted after deleting it wins over the copy",
			seed:  `INSERT INTO items VALUES (1, 'old', 1, NULL)`,
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)}), item(change.WriteUpsert, row{"id": int64(1), "name": "new", "qty": int64(2), "note": nil})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "old", "qty": int64(1), "note": nil})},
			},
			items:      []row{{"id": "1", "name": "new", "qty": "2", "note": nil}},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "copy, delete and copy of one key across three batches",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil})},
				{item(change.WriteDelete, row{"id": int64(1)})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied again", "qty": int64(1), "note": nil})},
			},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "copy, delete and copy of one key in one batch",
			state: sink.BackfillRunning,
			batches: [][]change.Write{{
				item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": int64(1), "note": nil}),
				item(change.WriteDelete, row{"id": int64(1)}),
				item(change.WriteCopy, row{"id": int64(1), "name": "copied again", "qty": int64(1), "note": nil}),
			}},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "composite keys",
			seed:  "INSERT INTO `lines` VALUES (1, 1, 'x'), (1, 2, 'y')",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{line(change.WriteDelete, row{"order_id": int64(1), "line": int64(1)})},
				{
					line(change.WriteCopy, row{"order_id": int64(1), "line": int64(1), "sku": "x"}),
					line(change.WriteCopy, row{"order_id": int64(1), "line": int64(2), "sku": "y copied"}),
					line(change.WriteCopy, row{"order_id": int64(2), "line": int64(1), "sku": "z"}),
					// the same values in the other key column: another key
					line(change.WriteCopy, row{"order_id": int64(11), "line": int64(1), "sku": "w"}),
				},
			},
			lines: []row{
				{"order_id": "1", "line": "2", "sku": "y"},
				{"order_id": "2", "line": "1", "sku": "z"},
				{"order_id": "11", "line": "1", "sku": "w"},
			},
			tombstones: []row{tomb("lines", `["1","1"]`)},
		},
		{
			name:  "int and int64 key values are one key: one tombstone, and it stops the copy",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int(1)})},
				{item(change.WriteDelete, row{"id": int64(1)}), item(change.WriteDelete, row{"id": int32(2)})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": nil, "note": nil}),
					item(change.WriteCopy, row{"id": int(2), "name": "copied", "qty": nil, "note": nil})},
			},
			tombstones: []row{tomb("items", `["1"]`), tomb("items", `["2"]`)},
		},
		{
			name: "a delete with no backfill leaves no tombstone, and a copy is an insert-if-absent",
			seed: `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": nil, "note": nil})},
			},
			items: []row{{"id": "1", "name": "copied", "qty": nil, "note": nil}},
		},
		{
			name:  "a delete while a backfill is copied (not yet applied) leaves a tombstone",
			state: sink.BackfillCopied,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)})},
				{item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": nil, "note": nil})},
			},
			tombstones: []row{tomb("items", `["1"]`)},
		},
		{
			name:  "a delete after the backfill is done leaves no tombstone",
			state: sink.BackfillDone,
			seed:  `INSERT INTO items VALUES (1, 'stream', 1, NULL)`,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)})},
			},
		},
		{
			name:  "a key deleted twice has one tombstone",
			state: sink.BackfillRunning,
			batches: [][]change.Write{
				{item(change.WriteDelete, row{"id": int64(1)})},
				{item(change.WriteUpsert, row{"id": int64(1), "name": "back"}), item(change.WriteDelete, row{"id": int64(1)})},
			},
			tombstones: []row{tomb("items", `["1"]`)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, shopDDL+tc.seed)
			if tc.state != "" {
				backfill(t, tg.sink, "shop.src", tc.state)
			}
			for _, b := range tc.batches {
				tg.apply(t, sink.Checkpoint{}, b...)
			}
			tg.wantRows(t, allItems, tc.items)
			tg.wantRows(t, allLines, tc.lines)
			tg.wantTombstones(t, tc.tombstones)
			// Each batch again, in order: nothing changes.
			for _, b := range tc.batches {
				tg.apply(t, sink.Checkpoint{}, b...)
			}
			tg.wantRows(t, allItems, tc.items)
			tg.wantRows(t, allLines, tc.lines)
			tg.wantTombstones(t, tc.tombstones)
		})
	}
}

func TestApply_TombstonesFollowTheBackfillStateOfTheMoment(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	// Another process (another Sink) saves the progress: Apply caches nothing.
	other := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state})
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(1)}))
	tg.wantTombstones(t, nil)
	backfill(t, other, "shop.a", sink.BackfillDone)
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(2)}))
	tg.wantTombstones(t, nil)
	backfill(t, other, "shop.b", sink.BackfillRunning)
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(3)}))
	tg.wantTombstones(t, []row{tomb("items", `["3"]`)})
	backfill(t, other, "shop.b", sink.BackfillCopied)
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(4)}))
	backfill(t, other, "shop.b", sink.BackfillDone)
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(5)}))
	tg.wantTombstones(t, []row{tomb("items", `["3"]`), tomb("items", `["4"]`)})
}

func TestResetBackfill_ForgetsProgressAndTombstones(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "shop.a", sink.BackfillRunning)
	backfill(t, tg.sink, "shop.b", sink.BackfillDone)
	tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(1)}), line(change.WriteDelete, row{"order_id": int64(1), "line": int64(2)}))
	tg.wantTombstones(t, []row{tomb("items", `["1"]`), tomb("lines", `["1","2"]`)})
	if err := tg.sink.ResetBackfill(t.Context()); err != nil {
		t.Fatalf("ResetBackfill: %v", err)
	}
	tg.wantTombstones(t, nil)
	got, err := tg.sink.BackfillProgress(t.Context())
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("BackfillProgress after ResetBackfill = %+v, want none", got)
	}
	// The tombstone is gone: a copy of the key inserts it.
	tg.apply(t, sink.Checkpoint{}, item(change.WriteCopy, row{"id": int64(1), "name": "copied", "qty": nil, "note": nil}))
	tg.wantRows(t, allItems, []row{{"id": "1", "name": "copied", "qty": nil, "note": nil}})
}

func TestBackfillProgress_SaveReplacesAndReadsBackOrderedByTable(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	ctx := t.Context()
	jst := time.FixedZone("JST", 9*3600)
	t0 := time.Date(2024, 2, 29, 23, 59, 59, 123456789, jst)
	t1 := t0.Add(90*time.Minute + 987654321)
	long := strings.Repeat(`["日本語のキー",`, 10000) // longer than a VARCHAR index could hold
	saves := []sink.BackfillProgress{
		{Table: "shop.orders", State: sink.BackfillRunning, Started: t0, Updated: t0},
		{Table: "shop.Items", State: sink.BackfillDone, After: `["99"]`, Rows: 99, Started: t0, Updated: t1},
		{Table: "shop.orders", State: sink.BackfillCopied, After: long, Rows: 1 << 40, Started: t0, Updated: t1},
		{Table: "we`ird.ta'ble", State: sink.BackfillRunning, Started: t1, Updated: t1},
	}
	for _, p := range saves {
		if err := tg.sink.SaveBackfill(ctx, p); err != nil {
			t.Fatalf("SaveBackfill(%.80v): %v", p, err)
		}
	}
	us := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	want := []sink.BackfillProgress{
		{Table: "shop.Items", State: sink.BackfillDone, After: `["99"]`, Rows: 99, Started: us(t0), Updated: us(t1)},
		{Table: "shop.orders", State: sink.BackfillCopied, After: long, Rows: 1 << 40, Started: us(t0), Updated: us(t1)},
		{Table: "we`ird.ta'ble", State: sink.BackfillRunning, Started: us(t1), Updated: us(t1)},
	}
	// Read by another Sink: it is all in the target.
	got, err := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state}).BackfillProgress(ctx)
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BackfillProgress (-want +got):\n%.2000s", diff)
	}
	// Zero times are the time of saving.
	before := time.Now()
	if err := tg.sink.SaveBackfill(ctx, sink.BackfillProgress{Table: "a.new", State: sink.BackfillRunning}); err != nil {
		t.Fatal(err)
	}
	got, err = tg.sink.BackfillProgress(ctx)
	if err != nil {
		t.Fatalf("BackfillProgress: %v", err)
	}
	now := cmpopts.EquateApproxTime(time.Minute)
	if diff := cmp.Diff(sink.BackfillProgress{Table: "a.new", State: sink.BackfillRunning, Started: before, Updated: before}, got[0], now); diff != "" {
		t.Errorf("progress saved with zero times (-want +got):\n%s", diff)
	}
	// Unknown states are refused.
	if err := tg.sink.SaveBackfill(ctx, sink.BackfillProgress{Table: "a.b", State: "paused"}); err == nil {
		t.Error("SaveBackfill of state \"paused\" succeeded, want an error")
	}
}

func TestApply_BackfillOfLongAndBinaryKeys(t *testing.T) {
	t.Parallel()
	// Keys as long as InnoDB indexes them: 768 four-byte characters, 3072 bytes.
	tg := newTarget(t, `CREATE TABLE words (w VARCHAR(768) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY, n INT);
CREATE TABLE blobs (b VARBINARY(3072) PRIMARY KEY, n INT)`)
	backfill(t, tg.sink, "shop.src", sink.BackfillRunning)
	elephants := strings.Repeat("🐘", 768)
	bin := func(fill byte) []byte {
		b := make([]byte, 3072)
		for i := range b {
			b[i] = fill ^ byte(i)
		}
		return b
	}
	word := func(op change.WriteOp, w string, n any) change.Write {
		r := row{"w": w}
		if op != change.WriteDelete {
			r["n"] = n
		}
		return write(op, "words", r, "w")
	}
	blob := func(op change.WriteOp, b []byte, n any) change.Write {
		r := row{"b": b}
		if op != change.WriteDelete {
			r["n"] = n
		}
		return write(op, "blobs", r, "b")
	}
	tg.apply(t, sink.Checkpoint{}, word(change.WriteDelete, elephants, nil), blob(change.WriteDelete, bin(0xff), nil))
	tg.apply(t, sink.Checkpoint{},
		word(change.WriteCopy, elephants, int64(1)), word(change.WriteCopy, elephants[4:], int64(2)),
		blob(change.WriteCopy, bin(0xff), int64(1)), blob(change.WriteCopy, bin(0xfe), int64(2)))
	tg.wantRows(t, "SELECT w, n FROM words", []row{{"w": elephants[4:], "n": "2"}})
	tg.wantRows(t, "SELECT b, n FROM blobs", []row{{"b": string(bin(0xfe)), "n": "2"}})
	tg.wantTombstones(t, []row{
		tomb("blobs", `["\\x`+fmt.Sprintf("%x", bin(0xff))+`"]`),
		tomb("words", `["`+elephants+`"]`),
	})
}

func TestApply_LargeBackfillBatchesAreSplitUnderThePlaceholderLimit(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "shop.src", sink.BackfillRunning)
	// 2,500 deletes (several tombstone statements) and 20,000 copies of 4
	// columns (80,000 placeholders), in one batch and then in two.
	const n = 20000
	deleted := func(i int) bool { return i%8 == 3 }
	var dels, copies []change.Write
	var want []row
	for i := range n {
		if deleted(i) {
			dels = append(dels, item(change.WriteDelete, row{"id": int64(i)}))
		}
		copies = append(copies, item(change.WriteCopy, row{"id": int64(i), "name": fmt.Sprint("n", i), "qty": int64(i % 7), "note": strings.Repeat("x", i%300)}))
		if !deleted(i) {
			want = append(want, row{"id": fmt.Sprint(i), "name": fmt.Sprint("n", i), "qty": fmt.Sprint(i % 7), "note": strings.Repeat("x", i%300)})
		}
	}
	tg.apply(t, sink.Checkpoint{}, append(dels, copies...)...)
	tg.wantRows(t, allItems, want)
	tg.wantRows(t, "SELECT count(*) AS n FROM `"+tg.state+"`.tombstones", []row{{"n": fmt.Sprint(len(dels))}})
	tg.Exec(t, "DELETE FROM items")
	tg.apply(t, sink.Checkpoint{}, copies...)
	tg.wantRows(t, allItems, want)
}

func TestApply_BackfillWithHostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "")
	db := "Shop `Old` " + tg.name[len(tg.name)-6:]
	tg.Exec(t, fmt.Sprintf(hostileDDL, strings.ReplaceAll(db, "`", "``")))
	table := db + ".order"
	key := []string{"select", "MixedCase"}
	order := func(op change.WriteOp, r row) change.Write { return write(op, table, r, key...) }
	state := "Tandem `State` " + tg.state
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: state})
	backfill(t, s, table, sink.BackfillRunning)
	apply := func(ws ...change.Write) {
		t.Helper()
		if err := s.Apply(t.Context(), sink.Batch{Writes: ws}, sink.Checkpoint{}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	full := func(sel int64, mixed, ab string) row {
		return row{"select": sel, "MixedCase": mixed, `"quoted"`: nil, "back`tick": "`", "Mood": "sad", "a,b": ab, "a": nil, "b": nil, "日本": nil}
	}
	apply(order(change.WriteUpsert, row{"select": int64(1), "MixedCase": "A", "a,b": "stream"}),
		order(change.WriteDelete, row{"select": int64(2), "MixedCase": "b`'"}))
	apply(order(change.WriteCopy, full(1, "A", "copied")), order(change.WriteCopy, full(2, "b`'", "copied")), order(change.WriteCopy, full(3, "C", "copied")))
	quoted := "`" + strings.ReplaceAll(db, "`", "``") + "`"
	tg.wantRows(t, "SELECT * FROM "+quoted+".`order` ORDER BY 1, 2", []row{
		{"select": "1", "MixedCase": "A", `"quoted"`: nil, "back`tick": nil, "Mood": nil, "a,b": "stream", "a": nil, "b": nil, "日本": nil},
		{"select": "3", "MixedCase": "C", `"quoted"`: nil, "back`tick": "`", "Mood": "sad", "a,b": "copied", "a": nil, "b": nil, "日本": nil},
	})
	tg.wantRows(t, "SELECT target_table, row_key FROM `"+strings.ReplaceAll(state, "`", "``")+"`.tombstones",
		[]row{{"target_table": table, "row_key": "[\"2\",\"b`'\"]"}})
	tg.wantTombstones(t, nil) // the sink's own state database only
}

// waitForLockWait waits until a transaction whose statement contains
// what waits for a lock. InnoDB refreshes INNODB_TRX only when it was not
// read for 100 ms: it is asked at most every 150 ms.
func (tg *target) waitForLockWait(t *testing.T, what string) {
	t.Helper()
	var asked time.Time
	testenv.WaitFor(t, "a statement with "+what+" waiting for a lock", 10*time.Second, func() (bool, error) {
		if time.Since(asked) < 150*time.Millisecond {
			return false, nil
		}
		defer func() { asked = time.Now() }()
		var n int
		// This target's sessions only: the server is shared with tests
		// whose tables have the same names.
		err := tg.db.QueryRowContext(t.Context(), "SELECT count(*) FROM information_schema.INNODB_TRX t "+
			"JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "+
			"WHERE t.trx_state = 'LOCK WAIT' AND t.trx_query LIKE ? AND p.DB = DATABASE()", "%"+what+"%").Scan(&n)
		return n > 0, err
	})
}

// applyAsync applies writes in a goroutine; the returned channel gives its error.
func (tg *target) applyAsync(t *testing.T, writes ...change.Write) <-chan error {
	done := make(chan error, 1)
	go func() { done <- tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, sink.Checkpoint{}) }()
	return done
}

// The copy and the delete below run concurrently, in the order that would
// resurrect a row without the copy lock: each test holds one of them in
// the middle of its transaction (a row lock held by a third transaction)
// while the other starts.

func TestApply_ACopyWaitsForADeleteInFlightAndSkipsTheKeyItDeleted(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL+`INSERT INTO items VALUES (1, 'one', 1, NULL), (2, 'two', 2, NULL);`)
	backfill(t, tg.sink, "src.t", sink.BackfillRunning)
	// A third transaction holds row 1: the delete of 1 and 3 waits there.
	holder := tg.hold(t, "SELECT * FROM items WHERE id = 1 FOR UPDATE")
	deleted := tg.applyAsync(t, item(change.WriteDelete, row{"id": int64(1)}), item(change.WriteDelete, row{"id": int64(3)}))
	tg.waitForLockWait(t, "DELETE")
	// The copy of key 3, read from the source before its delete: it must
	// wait for the delete's commit, then see its tombstone.
	copied := tg.applyAsync(t, item(change.WriteCopy, row{"id": int64(3), "name": "copied", "qty": int64(3), "note": nil}))
	tg.waitForLockWait(t, "copy_locks")
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan error{deleted, copied} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, allItems, []row{{"id": "2", "name": "two", "qty": "2", "note": nil}})
	tg.wantTombstones(t, []row{tomb("items", `["1"]`), tomb("items", `["3"]`)})
}

func TestApply_ADeleteWaitsForACopyInFlightAndRemovesWhatItCopied(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "src.t", sink.BackfillRunning)
	// A third transaction inserts key 5, uncommitted: the copy of 4, 5
	// and 6 waits for it.
	holder := tg.hold(t, "INSERT INTO items VALUES (5, 'held', 5, NULL)")
	copied := tg.applyAsync(t,
		item(change.WriteCopy, row{"id": int64(4), "name": "four", "qty": int64(4), "note": nil}),
		item(change.WriteCopy, row{"id": int64(5), "name": "five", "qty": int64(5), "note": nil}),
		item(change.WriteCopy, row{"id": int64(6), "name": "six", "qty": int64(6), "note": nil}))
	tg.waitForLockWait(t, "`items`")
	// The stream deletes 4 and 6 meanwhile: it must wait for the copy's
	// commit, then delete the copied rows.
	deleted := tg.applyAsync(t, item(change.WriteDelete, row{"id": int64(4)}), item(change.WriteDelete, row{"id": int64(6)}))
	tg.waitForLockWait(t, "copy_locks")
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan error{copied, deleted} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, allItems, []row{{"id": "5", "name": "five", "qty": "5", "note": nil}})
	tg.wantTombstones(t, []row{tomb("items", `["4"]`), tomb("items", `["6"]`)})
}

func TestApply_CopiesOfOneTableDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "src.t", sink.BackfillRunning)
	// A third transaction inserts key 2, uncommitted: the copy of 2 waits
	// for it, holding the table's copy lock.
	holder := tg.hold(t, "INSERT INTO items VALUES (2, 'held', 2, NULL)")
	held := tg.applyAsync(t, item(change.WriteCopy, row{"id": int64(2), "name": "two", "qty": int64(2), "note": nil}))
	tg.waitForLockWait(t, "`items`")
	// Another chunk of the table is written meanwhile.
	tg.apply(t, sink.Checkpoint{}, item(change.WriteCopy, row{"id": int64(7), "name": "seven", "qty": int64(7), "note": nil}))
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, allItems, []row{
		{"id": "2", "name": "two", "qty": "2", "note": nil},
		{"id": "7", "name": "seven", "qty": "7", "note": nil},
	})
}

// hold runs stmt in a transaction left open, holding its locks until the
// test commits or rolls it back (or ends).
func (tg *target) hold(t *testing.T, stmt string) *sql.Tx {
	t.Helper()
	tx, err := tg.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	if _, err := tx.ExecContext(t.Context(), stmt); err != nil {
		t.Fatal(err)
	}
	return tx
}
