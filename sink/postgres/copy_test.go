package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
)

// allTombstones reads the tombstones of the default state schema.
const allTombstones = `SELECT target_table, row_key FROM tandem.tombstones ORDER BY 1, 2`

// tomb is a tombstone as allTombstones reads it.
func tomb(table, key string) row { return row{"target_table": table, "row_key": key} }

// backfill saves the progress of a backfill of table in state, failing the test on an error.
func backfill(t *testing.T, s sink.BackfillStore, table string, state sink.BackfillState) {
	t.Helper()
	if err := s.SaveBackfill(t.Context(), sink.BackfillProgress{Table: table, State: state}); err != nil {
		t.Fatalf("SaveBackfill(%s, %s): %v", table, state, err)
	}
}

func TestApply_BackfillWithHostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, hostileDDL)
	const table = "Shop Old.order"
	key := []string{"select", "MixedCase"}
	order := func(op change.WriteOp, r row) change.Write { return write(op, table, r, key...) }
	s := tg.newSink(t, postgres.Config{DSN: tg.dsn, StateSchema: `Tandem "State"`})
	backfill(t, s, `Shop Old.order`, sink.BackfillRunning)
	apply := func(ws ...change.Write) {
		t.Helper()
		if err := s.Apply(t.Context(), sink.Batch{Writes: ws}, sink.Checkpoint{}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	apply(order(change.WriteUpsert, row{"select": int64(1), "MixedCase": "A", "a,b": "stream"}),
		order(change.WriteDelete, row{"select": int64(2), "MixedCase": `b"'`}))
	apply(order(change.WriteCopy, row{"select": int64(1), "MixedCase": "A", `"quoted"`: nil, "Mood": "sad", "a,b": "copied", "a": nil, "b": nil}),
		order(change.WriteCopy, row{"select": int64(2), "MixedCase": `b"'`, `"quoted"`: nil, "Mood": "sad", "a,b": "copied", "a": nil, "b": nil}),
		order(change.WriteCopy, row{"select": int64(3), "MixedCase": "C", `"quoted"`: "q", "Mood": "happy", "a,b": "copied", "a": "x", "b": "y"}))
	tg.wantRows(t, `SELECT * FROM "Shop Old"."order" ORDER BY 1, 2`, []row{
		{"select": "1", "MixedCase": "A", `"quoted"`: nil, "Mood": nil, "a,b": "stream", "a": nil, "b": nil},
		{"select": "3", "MixedCase": "C", `"quoted"`: "q", "Mood": "happy", "a,b": "copied", "a": "x", "b": "y"},
	})
	tg.wantRows(t, `SELECT target_table, row_key FROM "Tandem ""State""".tombstones`, []row{tomb(table, `["2","b\"'"]`)})
	tg.wantRows(t, `SELECT count(*) AS n FROM tandem.tombstones`, []row{{"n": "0"}})
	// Verbatim: the tombstoned line is left out, the other written.
	cols := []string{"select", "MixedCase", "a,b", `"quoted"`}
	if err := s.CopyText(t.Context(), table, cols, []byte("2\tb\"'\tcopied\t\\N\n4\tD\\t\tcopied\tq\n"), &sink.TextKey{At: []int{0, 1}}); err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, `SELECT "select", "MixedCase", "a,b", """quoted""" FROM "Shop Old"."order" WHERE "select" > 3`, []row{
		{"select": "4", "MixedCase": "D\t", "a,b": "copied", `"quoted"`: "q"},
	})
}

// A key longer than a btree entry holds (about 2.7 kB) keeps its tombstone
// as a digest: the delete is stored, and the copy of the key is stopped.
func TestApply_TombstonesOfLongKeysAreDigests(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE docs (path text PRIMARY KEY, body text)`)
	// 6 kB of key that does not compress (a compressed one would fit).
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for range 6000 {
		sb.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-"[rng.IntN(64)])
	}
	long := sb.String()
	backfill(t, tg.sink, "public.src", sink.BackfillRunning)
	del := change.Write{Table: "docs", Op: change.WriteDelete, Key: []string{"path"}, Row: row{"path": long}}
	cp := change.Write{Table: "docs", Op: change.WriteCopy, Key: []string{"path"}, Row: row{"path": long, "body": "copied"}}
	short := change.Write{Table: "docs", Op: change.WriteCopy, Key: []string{"path"}, Row: row{"path": "b", "body": "copied"}}
	tg.apply(t, sink.Checkpoint{}, del)
	tg.apply(t, sink.Checkpoint{}, cp, short)
	tg.wantRows(t, `SELECT path, body FROM docs ORDER BY path`, []row{{"path": "b", "body": "copied"}})
	sum := sha256.Sum256([]byte(change.KeyText([]string{"path"}, row{"path": long})))
	tg.wantRows(t, allTombstones, []row{tomb("docs", "sha256:"+hex.EncodeToString(sum[:]))})
}

// waitForCopyLock waits until some transaction waits for an advisory lock
// (a copy lock, in these tests), polling with a deadline.
func (tg *target) waitForCopyLock(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, "a transaction waiting for the copy lock", 10*time.Second, func() (bool, error) {
		var n int
		err := tg.db.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
		return n > 0, err
	})
}

// hold runs sql in a transaction left open (rolled back when the test
// ends), to hold a lock for as long as the test needs.
func (tg *target) hold(t *testing.T, sql string) pgx.Tx {
	t.Helper()
	tx, err := tg.db.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitForStatementWaiting waits until a statement starting with prefix
// waits for a lock.
func (tg *target) waitForStatementWaiting(t *testing.T, prefix string) {
	t.Helper()
	testenv.WaitFor(t, "a "+prefix+" to wait for a lock", 10*time.Second, func() (bool, error) {
		var n int
		// This target's sessions only: the server is shared with tests
		// that run the same statements.
		err := tg.db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND starts_with(query, $1) AND datname = current_database()`, prefix).Scan(&n)
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
	tg := newTarget(t, shopDDL+`INSERT INTO items VALUES (1, 'one', 1, NULL), (2, 'two', 2, NULL)`)
	backfill(t, tg.sink, "public.src", sink.BackfillRunning)
	// A third transaction holds row 1: the delete of 1 and 3 takes its
	// snapshot and waits there.
	holder := tg.hold(t, `SELECT * FROM items WHERE id = 1 FOR UPDATE`)
	deleted := tg.applyAsync(t, item(change.WriteDelete, row{"id": int64(1)}), item(change.WriteDelete, row{"id": int64(3)}))
	tg.waitForStatementWaiting(t, "DELETE")
	// The copy of key 3, read from the source before its delete: it must
	// wait for the delete's commit, then see its tombstone.
	copied := tg.applyAsync(t, item(change.WriteCopy, row{"id": int64(3), "name": "copied", "qty": int64(3), "note": nil}))
	tg.waitForCopyLock(t)
	if err := holder.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan error{deleted, copied} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, allItems, []row{{"id": "2", "name": "two", "qty": "2", "note": nil}})
	tg.wantRows(t, allTombstones, []row{tomb("items", `["1"]`), tomb("items", `["3"]`)})
}

func TestApply_ADeleteWaitsForACopyInFlightAndRemovesWhatItCopied(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "public.src", sink.BackfillRunning)
	// A third transaction inserts key 5, uncommitted: the copy of 4, 5
	// and 6 writes 4 and waits there for 5.
	holder := tg.hold(t, `INSERT INTO items VALUES (5, 'held', 5, NULL)`)
	copied := tg.applyAsync(t,
		item(change.WriteCopy, row{"id": int64(4), "name": "four", "qty": int64(4), "note": nil}),
		item(change.WriteCopy, row{"id": int64(5), "name": "five", "qty": int64(5), "note": nil}),
		item(change.WriteCopy, row{"id": int64(6), "name": "six", "qty": int64(6), "note": nil}))
	tg.waitForStatementWaiting(t, "COPY")
	// The stream deletes 4 and 6 meanwhile: it must wait for the copy's
	// commit, then delete the copied rows.
	deleted := tg.applyAsync(t, item(change.WriteDelete, row{"id": int64(4)}), item(change.WriteDelete, row{"id": int64(6)}))
	tg.waitForCopyLock(t)
	if err := holder.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []<-chan error{copied, deleted} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	tg.wantRows(t, allItems, []row{{"id": "5", "name": "five", "qty": "5", "note": nil}})
	tg.wantRows(t, allTombstones, []row{tomb("items", `["4"]`), tomb("items", `["6"]`)})
}

func TestApply_CopiesOfOneTableDoNotWaitForEachOther(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, shopDDL)
	backfill(t, tg.sink, "public.src", sink.BackfillRunning)
	holder := tg.hold(t, `INSERT INTO items VALUES (2, 'held', 2, NULL)`)
	held := tg.applyAsync(t, item(change.WriteCopy, row{"id": int64(2), "name": "two", "qty": int64(2), "note": nil}))
	tg.waitForStatementWaiting(t, "COPY")
	// Another chunk of the table is written meanwhile.
	tg.apply(t, sink.Checkpoint{}, item(change.WriteCopy, row{"id": int64(7), "name": "seven", "qty": int64(7), "note": "a\tb\nc\\d"}))
	if err := holder.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, allItems, []row{
		{"id": "2", "name": "two", "qty": "2", "note": nil},
		{"id": "7", "name": "seven", "qty": "7", "note": "a\tb\nc\\d"},
	})
}

func TestCopyText_WritesTheRowsOrRefusesWhereCopiesMustBeCheckedOneByOne(t *testing.T) {
	t.Parallel()
	data := []byte("1\tone\t\\N\ta\\tb\\nc\\\\d\n2\ttwo\t2\t\\N\n3\tthree\t3\t\\N\n")
	cols := []string{"id", "name", "qty", "note"}
	written := []row{
		{"id": "1", "name": "one", "qty": nil, "note": "a\tb\nc\\d"},
		{"id": "2", "name": "two", "qty": "2", "note": nil},
		{"id": "3", "name": "three", "qty": "3", "note": nil},
	}
	key := &sink.TextKey{At: []int{0}}
	ordered := &sink.TextKey{At: []int{0}, Ordered: true}
	t.Run("into an empty table", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, shopDDL)
		backfill(t, tg.sink, "public.src", sink.BackfillRunning)
		if err := tg.sink.CopyText(t.Context(), "items", cols, data, nil); err != nil {
			t.Fatal(err)
		}
		tg.wantRows(t, allItems, written)
	})
	t.Run("rows with some of the keys exist", func(t *testing.T) {
		t.Parallel()
		// The stream's rows, at the first and last key and in between; 4
		// and 0 are outside the lines' keys.
		there := shopDDL + `INSERT INTO items VALUES (0, 'before', 0, NULL), (1, 'stream', 5, NULL), (3, 'stream', 6, 'x'), (4, 'after', 4, NULL)`
		want := []row{
			{"id": "0", "name": "before", "qty": "0", "note": nil},
			{"id": "1", "name": "stream", "qty": "5", "note": nil},
			written[1],
			{"id": "3", "name": "stream", "qty": "6", "note": "x"},
			{"id": "4", "name": "after", "qty": "4", "note": nil},
		}
		// Without the lines' keys, the rows cannot be written as they are.
		tg := newTarget(t, there)
		if err := tg.sink.CopyText(t.Context(), "items", cols, data, nil); !errors.Is(err, sink.ErrNotVerbatim) {
			t.Fatalf("CopyText: %v, want ErrNotVerbatim", err)
		}
		tg.wantRows(t, allItems, append(want[:1:1], want[1], want[3], want[4]))
		// With them, the lines of the rows there are left out: looked for
		// once the COPY failed, or first as one range of keys.
		for name, k := range map[string]*sink.TextKey{"keys": key, "ordered keys": ordered} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				tg := newTarget(t, there)
				if err := tg.sink.CopyText(t.Context(), "items", cols, data, k); err != nil {
					t.Fatal(err)
				}
				tg.wantRows(t, allItems, want)
				// Again: every line is there, nothing is written.
				if err := tg.sink.CopyText(t.Context(), "items", cols, data, k); err != nil {
					t.Fatal(err)
				}
				tg.wantRows(t, allItems, want)
			})
		}
	})
	t.Run("composite keys", func(t *testing.T) {
		t.Parallel()
		// lines' primary key is (order_id, line); by_line's only index
		// starts with line, so its range would be a scan of the table:
		// there the rows are looked for by key, once the COPY failed.
		tg := newTarget(t, shopDDL+`INSERT INTO lines VALUES (1, 2, 'stream'), (2, 1, 'stream');
CREATE TABLE by_line (order_id bigint, line integer, sku text, UNIQUE (line, order_id));
INSERT INTO by_line VALUES (1, 2, 'stream'), (2, 1, 'stream')`)
		data := []byte("1\t1\tcopy\n1\t2\tcopy\n2\t1\tcopy\n2\t2\tcopy\n")
		k := &sink.TextKey{At: []int{0, 1}, Ordered: true}
		want := []row{
			{"order_id": "1", "line": "1", "sku": "copy"},
			{"order_id": "1", "line": "2", "sku": "stream"},
			{"order_id": "2", "line": "1", "sku": "stream"},
			{"order_id": "2", "line": "2", "sku": "copy"},
		}
		for _, table := range []string{"lines", "by_line"} {
			if err := tg.sink.CopyText(t.Context(), table, []string{"order_id", "line", "sku"}, data, k); err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			tg.wantRows(t, "SELECT * FROM "+table+" ORDER BY order_id, line", want)
		}
	})
	t.Run("the table has tombstones", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, shopDDL)
		backfill(t, tg.sink, "public.src", sink.BackfillRunning)
		tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(9)}))
		// Without the lines' keys, the rows cannot be written as they are.
		if err := tg.sink.CopyText(t.Context(), "items", cols, data, nil); !errors.Is(err, sink.ErrNotVerbatim) {
			t.Fatalf("CopyText: %v, want ErrNotVerbatim", err)
		}
		tg.wantRows(t, allItems, nil)
		// With them: the row whose key has a tombstone is left out.
		tg.apply(t, sink.Checkpoint{}, item(change.WriteDelete, row{"id": int64(1)}))
		if err := tg.sink.CopyText(t.Context(), "items", cols, data, ordered); err != nil {
			t.Fatal(err)
		}
		tg.wantRows(t, allItems, written[1:])
		// Another table's tombstones do not matter.
		if err := tg.sink.CopyText(t.Context(), "lines", []string{"order_id", "line", "sku"}, []byte("1\t1\tx\n"), nil); err != nil {
			t.Fatal(err)
		}
		tg.wantRows(t, allLines, []row{{"order_id": "1", "line": "1", "sku": "x"}})
	})
	t.Run("a value the table refuses is an error", func(t *testing.T) {
		t.Parallel()
		tg := newTarget(t, shopDDL)
		err := tg.sink.CopyText(t.Context(), "items", cols, []byte("1\tone\tmany\t\\N\n"), nil)
		var se *sink.Error
		if !errors.As(err, &se) || se.Reason != "data" || se.Table != "items" {
			t.Fatalf("CopyText: %v, want a *sink.Error of reason data on items", err)
		}
		tg.wantRows(t, allItems, nil)
	})
}
