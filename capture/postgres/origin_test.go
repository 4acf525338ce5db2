package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
)

// echoSink opens a sink/postgres Sink with origin on the fixture's database.
func echoSink(f *fixture, origin string) *sinkpg.Sink {
	f.t.Helper()
	s, err := sinkpg.New(context.Background(), sinkpg.Config{DSN: f.dsn, Origin: origin})
	if err != nil {
		f.t.Fatalf("sink with origin %s: %v", origin, err)
	}
	f.t.Cleanup(func() { s.Close() })
	return s
}

// apply applies writes to public.items through s.
func apply(t *testing.T, s *sinkpg.Sink, writes ...change.Write) {
	t.Helper()
	for i := range writes {
		writes[i].Table, writes[i].Key = "public.items", []string{"id"}
	}
	if err := s.Apply(context.Background(), sink.Batch{Writes: writes}, sink.Checkpoint{}); err != nil {
		t.Errorf("sink Apply: %v", err)
	}
}

func upsert(id int64, name string) change.Write {
	return change.Write{Op: change.WriteUpsert, Row: map[string]any{"id": id, "name": name}}
}

// currentLSN is the end of the server's WAL now.
func (f *fixture) currentLSN() LSN {
	f.t.Helper()
	var s string
	f.query(`SELECT pg_current_wal_lsn()::text`, nil, &s)
	lsn, err := ParseLSN(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return lsn
}

// TestStream_SkipsTheTransactionsOfTandemsOwnOrigin: what two sinks
// writing with origin O (each connection on a session origin of O's
// family) commit into a captured table is not captured by a Source that
// skips O, while the application's changes, committed between them and
// at the same time, all are; and the skipped transactions' positions are
// emitted alone, so the slot moves past them.
func TestStream_SkipsTheTransactionsOfTandemsOwnOrigin(t *testing.T) {
	f := newFixture(t, itemsDDL)
	origin := "tandem_test_" + f.db // origins are server-wide: one per test database
	cfg := f.config("public.items")
	cfg.SkipOrigins = []string{origin}
	src := f.source(cfg)
	s := startStream(t, src)
	a, b := echoSink(f, origin), echoSink(f, origin)

	var want []change.Event
	app := func(sql string, ev change.Event) {
		t.Helper()
		f.exec(sql)
		want = append(want, ev)
	}

	// Interleaved: the sinks write the application's row too.
	app(`INSERT INTO items VALUES (1, 'one')`, event(change.OpCreate, "items", []string{"id"}, itemsTypes, nil, item(1, "one")))
	apply(t, a, upsert(1, "tandem's one"), upsert(1001, "a"))
	// b's connection takes the family's next origin: a's holds the first.
	apply(t, b, upsert(1002, "b"), change.Write{Op: change.WriteDelete, Row: map[string]any{"id": int64(1001)}})
	app(`UPDATE items SET name = 'uno' WHERE id = 1`, event(change.OpUpdate, "items", []string{"id"}, itemsTypes, nil, item(1, "uno")))
	apply(t, a, change.Write{Op: change.WriteCopy, Row: map[string]any{"id": int64(1003), "name": "copied"}},
		change.Write{Op: change.WriteInsertIfAbsent, Row: map[string]any{"id": int64(1004), "name": "if absent"}})
	app(`DELETE FROM items WHERE id = 1002`, event(change.OpDelete, "items", []string{"id"}, itemsTypes, change.Row{"id": int64(1002)}, nil))
	var sessions []string
	f.query(`SELECT array_agg(external_id ORDER BY external_id) FROM pg_replication_origin_status WHERE external_id LIKE $1`,
		[]any{origin + "%"}, &sessions)
	if len(sessions) < 2 {
		t.Errorf("the sinks used origins %q, want two of the family (%s and %s#1)", sessions, origin, origin)
	}

	// Concurrent: both sinks write while the application does.
	var wg sync.WaitGroup
	for i, snk := range []*sinkpg.Sink{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range int64(30) {
				id := 2000 + int64(i)*100 + j
				apply(t, snk, upsert(id, "new"), upsert(id, "updated"))
				if j%3 == 0 {
					apply(t, snk, change.Write{Op: change.WriteDelete, Row: map[string]any{"id": id}})
				}
			}
		}()
	}
	for id := int64(10); id < 40; id++ {
		app(fmt.Sprintf(`INSERT INTO items VALUES (%d, 'app')`, id), event(change.OpCreate, "items", []string{"id"}, itemsTypes, nil, item(id, "app")))
	}
	wg.Wait()
	app(`INSERT INTO items VALUES (99, 'last')`, event(change.OpCreate, "items", []string{"id"}, itemsTypes, nil, item(99, "last")))

	var got []change.Event
	for len(got) == 0 || got[len(got)-1].After["id"] != int64(99) {
		b := s.Next()
		got = append(got, b.Events...)
		if b.Pos != nil {
			if err := src.Ack(b.Pos); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diff := diffEvents(want, got); diff != "" {
		t.Errorf("captured events (-the application's +got):\n%s", diff)
	}

	// The last transactions are tandem's: their positions come alone,
	// and once acknowledged the slot confirms them.
	apply(t, a, upsert(3000, "last of tandem's"))
	apply(t, b, upsert(3001, "last of tandem's"))
	end := f.currentLSN()
	for {
		b := s.Next()
		if len(b.Events) > 0 {
			t.Fatalf("captured %d events of tandem's transactions: %v", len(b.Events), b.Events)
		}
		if b.Pos == nil {
			continue
		}
		if err := src.Ack(b.Pos); err != nil {
			t.Fatal(err)
		}
		if b.Pos.(LSN) >= end {
			break
		}
	}
	f.waitSlot(f.db, `s.confirmed_flush_lsn >= $2::pg_lsn`, end.String())
}

// TestSkipsOrigin matches the family's names only.
func TestSkipsOrigin(t *testing.T) {
	s := &Source{cfg: Config{SkipOrigins: []string{"tandem_forward", "tandem_reverse"}}}
	for name, want := range map[string]bool{
		"tandem_forward": true,
		sinkpg.SessionOrigin("tandem_forward", 0): true,
		sinkpg.SessionOrigin("tandem_forward", 7): true,
		"tandem_reverse#12":                       true,
		"tandem_forward#":                         false,
		"tandem_forward#x":                        false,
		"tandem_forward_2":                        false,
		"tandem":                                  false,
		"pg_16384":                                false,
		"":                                        false,
	} {
		if got := s.skipsOrigin(name); got != want {
			t.Errorf("skipsOrigin(%q) = %v, want %v", name, got, want)
		}
	}
}
