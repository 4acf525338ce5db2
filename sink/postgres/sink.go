package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

var (
	_ sink.Sink          = (*Sink)(nil)
	_ sink.BackfillStore = (*Sink)(nil)
)

// Config says where to write.
type Config struct {
	DSN         string // never logged
	StateSchema string // schema of tandem's own tables; default "tandem"
	// ReadOnly connects without creating tandem's own tables, for what
	// only reads the target (check, preview, dlq list, lookups there).
	ReadOnly bool
	// Origin, when set, marks every transaction the sink commits (Apply,
	// copies, dead letters, tombstones, state tables) with a replication
	// origin of this family, so that a capturer of this database skips
	// them (capture/postgres.Config.SkipOrigins) and tandem does not echo
	// its own writes back in a two-way replication; guard triggers tell
	// tandem's sessions by pg_replication_origin_session_is_setup().
	//
	// Each connection runs pg_replication_origin_session_setup after
	// connecting. PostgreSQL 15 lets one session at a time use an origin,
	// so each connection takes the first free one of Origin, Origin#1,
	// Origin#2, ... (SessionOrigin), and creates it if absent
	// (pg_replication_origin_create; sinks starting at once all succeed).
	// Each origin takes one of the server's max_replication_slots origin
	// states: leave room for every sink's pool (pool_max_conns in the DSN,
	// default max(4, CPUs)) beside the slots. Dropping an
	// origin while a capturer has yet to decode its transactions makes
	// them look like anyone's (pgoutput then names no origin).
	//
	// Privileges: superuser, or EXECUTE on pg_replication_origin_create(text)
	// and pg_replication_origin_session_setup(text) (revoked from PUBLIC
	// by default): GRANT EXECUTE ON FUNCTION ... TO the sink's user.
	// Ignored with ReadOnly.
	Origin string
}

// Sink is a PostgreSQL target. Safe for concurrent use.
type Sink struct {
	pool   *pgxpool.Pool
	schema string

	mu     sync.Mutex
	tables map[string]*table
}

// ErrTableNotFound is sink.ErrTableNotFound, under this package's name too.
var ErrTableNotFound = sink.ErrTableNotFound

// New connects to the target and creates tandem's offsets table if needed.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if cfg.StateSchema == "" {
		cfg.StateSchema = "tandem"
	}
	pcfg, err := pgdsn.PoolConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("connect to target: %w", err)
	}
	if cfg.Origin != "" && !cfg.ReadOnly {
		origin := cfg.Origin
		pcfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			return setupOrigin(ctx, conn, origin)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to target: %w", err)
	}
	s := &Sink{pool: pool, schema: cfg.StateSchema, tables: map[string]*table{}}
	if cfg.ReadOnly {
		return s, nil
	}
	if err := s.init(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sink) offsetsTable() string {
	return pgx.Identifier{s.schema, "kafka_offsets"}.Sanitize()
}

func (s *Sink) deadLettersTable() string {
	return pgx.Identifier{s.schema, "dead_letters"}.Sanitize()
}

func (s *Sink) positionsTable() string {
	return pgx.Identifier{s.schema, "source_positions"}.Sanitize()
}

func (s *Sink) backfillsTable() string {
	return pgx.Identifier{s.schema, "backfills"}.Sanitize()
}

func (s *Sink) tombstonesTable() string {
	return pgx.Identifier{s.schema, "tombstones"}.Sanitize()
}

// LoadPosition implements capture/mysql.PositionStore.
func (s *Sink) LoadPosition(ctx context.Context, source string) (string, bool, error) {
	var pos string
	err := s.pool.QueryRow(ctx, `SELECT position FROM `+s.positionsTable()+` WHERE source = $1`, source).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, classified(s.positionsTable(), fmt.Errorf("read the saved position of %s: %w", source, err))
	}
	return pos, true, nil
}

// SavedPosition reads the position saved for source in the target at dsn,
// for checks: unlike New it creates nothing, and a target that has no
// tandem tables yet has no position (found false).
func SavedPosition(ctx context.Context, dsn, source string) (pos string, found bool, err error) {
	conn, err := pgdsn.Connect(ctx, dsn)
	if err != nil {
		return "", false, fmt.Errorf("connect to target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s := &Sink{schema: "tandem"}
	err = conn.QueryRow(ctx, `SELECT position FROM `+s.positionsTable()+` WHERE source = $1`, source).Scan(&pos)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read the saved position of %s: %w", source, err)
	}
	return pos, true, nil
}

// SavePosition implements capture/mysql.PositionStore.
func (s *Sink) SavePosition(ctx context.Context, source, pos string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO `+s.positionsTable()+` (source, position) VALUES ($1, $2)
ON CONFLICT (source) DO UPDATE SET position = EXCLUDED.position, updated_at = now()`, source, pos); err != nil {
		return classified(s.positionsTable(), fmt.Errorf("save the position of %s: %w", source, err))
	}
	return nil
}

// stateLockKey is the advisory lock that creating tandem's tables holds:
// CREATE ... IF NOT EXISTS is not safe against itself (two processes
// starting together on a fresh target both try to insert the schema, and
// one fails on pg_namespace's unique index), so they take turns.
const stateLockKey = 0x74616e64656d73 // 'tandems'

func (s *Sink) init(ctx context.Context) error {
	// One simple-protocol query: one implicit transaction, which the
	// advisory lock lasts.
	sql := `SELECT pg_advisory_xact_lock(` + strconv.FormatInt(stateLockKey, 10) + `);
CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{s.schema}.Sanitize() + `;
CREATE TABLE IF NOT EXISTS ` + s.offsetsTable() + ` (
	group_id    text        NOT NULL,
	topic       text        NOT NULL,
	partition   integer     NOT NULL,
	epoch       text        NOT NULL,
	next_offset bigint      NOT NULL,
	batch_from  bigint      NOT NULL DEFAULT 0,
	updated_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE IF NOT EXISTS ` + s.deadLettersTable() + ` (
	topic       text        NOT NULL,
	partition   integer     NOT NULL,
	"offset"    bigint      NOT NULL,
	mapping     text        NOT NULL,
	reason      text        NOT NULL,
	error       text        NOT NULL,
	record_key  bytea,
	record      bytea,
	created_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mapping, topic, partition, "offset")
);
CREATE TABLE IF NOT EXISTS ` + s.positionsTable() + ` (
	source      text        PRIMARY KEY,
	position    text        NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + s.backfillsTable() + ` (
	source_table text        PRIMARY KEY,
	state        text        NOT NULL,
	after_key    text        NOT NULL DEFAULT '',
	rows         bigint      NOT NULL DEFAULT 0,
	started_at   timestamptz NOT NULL DEFAULT now(),
	updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + s.tombstonesTable() + ` (
	target_table text        NOT NULL,
	row_key      text        NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (target_table, row_key)
);
` + s.cohortTablesDDL()
	if _, err := s.pool.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create tandem's tables in schema %s: %w", pgx.Identifier{s.schema}.Sanitize(), err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}

// Offsets implements sink.Sink.
func (s *Sink) Offsets(ctx context.Context, group, epoch string) ([]sink.Offset, error) {
	rows, err := s.pool.Query(ctx, `SELECT topic, partition, next_offset FROM `+s.offsetsTable()+
		` WHERE group_id = $1 AND epoch = $2 ORDER BY topic, partition`, group, epoch)
	if err != nil {
		return nil, classified(s.offsetsTable(), fmt.Errorf("read stored offsets of group %s: %w", group, err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sink.Offset, error) {
		var o sink.Offset
		err := r.Scan(&o.Topic, &o.Partition, &o.Next)
		return o, err
	})
	if err != nil {
		return nil, classified(s.offsetsTable(), fmt.Errorf("read stored offsets of group %s: %w", group, err))
	}
	return out, nil
}

// SetOffsets overwrites the stored offsets of a group (an operator's reset, or a test's replay).
func (s *Sink) SetOffsets(ctx context.Context, cp sink.Checkpoint) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
	}
	defer tx.Rollback(ctx)
	for _, o := range cp.Offsets {
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.offsetsTable()+` (group_id, topic, partition, epoch, next_offset)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, topic, partition) DO UPDATE SET epoch = EXCLUDED.epoch,
next_offset = EXCLUDED.next_offset, updated_at = now()`, cp.Group, o.Topic, o.Partition, cp.Epoch, o.Next); err != nil {
			return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
	}
	return nil
}

// Apply implements sink.Sink. Failures other than ErrFenced are *sink.Error.
func (s *Sink) Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	err := s.apply(ctx, b, cp)
	if err == nil || errors.Is(err, sink.ErrFenced) {
		return err
	}
	return classified("", err)
}

func (s *Sink) apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	// A batch with cutover's cohorts begins with reading their owners, in
	// its transaction, and leaves out the writes the stream does not own.
	var tx pgx.Tx
	if len(batchCohorts(b)) > 0 {
		var err error
		if tx, err = s.pool.Begin(ctx); err != nil {
			return fmt.Errorf("begin target transaction: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		if b.Writes, err = s.ownedWrites(ctx, tx, b); err != nil {
			return classified(s.cohortsTable(), err)
		}
	}
	stmts, err := s.copyLocks(ctx, b.Writes)
	if err != nil {
		return err
	}
	// A batch of copies only (a backfill's chunk) needs no sqlbatch.Compact:
	// copies of one key after the first change nothing however they are
	// ordered (COPY fails on the second and copyStatement's ON CONFLICT DO
	// NOTHING keeps the first), and there is no delete to order them after.
	rounds := [][]change.Write{b.Writes}
	if !sqlbatch.OnlyCopies(b.Writes) {
		rounds = sqlbatch.Compact(b.Writes)
	}
	for _, round := range rounds {
		st, err := s.statements(ctx, round)
		if err != nil {
			return err
		}
		stmts = append(stmts, st...)
	}
	if len(b.DeadLetters) > 0 {
		stmts = append(stmts, s.deadLetters(b.DeadLetters))
	}
	if len(stmts) == 0 && len(cp.Offsets) == 0 {
		return nil
	}
	if tx == nil {
		if tx, err = s.pool.Begin(ctx); err != nil {
			return fmt.Errorf("begin target transaction: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
	}
	// Statements go in pipelined batches; a copy's COPY runs on its own
	// between them.
	for len(stmts) > 0 {
		i := slices.IndexFunc(stmts, func(st statement) bool { return st.copy != nil })
		if i < 0 {
			break
		}
		if err := sendBatch(ctx, tx, stmts[:i]); err != nil {
			return err
		}
		if err := s.copyRows(ctx, tx, stmts[i]); err != nil {
			return err
		}
		stmts = stmts[i+1:]
	}
	batch := &pgx.Batch{}
	for _, st := range stmts {
		batch.Queue(st.sql, st.args...)
	}
	if len(cp.Offsets) > 0 {
		topics := make([]string, len(cp.Offsets))
		parts := make([]int32, len(cp.Offsets))
		nexts := make([]int64, len(cp.Offsets))
		froms := make([]int64, len(cp.Offsets))
		for i, o := range cp.Offsets {
			topics[i], parts[i], nexts[i], froms[i] = o.Topic, o.Partition, o.Next, o.From
		}
		// The fence: a partition whose stored offset (same cluster) is
		// already past this batch's first offset was applied by another
		// consumer; then fewer rows come back and the transaction is
		// rolled back.
		batch.Queue(`WITH stored AS (
INSERT INTO `+s.offsetsTable()+` AS o (group_id, epoch, topic, partition, next_offset, batch_from)
SELECT $1, $2, * FROM unnest($3::text[], $4::int[], $5::bigint[], $6::bigint[])
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
	next_offset = EXCLUDED.next_offset, batch_from = EXCLUDED.batch_from, epoch = EXCLUDED.epoch, updated_at = now()
WHERE o.epoch <> EXCLUDED.epoch OR o.next_offset <= EXCLUDED.batch_from
RETURNING 1)
SELECT count(*) FROM stored`, cp.Group, cp.Epoch, topics, parts, nexts, froms)
	}
	if batch.Len() > 0 {
		res := tx.SendBatch(ctx, batch)
		if err := execAll(res, stmts); err != nil {
			res.Close()
			return err
		}
		if len(cp.Offsets) > 0 {
			var stored int
			if err := res.QueryRow().Scan(&stored); err != nil {
				res.Close()
				return fmt.Errorf("store offsets of group %s: %w", cp.Group, err)
			}
			if stored < len(cp.Offsets) {
				res.Close()
				return fmt.Errorf("group %s: %w", cp.Group, sink.ErrFenced)
			}
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("apply batch: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit target transaction: %w", err)
	}
	return nil
}

// sendBatch runs statements in tx as one pipelined batch.
func sendBatch(ctx context.Context, tx pgx.Tx, stmts []statement) error {
	if len(stmts) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, st := range stmts {
		batch.Queue(st.sql, st.args...)
	}
	res := tx.SendBatch(ctx, batch)
	if err := execAll(res, stmts); err != nil {
		res.Close()
		return err
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("apply batch: %w", err)
	}
	return nil
}

// execAll reads the result of each of stmts, queued first in res.
func execAll(res pgx.BatchResults, stmts []statement) error {
	for _, st := range stmts {
		if _, err := res.Exec(); err != nil {
			return classifiedWriting(st.table, st.cols, fmt.Errorf("%s %s: %w", st.what, st.table, err))
		}
	}
	return nil
}

// deadLetters stores dead letters; a record stored before is kept as it was.
func (s *Sink) deadLetters(dls []sink.DeadLetter) statement {
	n := len(dls)
	topics, parts, offsets := make([]string, n), make([]int32, n), make([]int64, n)
	mappings, reasons, errs := make([]string, n), make([]string, n), make([]string, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	for i, d := range dls {
		// Text columns are UTF-8: a message quoting a binary record must
		// not fail the batch, and with it every later one.
		topics[i], parts[i], offsets[i] = strings.ToValidUTF8(d.Topic, "\uFFFD"), d.Partition, d.Offset
		mappings[i], reasons[i], errs[i] = strings.ToValidUTF8(d.Mapping, "\uFFFD"), strings.ToValidUTF8(d.Reason, "\uFFFD"), storableText(d.Error)
		keys[i], values[i] = d.Key, d.Value
	}
	return statement{what: "store dead letters in", table: s.deadLettersTable(),
		sql: `INSERT INTO ` + s.deadLettersTable() + ` (topic, partition, "offset", mapping, reason, error, record_key, record)
SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])
ON CONFLICT DO NOTHING`,
		args: []any{topics, parts, offsets, mappings, reasons, errs, keys, values}}
}

// Forget drops cached table descriptions, so the next Apply reads them again
// (after a failed apply, the table may have been created or altered).
func (s *Sink) Forget() {
	s.mu.Lock()
	s.tables = map[string]*table{}
	s.mu.Unlock()
}

type statement struct {
	what, table string
	cols        []string // the columns it writes, if it writes rows
	sql         string
	args        []any
	copy        *copyRows // for a copy: its rows, for COPY; sql is the fallback
}

// statements groups compacted writes into one statement per table, op and column set.
func (s *Sink) statements(ctx context.Context, writes []change.Write) ([]statement, error) {
	groups := sqlbatch.Groups(writes)
	out := make([]statement, 0, len(groups))
	for _, g := range groups {
		t, err := s.describe(ctx, g.Table)
		if err != nil {
			return nil, classified(g.Table, err)
		}
		if g.Op == change.WriteCopy {
			// Rendered when written: as COPY text, or as the INSERT
			// (copyStatement) when COPY cannot take them.
			if err := t.has(g.Table, g.Cols); err != nil {
				return nil, err
			}
			out = append(out, statement{what: change.WriteCopy.String() + " into", table: g.Table, copy: &copyRows{t: t, g: g}})
			continue
		}
		args, params, casts, aliases, err := groupArgs(t, g)
		if err != nil {
			return nil, err
		}
		rows := "SELECT " + strings.Join(casts, ", ") + " FROM unnest(" + strings.Join(params, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")"
		quoted := quoteAll(g.Cols)
		var sql string
		switch g.Op {
		case change.WriteDelete:
			sql = "DELETE FROM " + t.ident + " WHERE (" + strings.Join(quoted, ", ") + ") IN (" + rows + ")"
			out = append(out, statement{what: g.Op.String() + " from", table: g.Table, sql: sql, args: args},
				s.tombstones(g.Table, keyTexts(g.Key, g.Rows)))
			continue
		case change.WriteUpsert, change.WriteInsertIfAbsent:
			sql = "INSERT INTO " + t.ident + " (" + strings.Join(quoted, ", ") + ") " + rows +
				" ON CONFLICT (" + strings.Join(quoteAll(g.Key), ", ") + ")"
			var sets []string
			if g.Op == change.WriteUpsert {
				for _, c := range g.Cols {
					if !slices.Contains(g.Key, c) {
						q := pgx.Identifier{c}.Sanitize()
						sets = append(sets, q+" = EXCLUDED."+q)
					}
				}
			}
			if len(sets) == 0 {
				sql += " DO NOTHING"
			} else {
				sql += " DO UPDATE SET " + strings.Join(sets, ", ")
			}
		default:
			return nil, fmt.Errorf("target %s: unknown write op %v", g.Table, g.Op)
		}
		out = append(out, statement{what: g.Op.String() + " into", table: g.Table, cols: g.Cols, sql: sql, args: args})
	}
	return out, nil
}

// groupArgs renders a group's rows as one text array per column, and the
// SQL that reads them: params ($n::text[]), aliases (cn) and casts
// (u.cn::type, each value cast after unnest, not the array before it:
// text[]::integer[][] would be integer[], and arrays would break).
func groupArgs(t *table, g *sqlbatch.Group) (args []any, params, casts, aliases []string, err error) {
	args = make([]any, len(g.Cols))
	params = make([]string, len(g.Cols))
	casts = make([]string, len(g.Cols))
	aliases = make([]string, len(g.Cols))
	if err := t.has(g.Table, g.Cols); err != nil {
		return nil, nil, nil, nil, err
	}
	for i, c := range g.Cols {
		typ := t.types[c]
		vals := make([]*string, len(g.Rows))
		for j, r := range g.Rows {
			vals[j], err = pgtext.Encode(t.value(c, r[c]))
			if err != nil {
				return nil, nil, nil, nil, classified(g.Table, fmt.Errorf("target %s column %q: %w: %w", g.Table, c, errNoText, err))
			}
		}
		args[i] = vals
		params[i] = fmt.Sprintf("$%d::text[]", i+1)
		aliases[i] = fmt.Sprintf("c%d", i+1)
		casts[i] = fmt.Sprintf("u.c%d::%s", i+1, typ)
	}
	return args, params, casts, aliases, nil
}

// keyTexts returns the change.KeyText of each row's key.
func keyTexts(key []string, rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = tombstoneKey(change.KeyText(key, r))
	}
	return out
}

// maxTombstoneKey is the longest key text a tombstone keeps as it is: a
// btree entry holds at most about 2.7 kB, less the table's name.
const maxTombstoneKey = 1024

// tombstoneKey is how a tombstone names a key: its KeyText, or for a longer
// one "sha256:" and the text's digest in hex (a KeyText starts with "[",
// so the two never meet).
func tombstoneKey(text string) string {
	if len(text) <= maxTombstoneKey {
		return text
	}
	sum := sha256.Sum256([]byte(text))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}

// table is a described target table.
type table struct {
	ident string            // quoted name
	types map[string]string // column -> type name for casts, without typmod
	// indexed caches leadsIndex: columns (joined by NUL) -> whether a
	// btree index of the table starts with them; guarded by Sink.mu.
	indexed map[string]bool
}

// has returns an error naming the first of cols the table lacks.
func (t *table) has(name string, cols []string) error {
	for _, c := range cols {
		if _, ok := t.types[c]; !ok {
			return classified(name, fmt.Errorf("target table %s has no column %q: %w", name, c, sink.ErrColumnNotFound))
		}
	}
	return nil
}

func splitTable(name string) pgx.Identifier {
	if schema, tbl, ok := strings.Cut(name, "."); ok {
		return pgx.Identifier{schema, tbl}
	}
	return pgx.Identifier{name}
}

func (s *Sink) describe(ctx context.Context, name string) (*table, error) {
	s.mu.Lock()
	t, ok := s.tables[name]
	s.mu.Unlock()
	if ok {
		return t, nil
	}
	ident := splitTable(name).Sanitize()
	// typmod -1, not NULL: format_type(bpchar, NULL) is "character", which
	// means char(1), and the cast to it would cut values to one character.
	rows, err := s.pool.Query(ctx, `SELECT a.attname, format_type(a.atttypid, -1)
FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, ident)
	if err != nil {
		return nil, fmt.Errorf("describe target table %s: %w", name, err)
	}
	t = &table{ident: ident, types: map[string]string{}}
	for rows.Next() {
		var col, typ string
		if err := rows.Scan(&col, &typ); err != nil {
			return nil, fmt.Errorf("describe target table %s: %w", name, err)
		}
		t.types[col] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe target table %s: %w", name, err)
	}
	if len(t.types) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTableNotFound, name)
	}
	s.mu.Lock()
	s.tables[name] = t
	s.mu.Unlock()
	return t, nil
}

// classified wraps err in a *sink.Error naming table (or the table
// PostgreSQL names) and why it failed; an error classified already is kept.
func classified(table string, err error) error {
	return classifiedWriting(table, nil, err)
}

// classifiedWriting is classified for the error of a statement that writes
// cols of table's rows: with them it can tell a NULL the row holds from a
// NOT NULL column the write leaves out (rowFault).
func classifiedWriting(table string, cols []string, err error) error {
	var se *sink.Error
	if errors.As(err, &se) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && table == "" {
		table = pgErr.TableName
	}
	return &sink.Error{Table: table, Reason: reason(err), Row: rowFault(err, cols), Err: err}
}

// errNoText is wrapped when a value has no text form PostgreSQL could read.
var errNoText = errors.New("value has no PostgreSQL text form")

// rowFault reports whether err is PostgreSQL refusing the values of a row
// a statement writing cols writes (sink.Error.Row): a data exception (class
// 22: too long, out of range, invalid text for the type, a NUL byte in
// text), a CHECK violation (23514), a value too large to index (54000), or
// a NOT NULL violation (23502) of one of cols. A NOT NULL column the write
// leaves out is the table's (or the mapping's) fault, as are unique and
// foreign-key violations: other rows may mend those.
func rowFault(err error, cols []string) bool {
	if errors.Is(err, errNoText) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "22"), pgErr.Code == "23514", pgErr.Code == "54000":
		return true
	case pgErr.Code == "23502":
		return slices.Contains(cols, pgErr.ColumnName)
	}
	return false
}

// storableText is s as a text column stores it: valid UTF-8, without NUL
// bytes (shown as \0), so that a message quoting a bad value can be kept.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", `\0`)
}

// reason names why a write failed, for tandem_apply_errors_total.
func reason(err error) sink.Reason {
	switch {
	case errors.Is(err, sink.ErrTableNotFound):
		return sink.ReasonTableMissing
	case errors.Is(err, sink.ErrColumnNotFound):
		return sink.ReasonColumnMissing
	case errors.Is(err, errNoText):
		return sink.ReasonData
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch class := pgErr.Code[:min(2, len(pgErr.Code))]; {
		case pgErr.Code == "42P01":
			return sink.ReasonTableMissing
		case pgErr.Code == "42703":
			return sink.ReasonColumnMissing
		case pgErr.Code == "42501":
			return sink.ReasonPermission
		case pgErr.Code == "42P10":
			return sink.ReasonNoUniqueKey
		case class == "23":
			return sink.ReasonConstraint
		case class == "22":
			return sink.ReasonData
		case class == "08":
			return sink.ReasonConnection
		}
		return sink.Reason("sql_" + pgErr.Code)
	}
	var netErr interface{ Timeout() bool }
	if errors.As(err, &netErr) || pgconn.SafeToRetry(err) {
		return sink.ReasonConnection
	}
	return sink.ReasonOther
}
