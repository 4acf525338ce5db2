// Package capturetest holds the behaviour every source table reader must
// show, as test functions the readers' tests run against a real database:
// one copy of the expectations for PostgreSQL and MySQL/MariaDB. Only
// _test.go files import it.
package capturetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// Locker is a backfill reader that reads rows under a shared lock.
type Locker interface {
	backfill.Reader
	LockRow(ctx context.Context, t *change.Schema, key change.Row, fn func(row change.Row) error) error
}

// LockedRow returns LockRow's row for key, failing t on an error or
// unless fn ran once.
func LockedRow(t *testing.T, r Locker, tb *change.Schema, key change.Row) change.Row {
	t.Helper()
	var got change.Row
	calls := 0
	if err := r.LockRow(t.Context(), tb, key, func(row change.Row) error { got, calls = row, calls+1; return nil }); err != nil {
		t.Fatalf("LockRow(%v): %v", key, err)
	}
	if calls != 1 {
		t.Fatalf("LockRow(%v) called fn %d times, want once", key, calls)
	}
	return got
}

// LockRowReadsAsChunk reads every row of table (at least two, at most 100)
// with Chunk and checks that LockRow, by each row's key, reads it equal;
// and that it reads no row for the key absent.
func LockRowReadsAsChunk(t *testing.T, r Locker, table change.Table, absent change.Row, opts ...cmp.Option) {
	t.Helper()
	ctx := t.Context()
	tb, err := r.Describe(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, err := r.Chunk(ctx, tb, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: %d rows read, want the test's rows", table, len(rows))
	}
	for _, want := range rows {
		key := change.Row{}
		for _, k := range tb.Key {
			key[k] = want[k]
		}
		if diff := cmp.Diff(want, LockedRow(t, r, tb, key), opts...); diff != "" {
			t.Errorf("%s row %v (-Chunk +LockRow):\n%s", table, key, diff)
		}
	}
	if got := LockedRow(t, r, tb, absent); got != nil {
		t.Errorf("%s: LockRow of the absent key %v = %v, want nil", table, absent, got)
	}
}

// Session runs a statement on a connection of the test's.
type Session func(ctx context.Context, sql string) error

// LockRowHoldsWritersBack checks LockRow on table, which holds the rows
// (id, name) (1, 'one') and (2, 'two'): while fn runs, an UPDATE of row 1
// by writer waits for the lock (waiting, asked about writer's connection,
// says so) and one of row 2 by other does not; once LockRow returns, the
// UPDATE completes. A failing fn releases the lock too.
func LockRowHoldsWritersBack(t *testing.T, r Locker, table change.Table, other, writer Session, waiting func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx := t.Context()
	tb, err := r.Describe(ctx, table)
	if err != nil {
		t.Fatal(err)
	}
	one := change.Row{"id": int64(1)}
	updated := make(chan error, 1)
	err = r.LockRow(ctx, tb, one, func(row change.Row) error {
		if diff := cmp.Diff(change.Row{"id": int64(1), "name": "one"}, row); diff != "" {
			t.Errorf("locked row (-want +got):\n%s", diff)
		}
		if err := other(ctx, "UPDATE "+table.Name+" SET name = 'deux' WHERE id = 2"); err != nil {
			return fmt.Errorf("update another row while one is locked: %w", err)
		}
		go func() { updated <- writer(context.Background(), "UPDATE "+table.Name+" SET name = 'uno' WHERE id = 1") }()
		testenv.WaitFor(t, "the UPDATE of the locked row to wait for its lock", 10*time.Second, func() (bool, error) {
			select {
			case err := <-updated:
				return false, fmt.Errorf("the UPDATE of the locked row finished (err %v) while LockRow's fn runs", err)
			default:
			}
			return waiting(ctx)
		})
		return nil
	})
	if err != nil {
		t.Fatalf("LockRow: %v", err)
	}
	select {
	case err := <-updated:
		if err != nil {
			t.Fatalf("the UPDATE after the lock's release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the UPDATE still waits after LockRow returned: the lock was not released")
	}
	if got := LockedRow(t, r, tb, one); got["name"] != "uno" {
		t.Errorf("row 1 after the UPDATE = %v, want name uno", got)
	}

	boom := errors.New("boom")
	if err := r.LockRow(ctx, tb, one, func(change.Row) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("LockRow with a failing fn = %v, want %v", err, boom)
	}
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := writer(uctx, "UPDATE "+table.Name+" SET name = 'one' WHERE id = 1"); err != nil {
		t.Errorf("UPDATE after a failed fn: %v", err)
	}
}
