package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tandemcdc/tandem/internal/pgdsn"
)

// SlotLog is a PostgreSQL database's WAL as a cutover switch drains it:
// where the WAL ends now, and whether the capturer reading it through
// slot has acknowledged a position (everything before it durable
// downstream).
type SlotLog struct {
	pool *pgxpool.Pool
	slot string
}

// NewSlotLog connects to the database of dsn, whose capturer reads it
// through slot.
func NewSlotLog(ctx context.Context, dsn, slot string) (*SlotLog, error) {
	pool, err := pgdsn.Pool(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to read the WAL position: %w", err)
	}
	return &SlotLog{pool: pool, slot: slot}, nil
}

// Head returns where the WAL ends now (an LSN's text). It then writes a
// non-transactional logical message after it, so that the walsender has
// WAL to send past the position and the capturer's slot moves beyond it
// even when nothing else is written.
func (l *SlotLog) Head(ctx context.Context) (string, error) {
	var lsn string
	if err := l.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return "", fmt.Errorf("read the current WAL position: %w", err)
	}
	if _, err := l.pool.Exec(ctx, `SELECT pg_logical_emit_message(false, 'tandem.drain', '')`); err != nil {
		return "", fmt.Errorf("write a WAL message past the drain position: %w", err)
	}
	return lsn, nil
}

// Reached reports whether the slot's confirmed flush position is at or
// past pos.
func (l *SlotLog) Reached(ctx context.Context, pos string) (bool, error) {
	var ok bool
	err := l.pool.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2`, pos, l.slot).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("read replication slot %s's confirmed position: %w", l.slot, err)
	}
	return ok, nil
}

// Close releases the connections.
func (l *SlotLog) Close() { l.pool.Close() }
