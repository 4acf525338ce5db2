package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/internal/sqlbatch"
)

var (
	_ sink.Sink          = (*Sink)(nil)
	_ sink.BackfillStore = (*Sink)(nil)
)

// Config says where to write.
type Config struct {
	DSN         string // never logged: mysql://user:pass@host:3306/db or user:pass@tcp(host:3306)/db
	StateSchema string // database of tandem's own tables; default "tandem"
	// ReadOnly connects without creating tandem's own tables, for what
	// only reads the target (check, preview, dlq list, lookups there).
	ReadOnly bool
	// Origin, when set, marks every transaction the sink commits (Apply
	// with its copies, dead letters and tombstones, offsets, positions,
	// backfill progress) as tandem's own, so that a binlog capturer of
	// this database skips it (capture/mysql.Config.SkipOrigins) and a
	// two-way replication does not echo it back: the transaction first
	// sets @tandem_origin to Origin (guard triggers let such sessions
	// through) and upserts its connection's row (CONNECTION_ID(), Origin)
	// in table origin of the state database (OriginTable), created with
	// the other state tables, so that the transaction's first rows event
	// in the binlog names Origin. At most 64 characters. Ignored with
	// ReadOnly.
	Origin string
}

// DefaultStateSchema is the database of tandem's own tables when
// Config.StateSchema is empty.
const DefaultStateSchema = "tandem"

// Validate reports what is wrong with the configuration, never the password.
func (c Config) Validate() error {
	if c.DSN == "" {
		return errors.New("mysql target: no DSN")
	}
	if _, err := mysqlurl.Parse(c.DSN); err != nil {
		return fmt.Errorf("mysql target: %w", err)
	}
	if len(c.Origin) > 64 {
		return fmt.Errorf("mysql target: origin %q is longer than 64 characters", c.Origin)
	}
	if len(c.StateSchema) > 64 {
		return fmt.Errorf("mysql target: state database name %q is longer than MySQL's 64 characters", c.StateSchema)
	}
	return nil
}

// String describes the target without its password.
func (c Config) String() string {
	return fmt.Sprintf("mysql target %s (state database %s)", describeDSN(c.DSN), c.stateSchema())
}

// stateSchema is StateSchema, or DefaultStateSchema when it is empty.
func (c Config) stateSchema() string {
	if c.StateSchema == "" {
		return DefaultStateSchema
	}
	return c.StateSchema
}

// GoString is String, so that %#v does not print the DSN either.
func (c Config) GoString() string { return c.String() }

// LogValue is String, so that slog handlers (JSON ones too) do not log the DSN.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// describeDSN names user, address and database of dsn, not its password.
func describeDSN(dsn string) string {
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		return "<unparsable DSN>"
	}
	return fmt.Sprintf("%s@%s/%s", cfg.User, cfg.Addr, cfg.DBName)
}

// strictMode is the sql_mode of every session: a value that does not fit
// its column is an error instead of a warning and a mangled value (strict),
// for zero and partly-zero dates too; a 0 written to an AUTO_INCREMENT
// column is stored as 0, not replaced by the next sequence value (a
// replicated row keeps its key). Identifiers are always backtick-quoted, so
// ANSI_QUOTES is neither needed nor harmful.
const strictMode = "'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO'"

// driverConfig parses dsn into the driver configuration the sink runs on:
// strict and UTC, whatever the DSN says.
func driverConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysqlurl.Parse(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Params["sql_mode"] = strictMode
	// Times are written as UTC text: TIMESTAMP columns must read them so,
	// whatever time_zone the DSN asks for.
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}

// Sink is a MySQL or MariaDB target. Safe for concurrent use.
type Sink struct {
	db        *sql.DB
	where     string // user@host:port/db, for String
	state     string // state database name
	origin    string // Config.Origin: marks every write transaction (begin)
	isolation sql.IsolationLevel

	mu       sync.Mutex
	tables   map[string]*table
	lockRows map[string]bool // tables whose copy_locks row exists (ensureCopyLockRows)
}

// ErrTableNotFound is sink.ErrTableNotFound, under this package's name too.
var ErrTableNotFound = sink.ErrTableNotFound

// ErrNoUniqueKey is wrapped when an upsert's key is not exactly the columns
// of a primary key or unique index: ON DUPLICATE KEY UPDATE would then never
// find the row and insert duplicates.
var ErrNoUniqueKey = errors.New("target table has no primary key or unique index on exactly the write's key columns")

// New connects to the target and creates tandem's state database and
// tables if they do not exist yet. The user needs the CREATE privilege for
// that only when something is missing.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	cfg.StateSchema = cfg.stateSchema()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dc, err := driverConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("mysql target: %w", err)
	}
	connector, err := mysqlurl.Connector(dc)
	if err != nil {
		return nil, fmt.Errorf("mysql target %s: %w", describeDSN(cfg.DSN), err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Sink{db: db, where: describeDSN(cfg.DSN), state: cfg.StateSchema,
		isolation: sql.LevelReadCommitted, tables: map[string]*table{}}
	if cfg.ReadOnly {
		return s, nil
	}
	s.origin = cfg.Origin
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// String describes the sink without its password.
func (s *Sink) String() string {
	return fmt.Sprintf("mysql target %s (state database %s)", s.where, s.state)
}

func (s *Sink) offsetsTable() string     { return mysqlurl.QuoteIdent(s.state) + ".`kafka_offsets`" }
func (s *Sink) deadLettersTable() string { return mysqlurl.QuoteIdent(s.state) + ".`dead_letters`" }
func (s *Sink) positionsTable() string   { return mysqlurl.QuoteIdent(s.state) + ".`source_positions`" }
func (s *Sink) backfillsTable() string   { return mysqlurl.QuoteIdent(s.state) + ".`backfills`" }
func (s *Sink) tombstonesTable() string  { return mysqlurl.QuoteIdent(s.state) + ".`tombstones`" }
func (s *Sink) copyLocksTable() string   { return mysqlurl.QuoteIdent(s.state) + ".`copy_locks`" }

// stateTables are tandem's own tables: name -> definition. Names are
// case-sensitive ASCII (utf8mb4_bin): Kafka topics "Orders" and "orders"
// are two topics.
var stateTables = map[string]string{
	"kafka_offsets": `(
	group_id    VARCHAR(255) NOT NULL,
	topic       VARCHAR(255) NOT NULL,
	` + "`partition`" + ` INT NOT NULL,
	epoch       VARCHAR(255) NOT NULL,
	next_offset BIGINT NOT NULL,
	batch_from  BIGINT NOT NULL DEFAULT 0,
	updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (group_id, topic, ` + "`partition`" + `)
)`,
	// One copy per mapping and record: two mappings reading one topic may
	// both fail on a record.
	"dead_letters": `(
	topic       VARCHAR(255) NOT NULL,
	` + "`partition`" + ` INT NOT NULL,
	` + "`offset`" + `    BIGINT NOT NULL,
	mapping     VARCHAR(255) NOT NULL,
	reason      VARCHAR(255) NOT NULL,
	error       MEDIUMTEXT NOT NULL,
	record_key  LONGBLOB,
	record      LONGBLOB,
	created_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (mapping, topic, ` + "`partition`, `offset`" + `)
)`,
	"source_positions": `(
	source      VARCHAR(255) NOT NULL,
	position    MEDIUMTEXT NOT NULL,
	updated_at  DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (source)
)`,
	// Backfill progress per source table (see BackfillProgress). ROWS is
	// a reserved word on MySQL 8: always quoted.
	"backfills": `(
	source_table VARCHAR(255) NOT NULL,
	state        VARCHAR(16) NOT NULL,
	after_key    MEDIUMTEXT NOT NULL,
	` + "`rows`" + `       BIGINT NOT NULL DEFAULT 0,
	started_at   DATETIME(6) NOT NULL,
	updated_at   DATETIME(6) NOT NULL,
	PRIMARY KEY (source_table)
)`,
	// The keys deleted while a backfill was active. A key's text
	// (change.KeyText) may be longer than an index can hold (InnoDB keys
	// stop at 3072 bytes; a utf8mb4 character takes 4): the primary key
	// is its SHA-256 beside the table, and the text is kept for people.
	"tombstones": `(
	target_table VARCHAR(255) NOT NULL,
	key_hash     BINARY(32) NOT NULL,
	row_key      MEDIUMTEXT NOT NULL,
	created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (target_table, key_hash)
)`,
	// One row per target table that backfill copies into: the copy lock
	// (see Sink.copyLocks).
	"copy_locks": `(
	target_table VARCHAR(255) NOT NULL,
	PRIMARY KEY (target_table)
)`,
	// Cutover's state (see sink.CohortStore).
	"cohorts": `(
	cohort       VARCHAR(255) NOT NULL,
	owner        VARCHAR(16) NOT NULL CHECK (owner IN ('old', 'new', 'switching')),
	switching_to VARCHAR(16) NULL CHECK (switching_to IN ('old', 'new')),
	version      BIGINT NOT NULL,
	changed_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (cohort)
)`,
	"misrouted": `(
	id      BIGINT NOT NULL AUTO_INCREMENT,
	cohort  VARCHAR(255) NOT NULL,
	side    VARCHAR(16) NOT NULL,
	tbl     VARCHAR(255) NOT NULL,
	row_key MEDIUMTEXT NOT NULL,
	at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	PRIMARY KEY (id)
)`,
	"heartbeats": `(
	stream      VARCHAR(255) NOT NULL,
	lag_seconds DOUBLE NOT NULL,
	updated_at  DATETIME(6) NOT NULL,
	PRIMARY KEY (stream)
)`,
	"drift": `(
	mapping  VARCHAR(255) NOT NULL,
	kind     VARCHAR(32) NOT NULL,
	` + "`rows`" + ` BIGINT NOT NULL,
	swept_at DATETIME(6) NOT NULL,
	PRIMARY KEY (mapping, kind)
)`,
}

// stateTableNames are stateTables' keys in a fixed order.
var stateTableNames = []string{"kafka_offsets", "dead_letters", "source_positions", "backfills", "tombstones", "copy_locks",
	"cohorts", "misrouted", "heartbeats", "drift"}

func (s *Sink) init(ctx context.Context) error {
	names := stateTableNames
	if s.origin != "" {
		names = append(slices.Clip(names), OriginTable)
	}
	missing, err := missingStateTables(ctx, s.db, s.state, names)
	if err != nil {
		return classified(s.offsetsTable(), fmt.Errorf("look for tandem's tables in database %s: %w", mysqlurl.QuoteIdent(s.state), err))
	}
	if len(missing) > 0 {
		// IF NOT EXISTS: another tandem process may create them meanwhile.
		if _, err := s.db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+mysqlurl.QuoteIdent(s.state)+
			" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
			return classified(s.offsetsTable(), fmt.Errorf("create database %s for tandem's tables: %w", mysqlurl.QuoteIdent(s.state), err))
		}
	}
	for _, name := range missing {
		ident := mysqlurl.QuoteIdent(s.state) + "." + mysqlurl.QuoteIdent(name)
		def, ok := stateTables[name]
		if !ok {
			def = originTableDef
		}
		if _, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+ident+" "+def+
			" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"); err != nil {
			return classified(ident, fmt.Errorf("create table %s: %w", ident, err))
		}
	}
	// READ COMMITTED takes no gap locks, so consumers writing disjoint keys
	// of one table do not deadlock on the gaps between them. InnoDB refuses
	// it when the binary log is on in STATEMENT format; then REPEATABLE
	// READ, whose deadlocks Apply retries.
	var logBin int
	var format string
	if err := s.db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format").Scan(&logBin, &format); err != nil {
		return classified("", fmt.Errorf("read the target's binlog settings: %w", err))
	}
	if logBin != 0 && strings.EqualFold(format, "STATEMENT") {
		s.isolation = sql.LevelRepeatableRead
	}
	return nil
}

// missingStateTables returns the tables of names that database state lacks.
func missingStateTables(ctx context.Context, q querier, state string, names []string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, state)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Close closes the connection pool.
func (s *Sink) Close() error {
	return s.db.Close()
}

// Forget drops cached table descriptions, so the next Apply reads them again
// (after a failed apply, the table may have been created or altered).
func (s *Sink) Forget() {
	s.mu.Lock()
	s.tables = map[string]*table{}
	s.mu.Unlock()
}

// Offsets implements sink.Sink. Failures are *sink.Error.
func (s *Sink) Offsets(ctx context.Context, group, epoch string) ([]sink.Offset, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT topic, `partition`, next_offset FROM "+s.offsetsTable()+
		" WHERE group_id = ? AND epoch = ? ORDER BY topic, `partition`", group, epoch)
	if err != nil {
		return nil, classified(s.offsetsTable(), fmt.Errorf("read stored offsets of group %s: %w", group, err))
	}
	defer rows.Close()
	var out []sink.Offset
	for rows.Next() {
		var o sink.Offset
		if err := rows.Scan(&o.Topic, &o.Partition, &o.Next); err != nil {
			return nil, classified(s.offsetsTable(), fmt.Errorf("read stored offsets of group %s: %w", group, err))
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, classified(s.offsetsTable(), fmt.Errorf("read stored offsets of group %s: %w", group, err))
	}
	return out, nil
}

// SetOffsets overwrites the stored offsets of a group (an operator's reset,
// or a test's replay), backwards too, in one transaction.
func (s *Sink) SetOffsets(ctx context.Context, cp sink.Checkpoint) error {
	offsets, err := sortedOffsets(cp.Offsets)
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
	}
	tx, err := s.begin(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
	}
	defer tx.Rollback()
	for _, st := range s.offsetRows(cp.Group, cp.Epoch, offsets,
		" ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)") {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reset offsets of group %s: %w", cp.Group, err)
	}
	return nil
}

// offsetRows inserts offsets of group and epoch into the offsets table,
// then suffix (an ON DUPLICATE KEY clause, or nothing).
func (s *Sink) offsetRows(group, epoch string, offsets []sink.Offset, suffix string) []statement {
	const cols = 7
	var out []statement
	for lo := 0; lo < len(offsets); {
		hi := min(len(offsets), lo+maxPlaceholders/cols)
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + s.offsetsTable() + " (group_id, topic, `partition`, epoch, next_offset, batch_from, updated_at) VALUES ")
		args := make([]any, 0, (hi-lo)*cols)
		for i, o := range offsets[lo:hi] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6))")
			args = append(args, group, o.Topic, o.Partition, epoch, o.Next, o.From)
		}
		sb.WriteString(suffix)
		out = append(out, statement{what: "store offsets in", table: s.offsetsTable(), sql: sb.String(), args: args})
		lo = hi
	}
	return out
}

// sortedOffsets returns offsets ordered by topic and partition, the order
// in which every Apply locks them (so that two never wait on each other),
// and refuses a partition named twice.
func sortedOffsets(offsets []sink.Offset) ([]sink.Offset, error) {
	out := slices.Clone(offsets)
	slices.SortFunc(out, func(a, b sink.Offset) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for i := 1; i < len(out); i++ {
		if out[i].Topic == out[i-1].Topic && out[i].Partition == out[i-1].Partition {
			return nil, fmt.Errorf("checkpoint names topic %s partition %d twice", out[i].Topic, out[i].Partition)
		}
	}
	return out, nil
}

// maxAttempts bounds how often Apply runs a transaction that lost a
// deadlock or a race for a new offsets row.
const maxAttempts = 5

// errOffsetsRace is returned by fence when another transaction inserted an
// offsets row this one found missing: the next attempt reads it (and is
// most likely fenced off by it).
var errOffsetsRace = errors.New("another consumer stored offsets of the same partition meanwhile")

// Apply implements sink.Sink. Failures other than ErrFenced are *sink.Error.
func (s *Sink) Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	err := s.apply(ctx, b, cp)
	if err == nil || errors.Is(err, sink.ErrFenced) {
		return err
	}
	return classified("", err)
}

func (s *Sink) apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	offsets, err := sortedOffsets(cp.Offsets)
	if err != nil {
		return fmt.Errorf("group %s: %w", cp.Group, err)
	}
	if err := s.ensureCopyLockRows(ctx, sqlbatch.CopyLocks(b.Writes)); err != nil {
		return err
	}
	// A batch with cutover's cohorts has its statements made in each
	// attempt's transaction, from the writes whose owners it read there.
	var stmts []statement
	if len(batchCohorts(b)) == 0 {
		if stmts, err = s.batchStatements(ctx, b); err != nil {
			return err
		}
		if len(stmts) == 0 && len(offsets) == 0 {
			return nil
		}
		b = sink.Batch{}
	}
	for attempt := 1; ; attempt++ {
		err := s.applyOnce(ctx, b, stmts, cp.Group, cp.Epoch, offsets)
		if err == nil || attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// batchStatements returns the statements that write b: the copy locks,
// the writes, the dead letters.
func (s *Sink) batchStatements(ctx context.Context, b sink.Batch) ([]statement, error) {
	stmts := s.copyLocks(sqlbatch.CopyLocks(b.Writes))
	for _, round := range sqlbatch.Compact(b.Writes) {
		st, err := s.statements(ctx, round)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st...)
	}
	if len(b.DeadLetters) > 0 {
		stmts = append(stmts, s.deadLetters(b.DeadLetters)...)
	}
	return stmts, nil
}

// applyOnce runs one transaction: the fence, the statements, the commit.
// A batch b with cohorts (see ownedWrites) is written by the statements
// made of its owned writes after the fence; else stmts are.
func (s *Sink) applyOnce(ctx context.Context, b sink.Batch, stmts []statement, group, epoch string, offsets []sink.Offset) error {
	// The origin's marker first (begin: a row of the connection's own),
	// then the fence: a batch that is refused writes nothing, and two
	// consumers of one partition queue on its offsets row before they touch
	// any other.
	tx, err := s.begin(ctx, &sql.TxOptions{Isolation: s.isolation})
	if err != nil {
		return fmt.Errorf("begin target transaction: %w", err)
	}
	defer tx.Rollback()
	if len(offsets) > 0 {
		if err := s.fence(ctx, tx, group, epoch, offsets); err != nil {
			return err
		}
	}
	if len(batchCohorts(b)) > 0 {
		owned, err := s.ownedWrites(ctx, tx, b)
		if err != nil {
			return classified(s.cohortsTable(), err)
		}
		if stmts, err = s.batchStatements(ctx, sink.Batch{Writes: owned, DeadLetters: b.DeadLetters}); err != nil {
			return err
		}
	}
	var active *bool // whether a backfill is active, once read
	for _, st := range stmts {
		if st.copies != nil {
			if err := s.writeCopies(ctx, tx, st.copies); err != nil {
				return err
			}
			continue
		}
		if st.whileBackfill {
			if active == nil {
				a, err := s.backfillActive(ctx, tx)
				if err != nil {
					return err
				}
				active = &a
			}
			if !*active {
				continue
			}
		}
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return classified(st.table, fmt.Errorf("%s %s: %w", st.what, st.table, err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit target transaction: %w", err)
	}
	return nil
}

// fence locks the stored offsets rows of group's partitions, refuses the
// batch (ErrFenced) when one of the same epoch is past the batch's start on
// its partition, and stores the new offsets.
func (s *Sink) fence(ctx context.Context, tx *sql.Tx, group, epoch string, offsets []sink.Offset) error {
	type part struct {
		topic string
		p     int32
	}
	type stored struct {
		epoch string
		next  int64
	}
	found := map[part]stored{}
	const perRow = 3
	for lo := 0; lo < len(offsets); {
		hi := min(len(offsets), lo+maxPlaceholders/perRow)
		conds := make([]string, 0, hi-lo)
		args := make([]any, 0, (hi-lo)*perRow)
		for _, o := range offsets[lo:hi] {
			conds = append(conds, "(group_id = ? AND topic = ? AND `partition` = ?)")
			args = append(args, group, o.Topic, o.Partition)
		}
		// A locking read sees the newest committed row, whatever the
		// transaction's snapshot, and holds it until commit.
		rows, err := tx.QueryContext(ctx, "SELECT topic, `partition`, epoch, next_offset FROM "+s.offsetsTable()+
			" WHERE "+strings.Join(conds, " OR ")+" FOR UPDATE", args...)
		if err != nil {
			return classified(s.offsetsTable(), fmt.Errorf("lock stored offsets of group %s: %w", group, err))
		}
		for rows.Next() {
			var k part
			var v stored
			if err := rows.Scan(&k.topic, &k.p, &v.epoch, &v.next); err != nil {
				rows.Close()
				return classified(s.offsetsTable(), fmt.Errorf("lock stored offsets of group %s: %w", group, err))
			}
			found[k] = v
		}
		if err := rows.Close(); err != nil {
			return classified(s.offsetsTable(), fmt.Errorf("lock stored offsets of group %s: %w", group, err))
		}
		if err := rows.Err(); err != nil {
			return classified(s.offsetsTable(), fmt.Errorf("lock stored offsets of group %s: %w", group, err))
		}
		lo = hi
	}
	var fresh, known []sink.Offset
	for _, o := range offsets {
		st, ok := found[part{o.Topic, o.Partition}]
		switch {
		case !ok:
			fresh = append(fresh, o)
		case st.epoch == epoch && st.next > o.From:
			return fmt.Errorf("group %s topic %s partition %d: stored offset %d is past the batch's first offset %d: %w",
				group, o.Topic, o.Partition, st.next, o.From, sink.ErrFenced)
		default:
			known = append(known, o)
		}
	}
	// Rows found are locked: overwrite them.
	for _, st := range s.offsetRows(group, epoch, known, " ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), "+
		"next_offset = VALUES(next_offset), batch_from = VALUES(batch_from), updated_at = VALUES(updated_at)") {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			return classified(st.table, fmt.Errorf("store offsets of group %s: %w", group, err))
		}
	}
	// Rows not found were not locked (READ COMMITTED locks no gaps): a plain
	// INSERT waits for a transaction inserting the same row and then fails
	// on the duplicate, rather than overwriting what it stored unfenced.
	for _, st := range s.offsetRows(group, epoch, fresh, "") {
		if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
			if errNumber(err) == errDupEntry {
				return fmt.Errorf("store offsets of group %s: %w: %w", group, errOffsetsRace, err)
			}
			return classified(st.table, fmt.Errorf("store offsets of group %s: %w", group, err))
		}
	}
	return nil
}

// retryable reports whether err rolled back a transaction that may succeed
// when run again.
func retryable(err error) bool {
	return errors.Is(err, errOffsetsRace) || errNumber(err) == errDeadlock
}

// LoadPosition implements capture/mysql.PositionStore.
func (s *Sink) LoadPosition(ctx context.Context, source string) (pos string, found bool, err error) {
	err = s.db.QueryRowContext(ctx, "SELECT position FROM "+s.positionsTable()+" WHERE source = ?", source).Scan(&pos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, classified(s.positionsTable(), fmt.Errorf("load position of source %s: %w", source, err))
	}
	return pos, true, nil
}

// SavePosition implements capture/mysql.PositionStore: one upsert, committed on
// its own (with an origin, in a marked transaction).
func (s *Sink) SavePosition(ctx context.Context, source, pos string) error {
	if err := s.exec(ctx, "INSERT INTO "+s.positionsTable()+" (source, position, updated_at) VALUES (?, ?, UTC_TIMESTAMP(6))"+
		" ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)", source, pos); err != nil {
		return classified(s.positionsTable(), fmt.Errorf("save position of source %s: %w", source, err))
	}
	return nil
}
