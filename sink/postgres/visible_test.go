package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

func TestAwaitCommitted_WaitsForTheChangesTransactionToBeVisible(t *testing.T) {
	tg := newTarget(t, shopDDL)
	ctx := context.Background()
	tx, err := tg.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var xid int64
	if err := tx.QueryRow(ctx, `INSERT INTO items (id) VALUES (1) RETURNING txid_current() % 4294967296`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	ev := &change.Event{Table: change.Table{Schema: "public", Name: "items"}, TxID: uint32(xid)}
	done := make(chan error, 1)
	go func() { done <- tg.sink.AwaitCommitted(ctx, ev) }()
	select {
	case err := <-done:
		t.Fatalf("AwaitCommitted returned %v while the transaction was open", err)
	case <-time.After(200 * time.Millisecond): // it must still be waiting: a bounded look, not synchronisation
	}
	if err := tx.Commit(ctx); err != nil {
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
	// A change without a transaction id is not waited for.
	if err := tg.sink.AwaitCommitted(ctx, &change.Event{}); err != nil {
		t.Fatal(err)
	}
}
