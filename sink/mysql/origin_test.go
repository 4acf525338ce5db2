package mysql_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

// binlogEnd returns where the server's binlog ends now.
func (tg *target) binlogEnd(t *testing.T) (file string, pos int64) {
	t.Helper()
	rows, err := tg.db.QueryContext(t.Context(), "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("SHOW MASTER STATUS: no row (%v)", rows.Err())
	}
	vals := make([]any, len(cols))
	vals[0], vals[1] = &file, &pos
	for i := 2; i < len(vals); i++ {
		vals[i] = new(any)
	}
	if err := rows.Scan(vals...); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// binlogTables returns, for each transaction in the binlog after file:pos
// that changes rows, the tables of its rows events in order ("db.table").
func (tg *target) binlogTables(t *testing.T, file string, pos int64) [][]string {
	t.Helper()
	rows, err := tg.db.QueryContext(t.Context(), fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d", file, pos))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	var tx []string
	for rows.Next() {
		var name, typ, info string
		var at, server, end int64
		if err := rows.Scan(&name, &at, &typ, &server, &end, &info); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "Gtid":
			tx = nil
		case "Table_map":
			// "table_id: 34 (db.table)"
			if i := strings.LastIndexByte(info, '('); i >= 0 {
				tx = append(tx, strings.TrimSuffix(info[i+1:], ")"))
			}
		case "Xid":
			if len(tx) > 0 {
				out = append(out, tx)
			}
			tx = nil
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNew_OriginMarksEveryTransactionOfTheSink: every transaction of a sink
// with an origin that changes rows (Apply with its copies, deletes,
// tombstones and dead letters; offsets; positions; backfill progress)
// changes its origin marker row first, also when several run at once; the
// application's transactions do not.
func TestNew_OriginMarksEveryTransactionOfTheSink(t *testing.T) {
	tg := newTarget(t, shopDDL)
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn, StateSchema: tg.state, Origin: "tandem_forward"})
	ctx := t.Context()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	items := tg.name + ".items"
	file, pos := tg.binlogEnd(t)

	tg.Exec(t, "INSERT INTO items (id, name) VALUES (1, 'app')")
	must("SaveBackfill", s.SaveBackfill(ctx, sink.BackfillProgress{Table: "items", State: sink.BackfillRunning}))
	must("Apply", s.Apply(ctx, sink.Batch{
		Writes: []change.Write{
			{Table: items, Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": 2, "name": "tandem"}},
			{Table: items, Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": 1}},
		},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "decode", Error: "bad", Topic: "t", Offset: 1}},
	}, sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{{Topic: "t", Next: 3}}}))
	must("Apply copies", s.Apply(ctx, sink.Batch{Writes: []change.Write{
		{Table: items, Op: change.WriteCopy, Key: []string{"id"}, Row: map[string]any{"id": 3, "name": "copied"}},
	}}, sink.Checkpoint{}))
	must("SetOffsets", s.SetOffsets(ctx, sink.Checkpoint{Group: "g2", Epoch: "e", Offsets: []sink.Offset{{Topic: "t", Next: 1}}}))
	must("SavePosition", s.SavePosition(ctx, "src", "mysql-bin.000001:4"))
	_, err := s.DeleteDeadLetters(ctx, []sink.DeadLetterID{{Mapping: "m", Topic: "t", Offset: 1}})
	must("DeleteDeadLetters", err)
	must("ResetBackfill", s.ResetBackfill(ctx))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				err := s.Apply(ctx, sink.Batch{Writes: []change.Write{{Table: items, Op: change.WriteUpsert, Key: []string{"id"},
					Row: map[string]any{"id": 100 + i*10 + j, "name": "concurrent"}}}}, sink.Checkpoint{})
				if err != nil {
					t.Errorf("concurrent Apply: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	tg.Exec(t, "INSERT INTO items (id, name) VALUES (4, 'app')")

	marker := tg.state + "." + mysql.OriginTable
	var unmarked [][]string
	marked := 0
	for _, tx := range tg.binlogTables(t, file, pos) {
		if tx[0] == marker {
			marked++
			continue
		}
		unmarked = append(unmarked, tx)
	}
	if diff := cmp.Diff([][]string{{items}, {items}}, unmarked); diff != "" {
		t.Errorf("transactions whose first rows event is not the origin marker (-the application's +got):\n%s", diff)
	}
	if want := 7 + 40; marked < want {
		t.Errorf("%d transactions marked, want at least the sink's %d", marked, want)
	}
	// One marker row per connection, named after the origin.
	for _, r := range tg.Rows(t, "SELECT name FROM "+marker) {
		if diff := cmp.Diff(row{"name": "tandem_forward"}, r); diff != "" {
			t.Errorf("marker row (-want +got):\n%s", diff)
		}
	}
}
