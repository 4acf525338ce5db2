package mysql_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

func TestAwaitCommitted_WaitsForTheChangedRowsTransactionToCommit(t *testing.T) {
	tg := newTarget(t, shopDDL)
	ctx := context.Background()
	tx, err := tg.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO items (id, name) VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	ev := &change.Event{Table: change.Table{Schema: tg.name, Name: "items"}, Key: []string{"id"}, After: change.Row{"id": int64(1), "name": "a"}}
	done := make(chan error, 1)
	go func() { done <- tg.sink.AwaitCommitted(ctx, ev) }()
	select {
	case err := <-done:
		t.Fatalf("AwaitCommitted returned %v while the inserting transaction was open", err)
	case <-time.After(200 * time.Millisecond): // it must still be waiting: a bounded look, not synchronisation
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AwaitCommitted did not return within 5s of the commit")
	}
}
