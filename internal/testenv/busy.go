package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// KeepPostgresBusy keeps n sessions active on dsn's server, each waiting
// to share an advisory lock another session holds, until the returned
// release: the source load a backfill pauses for.
func KeepPostgresBusy(tb testing.TB, dsn string, n int) (release func()) {
	tb.Helper()
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	const key = 0x6c6f6164 // 'load'
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, n)
	var waiters []*pgx.Conn
	for range n {
		w, err := pgx.Connect(ctx, dsn)
		if err != nil {
			tb.Fatal(err)
		}
		waiters = append(waiters, w)
		go func() {
			_, err := w.Exec(ctx, "SELECT pg_advisory_lock_shared($1)", key)
			done <- err
		}()
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		holder.Close(ctx) // its lock goes with it: the waiters share it
		for range waiters {
			if err := <-done; err != nil {
				tb.Errorf("waiting session: %v", err)
			}
		}
		for _, w := range waiters {
			w.Close(ctx)
		}
	}
	tb.Cleanup(release)
	return release
}
