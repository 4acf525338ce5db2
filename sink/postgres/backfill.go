package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/sink"
)

// activeStates are the backfill states in which a Delete leaves a tombstone.
var activeStates = []string{sink.BackfillRunning, sink.BackfillCopied}

// BackfillProgress implements sink.BackfillStore: every table's progress,
// ordered by table (byte order), times in UTC.
func (s *Sink) BackfillProgress(ctx context.Context) ([]sink.BackfillProgress, error) {
	rows, err := s.pool.Query(ctx, `SELECT source_table, state, after_key, rows, started_at, updated_at FROM `+
		s.backfillsTable()+` ORDER BY source_table COLLATE "C"`)
	if err != nil {
		return nil, classified(s.backfillsTable(), fmt.Errorf("read backfill progress: %w", err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sink.BackfillProgress, error) {
		var p sink.BackfillProgress
		err := r.Scan(&p.Table, &p.State, &p.After, &p.Rows, &p.Started, &p.Updated)
		p.Started, p.Updated = p.Started.UTC(), p.Updated.UTC()
		return p, err
	})
	if err != nil {
		return nil, classified(s.backfillsTable(), fmt.Errorf("read backfill progress: %w", err))
	}
	return out, nil
}

// SaveBackfill implements sink.BackfillStore: one upsert, committed on its
// own. Times are stored to the microsecond; a zero Started or Updated is
// stored as the time of saving.
func (s *Sink) SaveBackfill(ctx context.Context, p sink.BackfillProgress) error {
	if err := validBackfill(p); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO `+s.backfillsTable()+` (source_table, state, after_key, rows, started_at, updated_at)
VALUES ($1, $2, $3, $4, COALESCE($5, now()), COALESCE($6, now()))
ON CONFLICT (source_table) DO UPDATE SET state = EXCLUDED.state, after_key = EXCLUDED.after_key, rows = EXCLUDED.rows,
	started_at = EXCLUDED.started_at, updated_at = EXCLUDED.updated_at`,
		p.Table, p.State, p.After, p.Rows, orNow(p.Started), orNow(p.Updated)); err != nil {
		return classified(s.backfillsTable(), fmt.Errorf("save the backfill progress of %s: %w", p.Table, err))
	}
	return nil
}

// ResetBackfill implements sink.BackfillStore: progress and tombstones go
// in one transaction.
func (s *Sink) ResetBackfill(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// DELETE, not TRUNCATE: no ACCESS EXCLUSIVE lock to wait for
		// every Apply in flight, and no TRUNCATE privilege to grant.
		if _, err := tx.Exec(ctx, `DELETE FROM `+s.backfillsTable()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM `+s.tombstonesTable())
		return err
	})
	if err != nil {
		return classified(s.backfillsTable(), fmt.Errorf("reset backfill progress and tombstones: %w", err))
	}
	return nil
}

// validBackfill refuses progress a store should never hold.
func validBackfill(p sink.BackfillProgress) error {
	switch p.State {
	case sink.BackfillRunning, sink.BackfillCopied, sink.BackfillDone:
	default:
		return fmt.Errorf("save the backfill progress of %s: unknown state %q", p.Table, p.State)
	}
	if p.Table == "" {
		return fmt.Errorf("save backfill progress: no table")
	}
	return nil
}

// orNow is t to the microsecond (truncated), or NULL (the server's now())
// for the zero time.
func orNow(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.Truncate(time.Microsecond)
	return &t
}

// tombstones stores a tombstone for each deleted key, in the same
// transaction as the DELETE, while a backfill is running or copied. The
// check reads tandem's backfills table in the statement itself (a READ
// COMMITTED snapshot taken when it starts), never a cached state: a
// backfill that started before it is seen, so a row deleted after the
// backfill may have read it cannot be copied back. Tombstones stored
// before are kept.
func (s *Sink) tombstones(table string, keys []string) statement {
	return statement{what: "store tombstones of", table: table,
		sql: `INSERT INTO ` + s.tombstonesTable() + ` (target_table, row_key)
SELECT $1, k FROM unnest($2::text[]) AS k
WHERE EXISTS (SELECT 1 FROM ` + s.backfillsTable() + ` WHERE state = ANY($3::text[]))
ON CONFLICT DO NOTHING`,
		args: []any{table, keys, activeStates}}
}

// copies inserts rows copied by backfill: each unless a row with its key
// exists (ON CONFLICT DO NOTHING: the stream's row wins) or its tombstone
// does (the stream deleted it while the backfill was active). rows is the
// SELECT of the cast values of unnest(...) AS u(...) as statements builds
// it; keys, their KeyTexts, is one more unnest argument ($n).
func (s *Sink) copies(t *table, name string, cols, key []string, args []any, casts, params, aliases []string, keys []string) statement {
	n := len(args)
	params = append(params[:len(params):len(params)], fmt.Sprintf("$%d::text[]", n+1))
	aliases = append(aliases[:len(aliases):len(aliases)], "tandem_key")
	sql := "INSERT INTO " + t.ident + " (" + strings.Join(quoteAll(cols), ", ") + ") SELECT " + strings.Join(casts, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")" +
		" WHERE NOT EXISTS (SELECT 1 FROM " + s.tombstonesTable() + fmt.Sprintf(" ts WHERE ts.target_table = $%d AND ts.row_key = u.tandem_key)", n+2) +
		" ON CONFLICT (" + strings.Join(quoteAll(key), ", ") + ") DO NOTHING"
	args = append(args[:n:n], keys, name)
	return statement{what: sink.Copy.String() + " into", table: name, sql: sql, args: args}
}
