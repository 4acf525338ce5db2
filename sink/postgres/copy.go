package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

// activeStates are the backfill states in which a Delete leaves a tombstone.
var activeStates = []string{string(sink.BackfillRunning), string(sink.BackfillCopied)}

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
	if err := p.Validate(); err != nil {
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

// copyStatement inserts rows copied by backfill: each unless a row with
// its key exists (ON CONFLICT DO NOTHING: the stream's row wins) or its
// tombstone does (the stream deleted it while the backfill was active).
func (s *Sink) copyStatement(t *table, g *sqlbatch.Group) (statement, error) {
	args, params, casts, aliases, err := groupArgs(t, g)
	if err != nil {
		return statement{}, err
	}
	n := len(args)
	params = append(params, fmt.Sprintf("$%d::text[]", n+1))
	aliases = append(aliases, "tandem_key")
	sql := "INSERT INTO " + t.ident + " (" + strings.Join(quoteAll(g.Cols), ", ") + ") SELECT " + strings.Join(casts, ", ") +
		" FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")" +
		" WHERE NOT EXISTS (SELECT 1 FROM " + s.tombstonesTable() + fmt.Sprintf(" ts WHERE ts.target_table = $%d AND ts.row_key = u.tandem_key)", n+2) +
		" ON CONFLICT (" + strings.Join(quoteAll(g.Key), ", ") + ") DO NOTHING"
	args = append(args, keyTexts(g.Key, g.Rows), g.Table)
	return statement{what: change.WriteCopy.String() + " into", table: g.Table, sql: sql, args: args}, nil
}

// copyLockClass is the first half of the advisory lock key of a table's
// copy lock ('tand'); the second is the table's oid.
const copyLockClass = 0x74616e64

// copyLockKey is the copy lock's key as SQL, of $1 (copyLockClass) and $2
// (the table's quoted name).
const copyLockKey = "(($1::bigint << 32) | $2::regclass::oid::bigint)"

// copyLocks returns the statements that take, first in a batch's
// transaction, the copy lock of each table the batch copies into or
// deletes from (sqlbatch.CopyLocks).
//
// The lock is what lets backfill write copies beside the stream, in no
// order with it (package backfill's doc has the argument): a copy
// and a delete of one table never overlap, so either the delete's
// tombstone is committed before the copy's statements take their
// snapshots (and the copy skips the key), or the copied row is committed
// before the delete's DELETE reads (and the delete removes it). It is a
// transaction-level advisory lock, keyed by the table's oid so that every
// spelling of a name is one lock, released at commit or rollback.
//
// Copies share it, so chunks of one table are written at once. A delete
// takes it exclusive, and only while a backfill is active (read in the
// statement, like the tombstones' check): a delete that sees none needs
// no lock, as every chunk is read after the backfill's state was saved,
// so after the delete's source change, and cannot hold the deleted row.
// Outside backfills, deletes take no lock and wait for nothing.
func (s *Sink) copyLocks(ctx context.Context, writes []change.Write) ([]statement, error) {
	locks := sqlbatch.CopyLocks(writes)
	out := make([]statement, 0, len(locks))
	for _, l := range locks {
		name := l.Table
		t, err := s.describe(ctx, name)
		if err != nil {
			return nil, classified(name, err)
		}
		st := statement{what: "take the copy lock of", table: name, args: []any{int64(copyLockClass), t.ident}}
		switch {
		case l.Copies && l.Shared:
			st.sql = "SELECT pg_advisory_xact_lock_shared" + copyLockKey
		case l.Copies:
			// copies and deletes in one batch (not a backfill's chunk)
			st.sql = "SELECT pg_advisory_xact_lock" + copyLockKey
		default:
			st.sql = "SELECT pg_advisory_xact_lock" + copyLockKey + " WHERE EXISTS (SELECT 1 FROM " + s.backfillsTable() + " WHERE state = ANY($3::text[]))"
			st.args = append(st.args, activeStates)
		}
		out = append(out, st)
	}
	return out, nil
}

// copyRows are the rows of one copy statement.
type copyRows struct {
	t *table
	g *sqlbatch.Group
}

// copyRows writes copied rows with COPY, the cheapest way into a table,
// when it can: under the copy lock (copyLocks) no tombstone of the table
// can appear meanwhile, so the tombstoned rows are left out first, and a
// row with the key of one already there (the stream's, or an earlier
// copy's) makes the COPY fail with a unique violation. Then, back at the
// savepoint before it, the rows whose keys are there are left out and the
// others copied again; should that fail too (a row written meanwhile),
// copyStatement's INSERT ... ON CONFLICT DO NOTHING writes them.
func (s *Sink) copyRows(ctx context.Context, tx pgx.Tx, st statement) error {
	g := st.copy.g
	fail := func(err error) error {
		return classifiedWriting(st.table, g.Cols, fmt.Errorf("%s %s: %w", st.what, st.table, err))
	}
	rows, err := s.untombstoned(ctx, tx, g)
	if err != nil {
		return fail(err)
	}
	if len(rows) == 0 {
		return nil
	}
	kept := *g
	kept.Rows = rows
	data, err := copyText(st.copy.t, &kept)
	if err != nil {
		return fail(err)
	}
	taken, err := copyLeavingOutRowsThere(ctx, tx, st.copy.t, g.Cols, data, g.Key,
		func() ([][]*string, error) { return encodedKeys(&kept) },
		func(there []bool) ([]byte, error) {
			rest := kept
			rest.Rows = nil
			for i, r := range kept.Rows {
				if !there[i] {
					rest.Rows = append(rest.Rows, r)
				}
			}
			return copyText(st.copy.t, &rest)
		})
	switch {
	case err == nil && !taken:
		// A row was written meanwhile: INSERT them instead.
		if _, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT tandem_copy"); err == nil {
			var ins statement
			if ins, err = s.copyStatement(st.copy.t, &kept); err == nil {
				_, err = tx.Exec(ctx, ins.sql, ins.args...)
			}
		}
	case err == nil:
		_, err = tx.Exec(ctx, "RELEASE SAVEPOINT tandem_copy")
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// copyLeavingOutRowsThere runs a COPY of data, rows of cols, into t at a
// savepoint. When it fails on a row there, it goes back to the savepoint,
// looks up which of keys (the rows' values of keyCols as text, in order)
// are keys of rows of t (rowsThere), and copies what rest makes of the
// rows not there. taken is false, and the transaction must go back to the
// savepoint or end, when that COPY fails too (a row written meanwhile).
func copyLeavingOutRowsThere(ctx context.Context, tx pgx.Tx, t *table, cols []string, data []byte, keyCols []string,
	keys func() ([][]*string, error), rest func(there []bool) ([]byte, error)) (taken bool, err error) {
	if _, err := tx.Exec(ctx, "SAVEPOINT tandem_copy"); err != nil {
		return false, err
	}
	if taken, err := copyFrom(ctx, tx, t, cols, data); err != nil || taken {
		return taken, err
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT tandem_copy"); err != nil {
		return false, err
	}
	ks, err := keys()
	if err != nil {
		return false, err
	}
	there, err := rowsThere(ctx, tx, t, keyCols, ks)
	if err != nil {
		return false, err
	}
	if data, err = rest(there); err != nil || len(data) == 0 {
		return err == nil, err
	}
	return copyFrom(ctx, tx, t, cols, data)
}

// encodedKeys returns the key values of g's rows as the sink's text.
func encodedKeys(g *sqlbatch.Group) ([][]*string, error) {
	keys := make([][]*string, len(g.Rows))
	for i, r := range g.Rows {
		keys[i] = make([]*string, len(g.Key))
		for j, k := range g.Key {
			var err error
			if keys[i][j], err = pgtext.Encode(r[k]); err != nil {
				return nil, fmt.Errorf("target %s column %q: %w", g.Table, k, err)
			}
		}
	}
	return keys, nil
}

// rowsThere reports which of keys (each the texts of the values of cols,
// in order; nil for NULL) are keys of rows of t.
func rowsThere(ctx context.Context, tx pgx.Tx, t *table, cols []string, keys [][]*string) ([]bool, error) {
	args := make([]any, len(cols))
	params, aliases, on := make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		vals := make([]*string, len(keys))
		for j, k := range keys {
			vals[j] = k[i]
		}
		args[i] = vals
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
		aliases[i] = fmt.Sprintf("k%d", i+1)
		on[i] = fmt.Sprintf("t.%s = u.k%d::%s", pgx.Identifier{c}.Sanitize(), i+1, t.types[c])
	}
	rows, err := tx.Query(ctx, "SELECT u.n FROM unnest("+strings.Join(params, ", ")+") WITH ORDINALITY AS u("+strings.Join(aliases, ", ")+
		", n) WHERE EXISTS (SELECT 1 FROM "+t.ident+" t WHERE "+strings.Join(on, " AND ")+")", args...)
	if err != nil {
		return nil, fmt.Errorf("look for the rows there of %s: %w", t.ident, err)
	}
	there := make([]bool, len(keys))
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&n}, func() error {
		if n >= 1 && n <= int64(len(keys)) {
			there[n-1] = true
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("look for the rows there of %s: %w", t.ident, err)
	}
	return there, nil
}

// copyFrom writes data, rows of cols in COPY's text format, into t with
// COPY FROM STDIN. taken is false, and the transaction must go back to a
// savepoint or end, when a row with the key of one of them exists (a
// unique violation).
func copyFrom(ctx context.Context, tx pgx.Tx, t *table, cols []string, data []byte) (taken bool, err error) {
	_, err = tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY "+t.ident+" ("+strings.Join(quoteAll(cols), ", ")+") FROM STDIN")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return false, nil
	}
	return err == nil, err
}

// untombstoned returns the rows of g whose keys have no tombstone.
func (s *Sink) untombstoned(ctx context.Context, tx pgx.Tx, g *sqlbatch.Group) ([]map[string]any, error) {
	some, err := s.hasTombstones(ctx, tx, g.Table)
	if err != nil || !some {
		return g.Rows, err
	}
	dead, err := s.tombstoned(ctx, tx, g.Table, keyTexts(g.Key, g.Rows))
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for i, r := range g.Rows {
		if !dead[i] {
			out = append(out, r)
		}
	}
	return out, nil
}

// hasTombstones reports whether table has any tombstone: one cheap look
// that spares looking up each key while it has none.
func (s *Sink) hasTombstones(ctx context.Context, tx pgx.Tx, table string) (bool, error) {
	var some bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+s.tombstonesTable()+` WHERE target_table = $1)`, table).Scan(&some); err != nil {
		return false, fmt.Errorf("read the tombstones of %s: %w", table, err)
	}
	return some, nil
}

// tombstoned reports which of keys (each a change.KeyText) have a tombstone
// in table.
func (s *Sink) tombstoned(ctx context.Context, tx pgx.Tx, table string, keys []string) ([]bool, error) {
	texts := make([]string, len(keys))
	for i, k := range keys {
		texts[i] = tombstoneKey(k)
	}
	rows, err := tx.Query(ctx, `SELECT row_key FROM `+s.tombstonesTable()+` WHERE target_table = $1 AND row_key = ANY($2::text[])`, table, texts)
	if err != nil {
		return nil, fmt.Errorf("read the tombstones of %s: %w", table, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the tombstones of %s: %w", table, err)
	}
	gone := make(map[string]bool, len(found))
	for _, k := range found {
		gone[k] = true
	}
	dead := make([]bool, len(texts))
	for i, k := range texts {
		dead[i] = gone[k]
	}
	return dead, nil
}

// withoutLines returns data (lines) without the lines i for which drop[i].
func withoutLines(data []byte, drop []bool) []byte {
	if !slices.Contains(drop, true) {
		return data
	}
	out := make([]byte, 0, len(data))
	i := 0
	for line := range bytes.Lines(data) {
		if i >= len(drop) || !drop[i] {
			out = append(out, line...)
		}
		i++
	}
	return out
}

// copyText renders g's rows in COPY's text format (pgtext.AppendCopy),
// columns in g.Cols order, each value as t's column takes it (table.value).
func copyText(t *table, g *sqlbatch.Group) ([]byte, error) {
	b := make([]byte, 0, 64*len(g.Rows)*len(g.Cols))
	for _, r := range g.Rows {
		for i, c := range g.Cols {
			if i > 0 {
				b = append(b, '\t')
			}
			var err error
			if b, err = pgtext.AppendCopy(b, t.value(c, r[c])); err != nil {
				return nil, fmt.Errorf("target %s column %q: %w: %w", g.Table, c, errNoText, err)
			}
		}
		b = append(b, '\n')
	}
	return b, nil
}

// CopyText implements sink.TextCopier: one COPY FROM STDIN in a
// transaction holding the table's copy lock (shared, as copies take it),
// of the lines whose keys have no tombstone (none can appear meanwhile)
// and are not the keys of rows there: with key.Ordered, those rows are
// read first, as one range of keys; otherwise only when the COPY fails on
// one, and then the COPY is tried again without them.
func (s *Sink) CopyText(ctx context.Context, table string, cols []string, data []byte, key *sink.TextKey) error {
	t, err := s.describe(ctx, table)
	if err != nil {
		return classified(table, err)
	}
	fail := func(err error) error {
		return classified(table, fmt.Errorf("copy into %s: %w", table, err))
	}
	var lines *textLines
	if key != nil {
		lines = &textLines{data: data, cols: cols, key: *key}
		if err := t.has(table, lines.keyCols()); err != nil {
			return err
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared"+copyLockKey, int64(copyLockClass), t.ident); err != nil {
			return err
		}
		some, err := s.hasTombstones(ctx, tx, table)
		switch {
		case err != nil:
			return err
		case some && lines == nil:
			return sink.ErrNotVerbatim // no way to tell the lines the tombstones stop
		case some:
			dead, err := s.tombstoned(ctx, tx, table, lines.keyTexts())
			if err != nil {
				return err
			}
			lines.drop(dead)
		}
		ordered := false
		if lines != nil && lines.key.Ordered {
			if ordered, err = s.leadsIndex(ctx, tx, t, lines.keyCols()); err != nil {
				return err
			}
		}
		if ordered {
			if err := dropRowsInRange(ctx, tx, t, lines); err != nil {
				return err
			}
		}
		if lines != nil {
			data = lines.kept()
		}
		if len(data) == 0 {
			return nil
		}
		var taken bool
		if lines == nil || ordered {
			taken, err = copyFrom(ctx, tx, t, cols, data)
		} else {
			taken, err = copyLeavingOutRowsThere(ctx, tx, t, cols, data, lines.keyCols(), lines.keyValues,
				func(there []bool) ([]byte, error) { lines.drop(there); return lines.kept(), nil })
		}
		if err == nil && !taken {
			return sink.ErrNotVerbatim
		}
		return err
	})
	switch {
	case errors.Is(err, sink.ErrNotVerbatim):
		return err
	case err != nil:
		return fail(err)
	}
	return nil
}

// textLines are the lines of a chunk's COPY text, with their keys, some
// of them left out.
type textLines struct {
	data    []byte
	cols    []string
	key     sink.TextKey
	dropped []bool // by line, once any is
	keys    [][]string
}

// keyCols are the target's key columns, in key order.
func (l *textLines) keyCols() []string {
	out := make([]string, len(l.key.At))
	for i, j := range l.key.At {
		out[i] = l.cols[j]
	}
	return out
}

// lineKeys returns each line's key values, as text (nil for NULL).
func (l *textLines) lineKeys() [][]string {
	if l.keys != nil {
		return l.keys
	}
	for line := range bytes.Lines(l.data) {
		l.keys = append(l.keys, lineKey(line, l.key.At))
	}
	return l.keys
}

// keyValues returns each line's key values, as rowsThere takes them.
func (l *textLines) keyValues() ([][]*string, error) {
	keys := make([][]*string, len(l.lineKeys()))
	for i, k := range l.lineKeys() {
		keys[i] = make([]*string, len(k))
		for j := range k {
			keys[i][j] = &k[j]
		}
	}
	return keys, nil
}

// lineKey is the key values of one line of COPY text: its fields at at.
func lineKey(line []byte, at []int) []string {
	line = bytes.TrimSuffix(line, []byte("\n"))
	key := make([]string, len(at))
	for i, j := range at {
		key[i] = string(pgtext.CopyField(line, j))
	}
	return key
}

// keyTexts returns the change.KeyText of each line's key.
func (l *textLines) keyTexts() []string {
	cols := l.keyCols()
	out := make([]string, 0, len(l.lineKeys()))
	row := make(map[string]any, len(cols))
	for _, k := range l.lineKeys() {
		for i, c := range cols {
			row[c] = k[i]
		}
		out = append(out, change.KeyText(cols, row))
	}
	return out
}

// drop leaves out the lines i for which gone[i].
func (l *textLines) drop(gone []bool) {
	if l.dropped == nil {
		l.dropped = make([]bool, len(gone))
	}
	for i, g := range gone {
		l.dropped[i] = l.dropped[i] || g
	}
}

// kept returns the lines not left out.
func (l *textLines) kept() []byte {
	if l.dropped == nil {
		return l.data
	}
	return withoutLines(l.data, l.dropped)
}

// dropRowsInRange leaves out the lines whose keys are keys of rows of t,
// read as the range of keys from the first line's to the last's: for
// ordered integer keys (sink.TextKey.Ordered), whose text is the row's.
func dropRowsInRange(ctx context.Context, tx pgx.Tx, t *table, lines *textLines) error {
	if len(lines.data) == 0 {
		return nil
	}
	cols := lines.keyCols()
	sel, lo, hi := make([]string, len(cols)), make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		sel[i] = "t." + pgx.Identifier{c}.Sanitize() + "::text"
		lo[i] = fmt.Sprintf("$%d::text::%s", i+1, t.types[c])
		hi[i] = fmt.Sprintf("$%d::text::%s", len(cols)+i+1, t.types[c])
	}
	// The first and the last line's keys only: the lines need not be read
	// unless rows are there.
	first, _, _ := bytes.Cut(lines.data, []byte("\n"))
	last := lines.data[bytes.LastIndexByte(lines.data[:len(lines.data)-1], '\n')+1:]
	var args []any
	for _, line := range [][]byte{first, last} {
		for _, v := range lineKey(line, lines.key.At) {
			args = append(args, v)
		}
	}
	tuple := "(t." + strings.Join(quoteAll(cols), ", t.") + ")"
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.ident+" t WHERE "+tuple+" >= ("+strings.Join(lo, ", ")+
		") AND "+tuple+" <= ("+strings.Join(hi, ", ")+")", args...)
	if err != nil {
		return fmt.Errorf("read the rows there of %s: %w", t.ident, err)
	}
	// The rows' keys as the lines' keys read: their values' texts, joined.
	there := map[string]bool{}
	vals := make([]string, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	_, err = pgx.ForEachRow(rows, dest, func() error {
		there[strings.Join(vals, "\x00")] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the rows there of %s: %w", t.ident, err)
	}
	if len(there) == 0 {
		return nil
	}
	keys := lines.lineKeys()
	gone := make([]bool, len(keys))
	for i, k := range keys {
		gone[i] = there[strings.Join(k, "\x00")]
	}
	lines.drop(gone)
	return nil
}

// leadsIndex reports whether a btree index of t, without predicate,
// starts with cols in that order: what makes reading a range of them one
// index scan, not a scan of the table.
func (s *Sink) leadsIndex(ctx context.Context, tx pgx.Tx, t *table, cols []string) (bool, error) {
	id := strings.Join(cols, "\x00")
	s.mu.Lock()
	known, ok := t.indexed[id]
	s.mu.Unlock()
	if ok {
		return known, nil
	}
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE i.indrelid = $1::regclass AND am.amname = 'btree' AND i.indpred IS NULL AND i.indnkeyatts >= $3
  AND (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest((i.indkey::int2[])[0:$3 - 1]) WITH ORDINALITY AS k(attnum, n)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = $2::text[])`, t.ident, cols, len(cols)).Scan(&known)
	if err != nil {
		return false, fmt.Errorf("look for an index of %s on %v: %w", t.ident, cols, err)
	}
	s.mu.Lock()
	if t.indexed == nil {
		t.indexed = map[string]bool{}
	}
	t.indexed[id] = known
	s.mu.Unlock()
	return known, nil
}
