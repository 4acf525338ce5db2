package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
)

// LockRow reads the current row of t whose primary key holds the values of
// key, and runs fn with it while the row is locked: the read is a SELECT
// ... LOCK IN SHARE MODE (MySQL 8's FOR SHARE, under the name MariaDB
// knows too) in a transaction that ends only after fn returns, so no other
// transaction can update or delete the row meanwhile (they wait, up to
// their innodb_lock_wait_timeout). The row's values are the stream's, as
// Chunk reads them. row is nil when no such row exists (InnoDB then locks
// the gap, which holds inserts of the key back too, but callers should not
// rely on it: PostgreSQL does not). t must have been described by this
// reader.
//
// fn's error is returned as is; the transaction is committed after fn
// succeeds and rolled back otherwise (both release the lock). Blocks; safe
// for concurrent use once t is described.
func (r *TableReader) LockRow(ctx context.Context, t *change.Schema, key change.Row, fn func(row change.Row) error) error {
	return r.withRow(ctx, t, key, true, fn)
}

// Row (reconcile.Source) reads the current row of t whose primary key holds the values of
// key, as LockRow does but without a lock, nil when there is none: the
// reconciler's re-reads.
func (r *TableReader) Row(ctx context.Context, t *change.Schema, key change.Row) (change.Row, error) {
	var row change.Row
	err := r.withRow(ctx, t, key, false, func(x change.Row) error { row = x; return nil })
	return row, err
}

// withRow reads the row, under a share lock when lock is set, and runs fn
// with it before the transaction ends.
func (r *TableReader) withRow(ctx context.Context, t *change.Schema, key change.Row, lock bool, fn func(row change.Row) error) error {
	cols, ok := r.tables[t.Name]
	if !ok {
		return fmt.Errorf("lock a row of %s: the table was not described by this reader", t.Name)
	}
	conds := make([]string, len(t.Key))
	args := make([]any, len(t.Key))
	for i, k := range t.Key {
		v, ok := key[k]
		if !ok || v == nil {
			return fmt.Errorf("lock a row of %s: no value for key column %q", t.Name, k)
		}
		// Values come as Chunk reads them, which the server compares equal
		// to the column: integers fit int64 (BIGINT UNSIGNED comes as its
		// decimal text), times and decimals are the server's text.
		conds[i], args[i] = mysqlurl.QuoteIdent(k)+" = ?", v
	}
	q := fmt.Sprintf("SELECT %s FROM %s.%s WHERE %s", selectList(cols),
		mysqlurl.QuoteIdent(t.Name.Schema), mysqlurl.QuoteIdent(t.Name.Name), strings.Join(conds, " AND "))
	if lock {
		q += " LOCK IN SHARE MODE"
	}

	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("lock a row of %s: begin: %w", t.Name, err)
	}
	defer tx.Rollback()
	row, err := lockedRow(ctx, tx, q, args, cols)
	if err != nil {
		return fmt.Errorf("lock a row of %s: %w", t.Name, err)
	}
	if err := fn(row); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("lock a row of %s: commit: %w", t.Name, err)
	}
	return nil
}

// lockedRow runs the locking read q and converts its row, if any.
func lockedRow(ctx context.Context, tx *sql.Tx, q string, args []any, cols []column) (change.Row, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var row change.Row
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		if row, err = textRow(cols, raw); err != nil {
			return nil, err
		}
	}
	return row, rows.Err()
}
