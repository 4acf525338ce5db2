package postgres

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// A replication connection that hangs (the socket open, nothing forwarded)
// is noticed within SilenceTimeout of the unanswered status update: Stream
// returns saying so, after terminating its walsender, so that the slot is
// free and the stream reopened at once through a new connection.
func TestStream_AHungConnectionIsNoticedAndTheSlotFreed(t *testing.T) {
	f := newFixture(t, itemsDDL)
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatalf("the test DSN is not a URL: %v", err)
	}
	proxy := testenv.NewFaultProxy(t, u.Host)
	u.Host = proxy.Addr()
	cfg := f.config("public.items")
	cfg.DSN, cfg.SilenceTimeout = u.String(), 500*time.Millisecond
	src := f.source(cfg)

	run := func() (batches <-chan change.Batch, done <-chan error) {
		b, d := make(chan change.Batch, 16), make(chan error, 1)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() {
			d <- src.Stream(ctx, func(_ context.Context, batch change.Batch) error {
				if batch.Pos != nil {
					if err := src.Ack(batch.Pos); err != nil {
						return err
					}
				}
				b <- batch
				return nil
			})
		}()
		return b, d
	}
	next := func(batches <-chan change.Batch, done <-chan error, want int64) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case b := <-batches:
				for _, ev := range b.Events {
					if ev.After["id"] == want {
						return
					}
				}
			case err := <-done:
				t.Fatalf("Stream ended before row %d came: %v", want, err)
			case <-deadline:
				t.Fatalf("row %d never came", want)
			}
		}
	}

	batches, done := run()
	f.exec(`INSERT INTO items VALUES (1, 'one')`)
	next(batches, done, 1)
	proxy.Stall()
	stalled := time.Now()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "seems hung") || !strings.Contains(err.Error(), "terminated: true") {
			t.Fatalf("Stream after the stall = %v, want the hung connection said and its walsender terminated", err)
		}
		if took := time.Since(stalled); took > 10*time.Second {
			t.Errorf("the hang was noticed after %s, want about SilenceTimeout (500ms) and a status interval", took)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Stream still waits %s after the connection stalled", waitTimeout)
	}
	// The slot is free at once, not after wal_sender_timeout: the stream
	// reopens through a new connection and goes on.
	f.waitSlot(f.db, slotReleased)
	batches, done = run()
	f.exec(`INSERT INTO items VALUES (2, 'two')`)
	next(batches, done, 2)
}
