package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/poll"
)

// AwaitCommitted waits until the transaction of ev, a change captured from
// this database, is visible to the sink's reads. PostgreSQL flushes a
// commit to the WAL, where logical decoding reads it, a moment before the
// transaction becomes visible to other sessions: a reader acting on the
// change at once could read the rows as they were before it (the reverse
// stream rebuilds old rows from the current new ones).
func (s *Sink) AwaitCommitted(ctx context.Context, ev *change.Event) error {
	if ev.TxID == 0 {
		return nil
	}
	// The xid is 32 bits; the snapshot's are epoch-extended (xid8): the
	// change's is in the epoch of the snapshot's xmax, or the one before
	// when its low bits are not below xmax's (a committed xid is below it).
	const q = `WITH s AS (SELECT pg_current_snapshot() AS snap),
x AS (SELECT snap, pg_snapshot_xmax(snap)::text::numeric AS xm FROM s)
SELECT pg_visible_in_snapshot(((floor(xm / 4294967296) - CASE WHEN $1::numeric >= mod(xm, 4294967296) THEN 1 ELSE 0 END)
	* 4294967296 + $1::numeric)::text::xid8, snap) FROM x`
	_, err := poll.Until(ctx, time.Millisecond, 10*time.Second, func() (bool, error) {
		var visible bool
		err := s.pool.QueryRow(ctx, q, int64(ev.TxID)).Scan(&visible)
		return visible, err
	})
	if err != nil {
		return fmt.Errorf("wait for transaction %d of %s to be visible: %w", ev.TxID, ev.Table, err)
	}
	return nil
}
