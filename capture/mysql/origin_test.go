package mysql_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
)

// TestStream_SkipsTheTransactionsOfTandemsOwnOrigin: what a sink with
// origin O commits into a captured table (each transaction opening with
// its marker row) is not captured by a Source that skips O, while the
// application's changes, and those of a sink with another origin,
// committed between them and at the same time, all are; and the saved
// position moves past the skipped transactions.
func TestStream_SkipsTheTransactionsOfTandemsOwnOrigin(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))")
	ctx := context.Background()
	newSink := func(origin string) *sinkmysql.Sink {
		s, err := sinkmysql.New(ctx, sinkmysql.Config{DSN: dsn, StateSchema: db, Origin: origin})
		if err != nil {
			t.Fatalf("sink with origin %s: %v", origin, err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	own, other := newSink("tandem_reverse"), newSink("someone_else")
	apply := func(s *sinkmysql.Sink, writes ...change.Write) {
		t.Helper()
		for i := range writes {
			writes[i].Table, writes[i].Key = db+".items", []string{"id"}
		}
		if err := s.Apply(ctx, sink.Batch{Writes: writes}, sink.Checkpoint{}); err != nil {
			t.Errorf("sink Apply: %v", err)
		}
	}
	upsert := func(id int64, name string) change.Write {
		return change.Write{Op: change.WriteUpsert, Row: map[string]any{"id": id, "name": name}}
	}

	store := &capturetest.MemPositions{}
	src, err := mysql.New(mysql.Config{DSN: dsn, ServerID: newServerID(), Tables: []change.Table{{Schema: db, Name: "items"}},
		Store: store, StoreKey: "test", Heartbeat: 200 * time.Millisecond, SaveInterval: 50 * time.Millisecond,
		IdleAckInterval: 50 * time.Millisecond,
		SkipOrigins:     []string{"tandem_reverse", "tandem_forward"}, OriginTable: change.Table{Schema: db, Name: sinkmysql.OriginTable}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if err := src.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	s := stream(t, src)

	tbl := db + ".items"
	var want []shortEvent
	app := func(sql string, ev shortEvent) {
		t.Helper()
		mustExec(t, db, sql)
		ev.Table, ev.Key = tbl, []string{"id"}
		want = append(want, ev)
	}
	row := func(id int64, name string) change.Row { return change.Row{"id": id, "name": name} }

	// Interleaved, each sink's first transaction inserting its
	// connection's marker row, later ones updating it.
	app("INSERT INTO items VALUES (1, 'one')", shortEvent{Op: "c", After: row(1, "one")})
	apply(own, upsert(1, "tandem's one"), upsert(1001, "a"))
	apply(own, upsert(1002, "b"), change.Write{Op: change.WriteDelete, Row: map[string]any{"id": int64(1001)}})
	app("UPDATE items SET name = 'uno' WHERE id = 1", shortEvent{Op: "u", Before: row(1, "tandem's one"), After: row(1, "uno")})
	apply(other, upsert(500, "not ours"))
	want = append(want, shortEvent{Op: "c", Table: tbl, Key: []string{"id"}, After: row(500, "not ours")})
	apply(own, change.Write{Op: change.WriteCopy, Row: map[string]any{"id": int64(1003), "name": "copied"}},
		change.Write{Op: change.WriteInsertIfAbsent, Row: map[string]any{"id": int64(1004), "name": "if absent"}})
	app("DELETE FROM items WHERE id = 1002", shortEvent{Op: "d", Before: row(1002, "b")})

	// Concurrent: the sink writes on several connections while the
	// application does.
	var wg sync.WaitGroup
	for i := range int64(3) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range int64(20) {
				id := 2000 + i*100 + j
				apply(own, upsert(id, "new"), upsert(id+50, "new"))
				if j%3 == 0 {
					apply(own, change.Write{Op: change.WriteDelete, Row: map[string]any{"id": id}})
				}
			}
		}()
	}
	for id := int64(10); id < 40; id++ {
		app(fmt.Sprintf("INSERT INTO items VALUES (%d, 'app')", id), shortEvent{Op: "c", After: row(id, "app")})
	}
	wg.Wait()
	app("INSERT INTO items VALUES (99, 'last')", shortEvent{Op: "c", After: row(99, "last")})

	var got []change.Event
	for len(got) == 0 || got[len(got)-1].After["id"] != int64(99) {
		got = append(got, s.next(t).Events...)
	}
	if diff := cmp.Diff(want, short(got)); diff != "" {
		t.Errorf("captured events (-the application's and the other origin's +got):\n%s", diff)
	}

	// The last transactions are tandem's: the saved position moves past
	// them, with nothing captured.
	apply(own, upsert(3000, "last of tandem's"))
	apply(own, upsert(3001, "last of tandem's"))
	file, end := chkCurrentBinlog(t, dsn)
	testenv.WaitFor(t, "the saved position to pass tandem's last transaction", 15*time.Second, func() (bool, error) {
		for {
			select {
			case b := <-s.Batches():
				if len(b.Events) > 0 {
					return false, fmt.Errorf("captured %d events of tandem's transactions: %v", len(b.Events), short(b.Events))
				}
				if b.Pos != nil {
					if err := src.Ack(b.Pos); err != nil {
						return false, err
					}
				}
				continue
			default:
			}
			break
		}
		saved := store.Get("test")
		if saved == "" {
			return false, nil
		}
		p, err := mysql.ParsePosition(saved)
		if err != nil {
			return false, err
		}
		return p.File > file || p.File == file && uint64(p.Offset) >= end, nil
	})
}
