package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// BackfillProgress implements sink.BackfillStore: every table's progress,
// ordered by table (utf8mb4_bin: code point order, as Go orders strings),
// times in UTC.
func (s *Sink) BackfillProgress(ctx context.Context) ([]sink.BackfillProgress, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT source_table, state, after_key, `rows`, started_at, updated_at FROM "+
		s.backfillsTable()+" ORDER BY source_table")
	if err != nil {
		return nil, classified(s.backfillsTable(), fmt.Errorf("read backfill progress: %w", err))
	}
	defer rows.Close()
	var out []sink.BackfillProgress
	for rows.Next() {
		var p sink.BackfillProgress
		var started, updated string
		if err := rows.Scan(&p.Table, &p.State, &p.After, &p.Rows, &started, &updated); err != nil {
			return nil, classified(s.backfillsTable(), fmt.Errorf("read backfill progress: %w", err))
		}
		if p.Started, err = time.Parse(timeLayout, started); err != nil {
			return nil, fmt.Errorf("read backfill progress of %s: start time %q: %w", p.Table, started, err)
		}
		if p.Updated, err = time.Parse(timeLayout, updated); err != nil {
			return nil, fmt.Errorf("read backfill progress of %s: update time %q: %w", p.Table, updated, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.backfillsTable(), fmt.Errorf("read backfill progress: %w", err))
	}
	return out, nil
}

// SaveBackfill implements sink.BackfillStore: one upsert, committed on its
// own (with an origin, in a marked transaction). Times are stored in UTC to the microsecond (truncated); a zero
// Started or Updated is stored as the time of saving.
func (s *Sink) SaveBackfill(ctx context.Context, p sink.BackfillProgress) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := s.exec(ctx, "INSERT INTO "+s.backfillsTable()+
		" (source_table, state, after_key, `rows`, started_at, updated_at)"+
		" VALUES (?, ?, ?, ?, COALESCE(?, UTC_TIMESTAMP(6)), COALESCE(?, UTC_TIMESTAMP(6)))"+
		" ON DUPLICATE KEY UPDATE state = VALUES(state), after_key = VALUES(after_key), `rows` = VALUES(`rows`),"+
		" started_at = VALUES(started_at), updated_at = VALUES(updated_at)",
		p.Table, p.State, p.After, p.Rows, orNow(p.Started), orNow(p.Updated)); err != nil {
		return classified(s.backfillsTable(), fmt.Errorf("save the backfill progress of %s: %w", p.Table, err))
	}
	return nil
}

// orNow is t as DATETIME(6) text in UTC, or NULL (the time of saving) for
// the zero time.
func orNow(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond).Format(timeLayout)
}

// ResetBackfill implements sink.BackfillStore: progress and tombstones go
// in one transaction (DELETE, not TRUNCATE, which commits on its own).
func (s *Sink) ResetBackfill(ctx context.Context) error {
	tx, err := s.begin(ctx, nil)
	if err != nil {
		return classified(s.backfillsTable(), fmt.Errorf("reset backfill progress and tombstones: %w", err))
	}
	defer tx.Rollback()
	for _, table := range []string{s.backfillsTable(), s.tombstonesTable()} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return classified(table, fmt.Errorf("reset backfill progress and tombstones: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return classified(s.backfillsTable(), fmt.Errorf("reset backfill progress and tombstones: %w", err))
	}
	return nil
}

// keyHash is the tombstones' key_hash of a row's key: the SHA-256 of its
// change.KeyText, which is valid UTF-8 (strconv.Quote escapes the rest).
func keyHash(text string) [sha256.Size]byte { return sha256.Sum256([]byte(text)) }

// tombstones stores a tombstone for each key deleted from table name, in
// the same transaction as the DELETE, while a backfill is running or
// copied (statement.whileBackfill: see backfillActive). Tombstones stored
// before are kept.
func (s *Sink) tombstones(name string, key []string, rows []map[string]any) []statement {
	texts := make([]string, len(rows))
	sizes := make([]int, len(rows))
	for i, r := range rows {
		texts[i] = change.KeyText(key, r)
		sizes[i] = len(name) + len(texts[i]) + sha256.Size + 27
	}
	var out []statement
	for _, c := range chunks(sizes, 3, 0) {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + s.tombstonesTable() + " (target_table, key_hash, row_key, created_at) VALUES ")
		args := make([]any, 0, 3*(c[1]-c[0]))
		for i, text := range texts[c[0]:c[1]] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, UTC_TIMESTAMP(6))")
			h := keyHash(text)
			args = append(args, name, h[:], text)
		}
		sb.WriteString(" ON DUPLICATE KEY UPDATE target_table = target_table")
		out = append(out, statement{what: "store tombstones of", table: name, sql: sb.String(), args: args, whileBackfill: true})
	}
	return out
}

// backfillActive reports whether a backfill is running or copied, read in
// tx when its first tombstone is to be written, never from a cache. That
// read sees every backfill that started before it (READ COMMITTED: what
// was committed when the statement starts; REPEATABLE READ: the snapshot
// this first consistent read takes), in particular any that started before
// the transaction: so a row whose delete this transaction applies, and
// which such a backfill may have read before the delete, gets its
// tombstone. A backfill that starts later reads the source after the
// delete, and cannot copy the row.
//
// One read and then plain multi-row INSERTs, rather than INSERT ... SELECT
// ... WHERE EXISTS: the keys would have to come through a derived table of
// UNION ALL SELECTs of parameters (MariaDB 10.11's and MySQL 8's VALUES
// table constructors are spelled differently), which made the deletes of a
// batch more than twice as slow even with no backfill active.
func (s *Sink) backfillActive(ctx context.Context, tx *sql.Tx) (bool, error) {
	var active bool
	err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+s.backfillsTable()+" WHERE state IN (?, ?))",
		sink.BackfillRunning, sink.BackfillCopied).Scan(&active)
	if err != nil {
		return false, classified(s.backfillsTable(), fmt.Errorf("read whether a backfill is active: %w", err))
	}
	return active, nil
}

// copies are rows copied by backfill into one table, at most one
// statement's worth.
type copies struct {
	ident, name string
	key, cols   []string
	rows        [][]any // driver arguments, in cols order
	sizes       []int
	hashes      [][sha256.Size]byte // of each row's key
}

// copyChunks splits copied rows (args as statements built them; raw, the
// writes' rows, for their keys) into statements that Sink.writeCopies runs.
func copyChunks(ident, name string, key, cols []string, args [][]any, sizes []int, raw []map[string]any) []statement {
	var out []statement
	for _, c := range chunks(sizes, len(cols), 0) {
		cp := &copies{ident: ident, name: name, key: key, cols: cols, rows: args[c[0]:c[1]], sizes: sizes[c[0]:c[1]]}
		for _, r := range raw[c[0]:c[1]] {
			cp.hashes = append(cp.hashes, keyHash(change.KeyText(key, r)))
		}
		out = append(out, statement{what: change.WriteCopy.String() + " into", table: name, copies: cp})
	}
	return out
}

// writeCopies writes copied rows in tx: each unless its tombstone exists
// (read in tx, so tombstones written earlier in the batch count) or a row
// with its key does (ON DUPLICATE KEY UPDATE that changes nothing, as for
// InsertIfAbsent: the stream's row wins).
//
// A lookup and then an INSERT ... VALUES, not one INSERT ... SELECT ...
// WHERE NOT EXISTS: the rows would have to come through a derived table
// of UNION ALL SELECTs of parameters (the VALUES table constructors of
// MariaDB 10.11 and MySQL 8 are spelled differently), where each column
// takes a type of its own before it is converted to the target's — on
// MariaDB a binary parameter there is read as utf8mb4 text and its
// invalid bytes become '?'. INSERT ... VALUES gives each value to its
// column as every other write does.
func (s *Sink) writeCopies(ctx context.Context, tx *sql.Tx, c *copies) error {
	dead, err := s.tombstoned(ctx, tx, c.name, c.hashes)
	if err != nil {
		return err
	}
	rows, sizes := c.rows, c.sizes
	if len(dead) > 0 {
		rows, sizes = nil, nil
		for i, h := range c.hashes {
			if !dead[h] {
				rows, sizes = append(rows, c.rows[i]), append(sizes, c.sizes[i])
			}
		}
	}
	for _, st := range inserts(c.ident, c.name, change.WriteCopy, c.key, c.cols, rows, sizes) {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return classified(st.table, fmt.Errorf("%s %s: %w", st.what, st.table, err))
		}
	}
	return nil
}

// maxTombstoneLookups bounds the keys of one tombstone lookup: MariaDB
// turns a SELECT's IN list of 1000 values or more
// (in_predicate_conversion_threshold) into a semi-join that reads every
// tombstone of the table instead of a range scan of the keys.
const maxTombstoneLookups = 500

// tombstoned returns which of hashes have a tombstone in table name,
// looked up by primary key, maxTombstoneLookups at a time.
func (s *Sink) tombstoned(ctx context.Context, tx *sql.Tx, name string, hashes [][sha256.Size]byte) (map[[sha256.Size]byte]bool, error) {
	dead := map[[sha256.Size]byte]bool{}
	for lo := 0; lo < len(hashes); lo += maxTombstoneLookups {
		hi := min(len(hashes), lo+maxTombstoneLookups)
		args := make([]any, 0, 1+hi-lo)
		args = append(args, name)
		// as hex text, which no connection charset can alter on any server
		for _, h := range hashes[lo:hi] {
			args = append(args, hex.EncodeToString(h[:]))
		}
		rows, err := tx.QueryContext(ctx, "SELECT key_hash FROM "+s.tombstonesTable()+" WHERE target_table = ? AND key_hash IN ("+
			strings.TrimSuffix(strings.Repeat("UNHEX(?), ", hi-lo), ", ")+")", args...)
		if err != nil {
			return nil, classified(s.tombstonesTable(), fmt.Errorf("read the tombstones of %s: %w", name, err))
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, classified(s.tombstonesTable(), fmt.Errorf("read the tombstones of %s: %w", name, err))
			}
			var h [sha256.Size]byte
			copy(h[:], b)
			dead[h] = true
		}
		if err := rows.Close(); err != nil {
			return nil, classified(s.tombstonesTable(), fmt.Errorf("read the tombstones of %s: %w", name, err))
		}
		if err := rows.Err(); err != nil {
			return nil, classified(s.tombstonesTable(), fmt.Errorf("read the tombstones of %s: %w", name, err))
		}
	}
	return dead, nil
}

// copyLocks returns the statements that take, first in a batch's
// transaction (after the fence), the copy lock of each table the batch
// copies into or deletes from (locks, its sqlbatch.CopyLocks): the row of the
// table in copy_locks, written (so locked exclusively) by an upsert that
// changes nothing, or read shared by a backfill's chunk (below).
//
// The lock is what lets backfill write copies beside the stream, in no
// order with it (package backfill's doc has the argument): a copy
// and a delete of one table never overlap, so either the delete's
// tombstone is committed before the copy reads tombstones (and the copy
// skips the key), or the copied row is committed before the delete's
// DELETE reads (and the delete removes it). An upsert is no consistent
// read: under REPEATABLE READ the transaction's snapshot is taken after
// the lock is held.
//
// A delete takes it only while a backfill is active, read in the same
// statement: a delete that sees none needs no lock, as every chunk is read
// after the backfill's state was saved, so after the delete's source
// change. A backfill's chunk (copies only, sqlbatch.CopyLock.Shared) reads the
// row LOCK IN SHARE MODE instead, so the chunks of one table are written
// at once; the row was upserted before the transaction (ensureCopyLockRows),
// since a shared lock on a missing row would be a gap lock. A locking read
// is no consistent read either.
func (s *Sink) copyLocks(locks []sqlbatch.CopyLock) []statement {
	out := make([]statement, 0, len(locks))
	for _, l := range locks {
		name := l.Table
		st := statement{what: "take the copy lock of", table: name}
		if l.Copies && l.Shared {
			st.sql = "SELECT target_table FROM " + s.copyLocksTable() + " WHERE target_table = ? LOCK IN SHARE MODE"
			st.args = []any{name}
		} else if l.Copies {
			st.sql = "INSERT INTO " + s.copyLocksTable() + " (target_table) VALUES (?) ON DUPLICATE KEY UPDATE target_table = target_table"
			st.args = []any{name}
		} else {
			st.sql = "INSERT INTO " + s.copyLocksTable() + " (target_table) SELECT ? FROM DUAL WHERE EXISTS (SELECT 1 FROM " +
				s.backfillsTable() + " WHERE state IN (?, ?)) ON DUPLICATE KEY UPDATE target_table = target_table"
			st.args = []any{name, sink.BackfillRunning, sink.BackfillCopied}
		}
		out = append(out, st)
	}
	return out
}

// ensureCopyLockRows makes sure copy_locks holds the row of each table
// that writes copy into as a backfill's chunk (sqlbatch.CopyLock.Shared), once
// per table and Sink: a plain read finds it, else it is inserted on its
// own. (An upsert of a row that exists would wait for every chunk holding
// it shared.)
func (s *Sink) ensureCopyLockRows(ctx context.Context, locks []sqlbatch.CopyLock) error {
	for _, l := range locks {
		if !l.Shared {
			continue
		}
		s.mu.Lock()
		done := s.lockRows[l.Table]
		s.mu.Unlock()
		if done {
			continue
		}
		var n int
		err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.copyLocksTable()+" WHERE target_table = ?", l.Table).Scan(&n)
		if err == nil && n == 0 {
			err = s.exec(ctx, "INSERT INTO "+s.copyLocksTable()+" (target_table) VALUES (?) ON DUPLICATE KEY UPDATE target_table = target_table", l.Table)
		}
		if err != nil {
			return classified(s.copyLocksTable(), fmt.Errorf("make the copy lock of %s: %w", l.Table, err))
		}
		s.mu.Lock()
		if s.lockRows == nil {
			s.lockRows = map[string]bool{}
		}
		s.lockRows[l.Table] = true
		s.mu.Unlock()
	}
	return nil
}
