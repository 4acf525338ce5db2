package sinktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// testWrites: the end state is that of applying the writes in order, one
// batch after another, whatever Compact makes of each batch.
func testWrites(t *testing.T, h Harness) {
	tests := []struct {
		name    string
		seed    string           // SQL run before the batches
		batches [][]change.Write // each applied by one Apply, in order
		items   []Row            // allItems afterwards
		lines   []Row            // allLines afterwards
	}{
		{
			name: "upsert inserts, then overwrites only the columns it names",
			batches: [][]change.Write{
				{item(change.WriteUpsert, Row{"id": int64(1), "name": "pen", "qty": int64(2)}),
					item(change.WriteUpsert, Row{"id": int64(2), "name": "ink", "qty": int64(5), "note": "blue"})},
				// another mapping writes another column of row 1
				{item(change.WriteUpsert, Row{"id": int64(1), "note": "from mapping B"})},
				{item(change.WriteUpsert, Row{"id": int64(1), "qty": int64(3)}),
					item(change.WriteUpsert, Row{"id": int64(2), "name": "ink cartridge"})},
			},
			items: []Row{
				{"id": "1", "name": "pen", "qty": "3", "note": "from mapping B"},
				{"id": "2", "name": "ink cartridge", "qty": "5", "note": "blue"},
			},
		},
		{
			name: "an upsert of the key alone inserts the row and leaves an existing one alone",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'kept')`,
			batches: [][]change.Write{
				{item(change.WriteUpsert, Row{"id": int64(1)}), item(change.WriteUpsert, Row{"id": int64(2)})},
			},
			items: []Row{
				{"id": "1", "name": "old", "qty": "1", "note": "kept"},
				{"id": "2", "name": nil, "qty": nil, "note": nil},
			},
		},
		{
			name: "insert-if-absent keeps an existing row and inserts an absent one",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'kept')`,
			batches: [][]change.Write{
				{item(change.WriteInsertIfAbsent, Row{"id": int64(1), "name": "new", "qty": int64(9), "note": nil}),
					item(change.WriteInsertIfAbsent, Row{"id": int64(2), "name": "new", "qty": int64(2)})},
				{item(change.WriteInsertIfAbsent, Row{"id": int64(2), "name": "newer", "qty": int64(3)})},
			},
			items: []Row{
				{"id": "1", "name": "old", "qty": "1", "note": "kept"},
				{"id": "2", "name": "new", "qty": "2", "note": nil},
			},
		},
		{
			name: "delete removes by key, composite keys too, and an absent key is fine",
			seed: `INSERT INTO items VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL);
INSERT INTO order_lines VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')`,
			batches: [][]change.Write{{
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteDelete, Row{"id": int64(99)}),
				line(change.WriteDelete, Row{"order_id": int64(1), "line": int64(2)}),
				line(change.WriteDelete, Row{"order_id": int64(7), "line": int64(7)}),
				// (1, 1) and (2, 1) stay: a delete matches whole keys, not their parts
				line(change.WriteDelete, Row{"order_id": int64(2), "line": int64(2)}),
			}},
			items: []Row{{"id": "2", "name": "b", "qty": "2", "note": nil}},
			lines: []Row{
				{"order_id": "1", "line": "1", "sku": "x"},
				{"order_id": "2", "line": "1", "sku": "z"},
			},
		},
		{
			name: "insert, update, delete and re-insert of one key in one batch",
			seed: `INSERT INTO items VALUES (1, 'seed', 1, 'seed note'), (2, 'two', 2, NULL);
INSERT INTO order_lines VALUES (1, 1, 'x')`,
			batches: [][]change.Write{{
				item(change.WriteUpsert, Row{"id": int64(1), "name": "a", "qty": int64(1), "note": "n1"}),
				item(change.WriteUpsert, Row{"id": int64(3), "name": "three", "qty": int64(3), "note": nil}),
				item(change.WriteUpsert, Row{"id": int64(1), "name": "b", "qty": int64(2), "note": "n2"}),
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteDelete, Row{"id": int64(2)}),
				item(change.WriteInsertIfAbsent, Row{"id": int64(1), "name": "c", "qty": int64(3), "note": nil}),
				item(change.WriteDelete, Row{"id": int64(3)}),
				item(change.WriteInsertIfAbsent, Row{"id": int64(2), "name": "two again", "qty": nil, "note": nil}),
				item(change.WriteInsertIfAbsent, Row{"id": int64(2), "name": "ignored", "qty": int64(9), "note": "x"}),
				line(change.WriteDelete, Row{"order_id": int64(1), "line": int64(1)}),
				line(change.WriteUpsert, Row{"order_id": int64(1), "line": int64(1), "sku": "x2"}),
				line(change.WriteUpsert, Row{"order_id": int64(1), "line": int64(2), "sku": "y"}),
			}},
			items: []Row{
				{"id": "1", "name": "c", "qty": "3", "note": nil},
				{"id": "2", "name": "two again", "qty": nil, "note": nil},
			},
			lines: []Row{
				{"order_id": "1", "line": "1", "sku": "x2"},
				{"order_id": "1", "line": "2", "sku": "y"},
			},
		},
		{
			name: "a partial upsert after a delete does not resurrect the deleted row's other columns",
			seed: `INSERT INTO items VALUES (1, 'old', 1, 'old note')`,
			batches: [][]change.Write{{
				item(change.WriteDelete, Row{"id": int64(1)}),
				item(change.WriteUpsert, Row{"id": int64(1), "qty": int64(5)}),
			}},
			items: []Row{{"id": "1", "name": nil, "qty": "5", "note": nil}},
		},
		{
			name: "a row moving from one key to another on a unique column",
			seed: `CREATE UNIQUE INDEX items_name ON items (name); INSERT INTO items VALUES (1, 'pen', 1, NULL)`,
			batches: [][]change.Write{{
				item(change.WriteUpsert, Row{"id": int64(2), "name": "pen", "qty": int64(1)}),
				item(change.WriteDelete, Row{"id": int64(1)}),
			}},
			items: []Row{{"id": "2", "name": "pen", "qty": "1", "note": nil}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := h.NewTarget(t, shopDDL+tc.seed)
			for _, b := range tc.batches {
				apply(t, tg.Sink(), sink.Checkpoint{}, b...)
			}
			wantRows(t, tg, allItems, tc.items)
			wantRows(t, tg, allLines, tc.lines)
		})
	}
}

// testSameBatchTwice: applying a batch again leaves the target as once, and
// with its offsets again it is fenced off.
func testSameBatchTwice(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL+`INSERT INTO items VALUES (1, 'a', 1, NULL), (2, 'b', 2, 'bee');
INSERT INTO order_lines VALUES (1, 1, 'x'), (1, 2, 'y')`)
	s := tg.Sink()
	b := []change.Write{
		item(change.WriteUpsert, Row{"id": int64(1), "qty": int64(10)}),
		item(change.WriteDelete, Row{"id": int64(2)}),
		item(change.WriteInsertIfAbsent, Row{"id": int64(3), "name": "c", "qty": int64(3)}),
		item(change.WriteUpsert, Row{"id": int64(4), "name": "d", "qty": int64(4), "note": "dee"}),
		item(change.WriteDelete, Row{"id": int64(4)}),
		item(change.WriteInsertIfAbsent, Row{"id": int64(4), "name": "d again", "qty": int64(5), "note": nil}),
		line(change.WriteDelete, Row{"order_id": int64(1), "line": int64(1)}),
		line(change.WriteUpsert, Row{"order_id": int64(1), "line": int64(3), "sku": "z"}),
	}
	wantItems := []Row{
		{"id": "1", "name": "a", "qty": "10", "note": nil},
		{"id": "3", "name": "c", "qty": "3", "note": nil},
		{"id": "4", "name": "d again", "qty": "5", "note": nil},
	}
	wantLines := []Row{
		{"order_id": "1", "line": "2", "sku": "y"},
		{"order_id": "1", "line": "3", "sku": "z"},
	}
	cp := checkpoint("g", "e", offset("orders", 0, 42))
	apply(t, s, cp, b...)
	wantRows(t, tg, allItems, wantItems)
	wantRows(t, tg, allLines, wantLines)
	// The writes themselves are idempotent...
	apply(t, s, sink.Checkpoint{}, b...)
	wantRows(t, tg, allItems, wantItems)
	wantRows(t, tg, allLines, wantLines)
	// ...and the same batch with its offsets again is fenced off: it was applied.
	if err := applyErr(t, s, cp, b...); !errors.Is(err, sink.ErrFenced) {
		t.Errorf("applying a batch whose offsets are stored already = %v, want ErrFenced", err)
	}
	wantRows(t, tg, allItems, wantItems)
	wantRows(t, tg, allLines, wantLines)
	wantOffsets(t, s, "g", "e", cp.Offsets)
}

// testFailedBatchStoresNothing: a batch one write of which fails stores
// neither its rows, nor its offsets, nor its dead letters, and the error is
// classified.
func testFailedBatchStoresNothing(t *testing.T, h Harness) {
	tg := h.NewTarget(t, `CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(100) NOT NULL, qty INT, note TEXT);
CREATE TABLE order_lines (order_id BIGINT, line INT, sku VARCHAR(20), PRIMARY KEY (order_id, line))`)
	s := tg.Sink()
	apply(t, s, checkpoint("g", "e", offset("items", 0, 10)), item(change.WriteUpsert, Row{"id": int64(1), "name": "one"}))
	err := s.Apply(t.Context(), sink.Batch{
		Writes: []change.Write{
			line(change.WriteUpsert, Row{"order_id": int64(1), "line": int64(1), "sku": "x"}),
			item(change.WriteUpsert, Row{"id": int64(2), "name": "two"}),
			item(change.WriteUpsert, Row{"id": int64(3), "name": nil}),
		},
		DeadLetters: []sink.DeadLetter{{Mapping: "m", Reason: "transform", Error: "x", Topic: "items", Partition: 0, Offset: 12}},
	}, checkpoint("g", "e", sink.Offset{Topic: "items", Partition: 0, From: 10, Next: 20}, offset("items", 1, 5)))
	if err == nil {
		t.Fatal("Apply of a NOT NULL violation succeeded")
	}
	wantSinkError(t, tg, err, nil, "constraint", "items")
	wantRows(t, tg, allItems, []Row{{"id": "1", "name": "one", "qty": nil, "note": nil}})
	wantRows(t, tg, allLines, nil)
	wantOffsets(t, s, "g", "e", []sink.Offset{offset("items", 0, 10)})
	if n, err := s.CountDeadLetters(t.Context(), ""); err != nil || n != 0 {
		t.Errorf("CountDeadLetters after the failed batch = %d, %v; want 0", n, err)
	}
}

// testLargeBatches: batches of more values than one statement can take
// (MySQL's 65,535 placeholders, say) are split and applied whole.
func testLargeBatches(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	// 4 columns x 20,000 rows = 80,000 values; 70,000 deletes by one key column.
	const n = 20000
	var ws []change.Write
	var want []Row
	for i := range n {
		ws = append(ws, item(change.WriteUpsert, Row{"id": int64(i), "name": fmt.Sprint("n", i), "qty": int64(i % 7), "note": strings.Repeat("x", i%300)}))
		if i%2 == 0 {
			want = append(want, Row{"id": fmt.Sprint(i), "name": fmt.Sprint("n", i), "qty": fmt.Sprint(i % 7), "note": strings.Repeat("x", i%300)})
		}
	}
	apply(t, tg.Sink(), sink.Checkpoint{}, ws...)
	ws = ws[:0]
	for i := range 70000 {
		if i%2 == 1 {
			ws = append(ws, item(change.WriteDelete, Row{"id": int64(i)}))
		}
	}
	for i := range 70000 {
		ws = append(ws, line(change.WriteDelete, Row{"order_id": int64(i), "line": int64(1)}))
	}
	apply(t, tg.Sink(), sink.Checkpoint{}, ws...)
	wantRows(t, tg, allItems, want)
}

// testMissingTableUntilCreated: a write to a missing table is
// ErrTableNotFound and stores no offsets; once the table is created (and
// the sink told to Forget), it is written; a column added later is
// ErrColumnNotFound until Forget.
func testMissingTableUntilCreated(t *testing.T, h Harness) {
	tg := h.NewTarget(t, "")
	s := tg.Sink()
	cp := checkpoint("g", "e", offset("t", 0, 1))
	for _, table := range []string{"later", "nope.later"} {
		err := applyErr(t, s, cp, write(change.WriteUpsert, table, Row{"id": int64(1), "v": "a"}, "id"))
		wantSinkError(t, tg, err, sink.ErrTableNotFound, "table_missing", table)
	}
	wantOffsets(t, s, "g", "e", nil)

	tg.Exec(t, `CREATE TABLE later (id BIGINT PRIMARY KEY, v TEXT)`)
	s.Forget()
	apply(t, s, cp, write(change.WriteUpsert, "later", Row{"id": int64(1), "v": "a"}, "id"))
	wantRows(t, tg, "SELECT * FROM later", []Row{{"id": "1", "v": "a"}})
	wantOffsets(t, s, "g", "e", cp.Offsets)

	added := write(change.WriteUpsert, "later", Row{"id": int64(1), "w": "b"}, "id")
	tg.Exec(t, `ALTER TABLE later ADD COLUMN w TEXT`)
	err := applyErr(t, s, sink.Checkpoint{}, added)
	wantSinkError(t, tg, err, sink.ErrColumnNotFound, "column_missing", "later")
	s.Forget()
	apply(t, s, sink.Checkpoint{}, added)
	wantRows(t, tg, "SELECT * FROM later", []Row{{"id": "1", "v": "a", "w": "b"}})
}

// testEmptyBatchWithoutOffsets: nothing to do needs not even a connection.
func testEmptyBatchWithoutOffsets(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := tg.Sink().Apply(ctx, sink.Batch{}, sink.Checkpoint{Group: "g", Epoch: "e"}); err != nil {
		t.Errorf("Apply of nothing = %v", err)
	}
}

// testConcurrentConsumersOnDisjointKeys: consumers of one group applying
// batches of their own partitions at once neither block nor lose writes.
func testConcurrentConsumersOnDisjointKeys(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	const consumers, batches, perBatch = 4, 20, 10
	var want []Row
	g, ctx := errgroup.WithContext(t.Context())
	for c := range consumers {
		for b := range batches {
			for i := range perBatch {
				id := c*batches*perBatch + b*perBatch + i
				want = append(want, Row{"id": fmt.Sprint(id), "name": fmt.Sprintf("c%d b%d", c, b), "qty": fmt.Sprint(i), "note": nil})
			}
		}
		g.Go(func() error {
			for b := range batches {
				var ws []change.Write
				for i := range perBatch {
					id := int64(c*batches*perBatch + b*perBatch + i)
					// each row is written twice, the second time with its final
					// values, and the consumer also deletes keys of its own that
					// do not exist: gaps another consumer inserts into
					ws = append(ws, item(change.WriteUpsert, Row{"id": id, "name": "draft", "qty": int64(-1), "note": "draft"}))
					ws = append(ws, item(change.WriteUpsert, Row{"id": id, "name": fmt.Sprintf("c%d b%d", c, b), "qty": int64(i), "note": nil}))
					ws = append(ws, item(change.WriteDelete, Row{"id": 100000 + id}))
				}
				cp := checkpoint("g", "e", sink.Offset{Topic: "items", Partition: int32(c), Next: int64(b + 1), From: int64(b)})
				if err := tg.Sink().Apply(ctx, sink.Batch{Writes: ws}, cp); err != nil {
					return fmt.Errorf("consumer %d batch %d: %w", c, b, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	wantRows(t, tg, allItems, want)
	var offsets []sink.Offset
	for c := range consumers {
		offsets = append(offsets, offset("items", int32(c), batches))
	}
	wantOffsets(t, tg.Sink(), "g", "e", offsets)
}

// testConcurrentFirstBatches: of consumers racing to apply the first batch
// of one partition, one applies it and the others are fenced.
func testConcurrentFirstBatches(t *testing.T, h Harness) {
	tg := h.NewTarget(t, shopDDL)
	const consumers = 6
	sinks := make([]Sink, consumers)
	for i := range sinks {
		sinks[i] = tg.OpenSink(t)
	}
	start := make(chan struct{})
	errs := make([]error, consumers)
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Go(func() {
			<-start
			errs[i] = s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
				item(change.WriteUpsert, Row{"id": int64(1), "name": fmt.Sprint("consumer ", i)}),
				item(change.WriteUpsert, Row{"id": int64(100 + i), "name": fmt.Sprint("consumer ", i)}),
			}}, checkpoint("g", "e", sink.Offset{Topic: "items", Partition: 3, From: 0, Next: 10}))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("consumers %d and %d both applied the batch", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, sink.ErrFenced):
			t.Errorf("consumer %d: %v, want success or ErrFenced", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no consumer applied the batch")
	}
	name := fmt.Sprint("consumer ", winner)
	wantRows(t, tg, allItems, []Row{
		{"id": "1", "name": name, "qty": nil, "note": nil},
		{"id": fmt.Sprint(100 + winner), "name": name, "qty": nil, "note": nil},
	})
	wantOffsets(t, tg.Sink(), "g", "e", []sink.Offset{offset("items", 3, 10)})
}
