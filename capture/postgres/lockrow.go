package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
)

// LockRow reads the current row of t whose primary key holds the values of
// key, and runs fn with it while the row is locked: the read is a SELECT
// ... FOR SHARE in a transaction that ends only after fn returns, so no
// other transaction can update or delete the row meanwhile (they wait). The
// row's values are the stream's, as Chunk reads them. row is nil when no
// such row exists; then nothing is locked (PostgreSQL locks rows, not the
// absence of one), and an insert of the key may commit while fn runs.
//
// fn's error is returned as is; the transaction is committed after fn
// succeeds and rolled back otherwise (both release the lock). Locking needs
// the UPDATE privilege on the table, besides SELECT. Blocks; safe for
// concurrent use.
func (r *TableReader) LockRow(ctx context.Context, t *change.Schema, key change.Row, fn func(row change.Row) error) error {
	return r.withRow(ctx, t, key, true, fn)
}

// Row (reconcile.Source) reads the current row of t whose primary key holds the values of
// key, as LockRow does but without a lock (SELECT only: a read-only user
// will do), nil when there is none: the reconciler's re-reads.
func (r *TableReader) Row(ctx context.Context, t *change.Schema, key change.Row) (change.Row, error) {
	var row change.Row
	err := r.withRow(ctx, t, key, false, func(x change.Row) error { row = x; return nil })
	return row, err
}

// withRow reads the row, under a share lock when lock is set, and runs fn
// with it before the transaction ends.
func (r *TableReader) withRow(ctx context.Context, t *change.Schema, key change.Row, lock bool, fn func(row change.Row) error) error {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	conds := make([]string, len(t.Key))
	params := make([][]byte, len(t.Key))
	for i, k := range t.Key {
		v, ok := key[k]
		if !ok || v == nil {
			return fmt.Errorf("lock a row of %s: no value for key column %q", t.Name, k)
		}
		conds[i] = fmt.Sprintf("%s = $%d", pgx.Identifier{k}.Sanitize(), i+1)
		params[i] = paramText(v)
	}
	sql := fmt.Sprintf("SELECT %s FROM %s WHERE %s", strings.Join(cols, ", "),
		pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize(), strings.Join(conds, " AND "))
	opts := pgx.TxOptions{}
	if lock {
		sql += " FOR SHARE"
		// The reader's sessions are read-only by default; a row lock needs
		// a read-write transaction, though it writes nothing.
		opts.AccessMode = pgx.ReadWrite
	}
	tx, err := r.pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("lock a row of %s: begin: %w", t.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	res := tx.Conn().PgConn().ExecParams(ctx, sql, params, nil, nil, nil)
	var row change.Row
	for res.NextRow() {
		if row, err = textRow(t, fieldOIDs(res.FieldDescriptions()), res.Values()); err != nil {
			res.Close()
			return fmt.Errorf("lock a row of %s: %w", t.Name, err)
		}
	}
	if _, err := res.Close(); err != nil {
		return fmt.Errorf("lock a row of %s: %w", t.Name, err)
	}
	if err := fn(row); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("lock a row of %s: commit: %w", t.Name, err)
	}
	return nil
}

// paramText renders a key value as the stream decodes it (see package pgtext)
// back in PostgreSQL's text input format, for an untyped parameter that
// takes its column's type.
func paramText(v any) []byte {
	switch v := v.(type) {
	case string:
		return []byte(v)
	case int64:
		return strconv.AppendInt(nil, v, 10)
	case float64:
		switch {
		case math.IsInf(v, 1):
			return []byte("Infinity")
		case math.IsInf(v, -1):
			return []byte("-Infinity")
		}
		return strconv.AppendFloat(nil, v, 'g', -1, 64) // NaN too
	case bool:
		return strconv.AppendBool(nil, v)
	case []byte:
		return []byte(`\x` + hex.EncodeToString(v))
	}
	return []byte(fmt.Sprint(v))
}
