package mysql_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
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
func backfill(t *testing.T, s sink.BackfillStore, table string, state sink.BackfillState) {
	t.Helper()
	if err := s.SaveBackfill(t.Context(), sink.BackfillProgress{Table: table, State: state}); err != nil {
		t.Fatalf("SaveBackfill(%s, %s): %v", table, state, err)
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

// innodbTrx spaces the reads of INNODB_TRX of every test of the package:
// InnoDB refreshes the table only when nobody read it for 100 ms, so two
// tests polling it in parallel, each every 150 ms, kept it from ever
// refreshing (the two lock-wait tests below then both timed out).
var innodbTrx struct {
	sync.Mutex
	asked time.Time
}

// waitForLockWait waits until a transaction whose statement contains
// what waits for a lock, reading INNODB_TRX at most every 150 ms across
// the package (innodbTrx).
func (tg *target) waitForLockWait(t *testing.T, what string) {
	t.Helper()
	testenv.WaitFor(t, "a statement with "+what+" waiting for a lock", 10*time.Second, func() (bool, error) {
		innodbTrx.Lock()
		defer innodbTrx.Unlock()
		if time.Since(innodbTrx.asked) < 150*time.Millisecond {
			return false, nil
		}
		defer func() { innodbTrx.asked = time.Now() }()
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
