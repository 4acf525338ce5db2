// Package connect is the one place that maps source.kind and target.kind
// (tandem.yaml) to implementations: capture/postgres or capture/mysql for
// the source, sink/postgres or sink/mysql for the target, and the plain SQL
// connections of consistency checks. Every other package sees the
// contracts only; the wiring (internal/app) and cmd/tandem ask this
// package for endpoints.
//
// The contracts both implementations of a kind satisfy are checked at
// compile time below (Source, Target, Reader). A few capabilities exist on
// one kind only (sink.TextCopier on PostgreSQL), or in other forms on each
// (reconcile.KindChunkHasher and KindRangeHasher, whose kinds differ):
// they are optional interfaces, asserted at compile time on the
// implementations that have them and found at run time by their consumer,
// as franz-go's optional hooks are.
package connect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/capture"
	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/sink"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/transform"
)

// Target is a target database as the roles use it: rows and offsets
// (apply), lookups (transform), a slot-less capturer's position, backfill
// progress and tombstones, dead letters, and reads for reconcile.
type Target interface {
	apply.Sink
	transform.Lookuper
	mycapture.PositionStore
	sink.BackfillStore
	sink.DeadLetterStore
	sink.DriftStore
	reconcile.RowReader
}

// Source is a capturer the roles can set up and stream from.
type Source interface {
	capture.Source
	// Setup prepares the source (slot, publication, start position).
	Setup(ctx context.Context) error
}

// Reader reads the source's tables outside the stream: backfill chunks
// (verbatim too), the source's load, single rows for reconcile, and
// locked rows for a re-sync.
type Reader interface {
	backfill.TextReader
	backfill.LoadReader
	resync.RowLocker
	reconcile.Source
	// Close releases the reader's connections.
	Close() error
}

var (
	_ Target                    = (*sinkpg.Sink)(nil)
	_ Target                    = (*sinkmysql.Sink)(nil)
	_ sink.TextCopier           = (*sinkpg.Sink)(nil)
	_ reconcile.RangeHasher     = (*sinkpg.Sink)(nil)
	_ reconcile.KindRangeHasher = (*sinkpg.Sink)(nil)
	_ reconcile.KindRangeHasher = (*sinkmysql.Sink)(nil)
	_ Source                    = (*pgcapture.Source)(nil)
	_ Source                    = (*mycapture.Source)(nil)
	_ Reader                    = (*pgcapture.TableReader)(nil)
	_ Reader                    = (*mycapture.TableReader)(nil)
	_ reconcile.ChunkHasher     = (*pgcapture.TableReader)(nil)
	_ reconcile.KindChunkHasher = (*pgcapture.TableReader)(nil)
	_ reconcile.KindChunkHasher = (*mycapture.TableReader)(nil)
)

// unsupported is the error of a kind that has no implementation; config
// validation rejects such kinds first, so this is for configs built in code.
func unsupported(role, kind string) error {
	return fmt.Errorf("%s kind %q is not supported (mysql, postgres are)", role, kind)
}

// OpenTarget connects to the configured target, creating tandem's tables
// there when missing.
func OpenTarget(ctx context.Context, cfg *config.Config) (Target, error) {
	return openTarget(ctx, cfg, false)
}

// OpenTargetReadOnly connects to the configured target to read it only:
// nothing is created there (check, preview, lookups outside a run).
func OpenTargetReadOnly(ctx context.Context, cfg *config.Config) (Target, error) {
	return openTarget(ctx, cfg, true)
}

func openTarget(ctx context.Context, cfg *config.Config, readOnly bool) (Target, error) {
	dsn, state := cfg.Target.DSN.Value(), cfg.Target.StateSchema
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.New(ctx, sinkpg.Config{DSN: dsn, StateSchema: state, ReadOnly: readOnly, Origin: origin(cfg, OriginForward)})
	case config.KindMySQL:
		return sinkmysql.New(ctx, sinkmysql.Config{DSN: dsn, StateSchema: state, ReadOnly: readOnly, Origin: origin(cfg, OriginForward)})
	}
	return nil, unsupported("target", cfg.Target.Kind)
}

// Peer is the host:port of the server of a DSN of kind, for log lines and
// errors that must say which server did not answer (never the DSN, which
// may hold a password); "" when dsn does not parse.
func Peer(kind, dsn string) string {
	switch kind {
	case config.KindPostgres:
		return pgdsn.PeerOf(dsn)
	case config.KindMySQL:
		if c, err := mysqlurl.Parse(dsn); err == nil {
			return c.Addr
		}
	}
	return ""
}

// SourceNeedsStore reports whether the source keeps its position in the
// target (a binlog has no slot).
func SourceNeedsStore(cfg *config.Config) bool { return cfg.Source.Kind == config.KindMySQL }

// PositionKey names a MySQL capture's saved position: one per topic
// prefix, so migrations sharing a target keep theirs apart.
func PositionKey(cfg *config.Config) string { return "mysql:" + cfg.Kafka.TopicPrefix }

// SourceTables returns the configured source tables.
func SourceTables(cfg *config.Config) []change.Table {
	tables := make([]change.Table, len(cfg.Source.Tables))
	for i, t := range cfg.Source.Tables {
		schema, name, _ := strings.Cut(t, ".")
		tables[i] = change.Table{Schema: schema, Name: name}
	}
	return tables
}

// OpenSource builds the configured capturer; store is where a MySQL
// capturer keeps its position.
func OpenSource(cfg *config.Config, store mycapture.PositionStore, log *slog.Logger, m *capture.Metrics) (Source, error) {
	switch cfg.Source.Kind {
	case config.KindPostgres:
		return pgSource(cfg, pgcapture.WithLogger(log), pgcapture.WithMetrics(m))
	case config.KindMySQL:
		c := mycapture.Config{
			DSN: cfg.Source.DSN.Value(), ServerID: cfg.Source.MySQL.ServerID, Tables: SourceTables(cfg),
			Store: store, StoreKey: PositionKey(cfg), Timeout: cfg.Source.StreamTimeout,
		}
		if cfg.Cutover != nil {
			c.SkipOrigins, c.OriginTable = skipTandem, change.Table{Schema: cfg.Target.StateSchema, Name: sinkmysql.OriginTable}
			c.SaveInterval, c.IdleAckInterval = drainInterval, drainInterval
		}
		return mycapture.New(c, mycapture.WithLogger(log), mycapture.WithMetrics(m))
	}
	return nil, unsupported("source", cfg.Source.Kind)
}

func pgSource(cfg *config.Config, opts ...pgcapture.Option) (*pgcapture.Source, error) {
	c := pgcapture.Config{
		DSN: cfg.Source.DSN.Value(), Slot: cfg.Source.Postgres.Slot, Publication: cfg.Source.Postgres.Publication, Tables: SourceTables(cfg),
		SilenceTimeout: cfg.Source.StreamTimeout,
	}
	if cfg.Cutover != nil {
		c.SkipOrigins, c.StatusInterval = skipTandem, drainInterval
	}
	return pgcapture.New(c, opts...)
}

// Acked says where the source stands, for the last log line ("" for none).
func Acked(src Source) string {
	switch s := src.(type) {
	case *pgcapture.Source:
		return s.Acked().String()
	case *mycapture.Source:
		return s.Acked().String()
	}
	return ""
}

// OpenReader opens the configured source's table reader, the one a
// backfill copies with. It reads only: opening it creates nothing in the
// source or the target.
func OpenReader(ctx context.Context, cfg *config.Config) (Reader, error) {
	switch cfg.Source.Kind {
	case config.KindPostgres:
		return pgcapture.NewTableReader(ctx, cfg.Source.DSN.Value())
	case config.KindMySQL:
		return mycapture.NewTableReader(ctx, cfg.Source.DSN.Value())
	}
	return nil, unsupported("source", cfg.Source.Kind)
}

// ServerText reports whether the source's verbatim chunks are the
// server's own text (PostgreSQL's COPY TO), rather than tandem's encoding
// of decoded values (MySQL): see backfill's verbatim copies.
func ServerText(cfg *config.Config) bool { return cfg.Source.Kind == config.KindPostgres }

// Encoder is the envelope encoder of the configured source.
func Encoder(cfg *config.Config, version string) *change.Encoder {
	connector, db := "postgresql", ""
	dsn := cfg.Source.DSN.Value()
	if cfg.Source.Kind == config.KindMySQL {
		connector = "mysql" // as Debezium names its connectors
		if c, err := mysqlurl.Parse(dsn); err == nil {
			db = c.DBName
		}
	} else if c, err := pgconn.ParseConfig(dsn); err == nil { // else the source connection reports the bad DSN
		db = c.Database
	}
	env := cfg.Kafka.Envelope
	return &change.Encoder{Version: version, Connector: connector, Name: cfg.Kafka.TopicPrefix, DB: db,
		Decimal: change.DecimalMode(env.DecimalHandling), Time: change.TimeMode(env.TimePrecision),
		Tombstones: env.Tombstones(), Schemas: env.Schemas()}
}

// StreamStarted checks that the stream's start position exists, for a
// backfill process without the capture role: the slot (PostgreSQL), or the
// binlog position saved in tgt (MySQL).
func StreamStarted(ctx context.Context, cfg *config.Config, tgt Target) error {
	if cfg.Source.Kind == config.KindMySQL {
		_, found, err := tgt.LoadPosition(ctx, PositionKey(cfg))
		if err != nil {
			return fmt.Errorf("backfill: read the stream's saved position: %w", err)
		}
		if !found {
			return errors.New("backfill: the stream has no start position yet: start `tandem capture` (or `tandem run`) first, so that no change made during the copy is missed")
		}
		return nil
	}
	src, err := pgSource(cfg)
	if err != nil {
		return err
	}
	exists, err := src.SlotExists(ctx)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if !exists {
		return fmt.Errorf("backfill: replication slot %s does not exist yet: start `tandem capture` (or `tandem run`) first, so that no change made during the copy is missed", cfg.Source.Postgres.Slot)
	}
	return nil
}

// CheckSource runs the source's preflight checks; deleteNeeds maps each
// source table to the columns its mappings compute target keys from (nil:
// the whole row).
func CheckSource(ctx context.Context, cfg *config.Config, deleteNeeds map[change.Table][]string) ([]preflight.Problem, error) {
	switch cfg.Source.Kind {
	case config.KindPostgres:
		src, err := pgSource(cfg)
		if err != nil {
			return nil, err
		}
		ps := src.Check(ctx)
		if preflight.AnyUnreachable(ps) {
			return ps, nil // the before-images' check would wait for it again
		}
		return append(ps, src.CheckBeforeImages(ctx, deleteNeeds)...), nil
	case config.KindMySQL:
		return checkMySQLSource(ctx, cfg), nil
	}
	return []preflight.Problem{{Severity: preflight.Fail, Object: "source", What: "kind " + cfg.Source.Kind + " is not supported", Fix: "use a mysql or postgres source"}}, nil
}

// checkMySQLSource checks a binlog source, from the position saved in the
// target when there is one.
func checkMySQLSource(ctx context.Context, cfg *config.Config) []preflight.Problem {
	var ps []preflight.Problem
	cc := mycapture.CheckConfig{DSN: cfg.Source.DSN.Value(), ServerID: cfg.Source.MySQL.ServerID, Tables: cfg.Source.Tables}
	saved, found, err := savedPosition(ctx, cfg)
	switch {
	case err != nil:
		ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: "source position",
			What: fmt.Sprintf("cannot read the saved binlog position from the target: %v", err), Fix: "check target.dsn; the target problems below may say more"})
	case found:
		p, err := mycapture.ParsePosition(saved)
		if err != nil {
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: "source position",
				What: fmt.Sprintf("the saved binlog position %q of %s is unreadable: %v", saved, PositionKey(cfg), err), Fix: "delete it from the target's tandem.source_positions and backfill again"})
		}
		cc.File, cc.Pos = p.File, uint64(p.Offset)
	}
	return append(ps, mycapture.Check(ctx, cc)...)
}

// savedPosition reads a MySQL capture's saved position from the target
// without creating anything there.
func savedPosition(ctx context.Context, cfg *config.Config) (string, bool, error) {
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.SavedPosition(ctx, cfg.Target.DSN.Value(), PositionKey(cfg))
	case config.KindMySQL:
		return sinkmysql.SavedPosition(ctx, cfg.Target.DSN.Value(), PositionKey(cfg))
	}
	return "", false, nil
}

// CheckTarget runs the target's preflight checks of what the mappings
// write (uses).
func CheckTarget(ctx context.Context, cfg *config.Config, uses []sink.TableUse) []preflight.Problem {
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.Check(ctx, sinkpg.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema}, uses)
	case config.KindMySQL:
		return sinkmysql.Check(ctx, sinkmysql.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema}, uses)
	}
	return []preflight.Problem{{Severity: preflight.Fail, Object: "target", What: "kind " + cfg.Target.Kind + " is not supported", Fix: "use a mysql or postgres target"}}
}

// DropSlot removes the source's replication slot and publication
// (PostgreSQL) when a migration is done, and says what it dropped.
func DropSlot(ctx context.Context, cfg *config.Config) ([]string, error) {
	if cfg.Source.Kind != config.KindPostgres {
		return nil, fmt.Errorf("slot drop: source kind %s has no replication slot", cfg.Source.Kind)
	}
	src, err := pgSource(cfg)
	if err != nil {
		return nil, err
	}
	return src.Drop(ctx)
}

// OpenQuerier connects to a database of kind for consistency queries;
// close releases the connection.
func OpenQuerier(ctx context.Context, kind, dsn string) (q reconcile.Querier, close func(), err error) {
	switch kind {
	case config.KindPostgres:
		pool, err := pgdsn.Pool(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		return pgQuerier{pool}, pool.Close, nil
	case config.KindMySQL:
		db, err := mysqlurl.Open(dsn)
		if err != nil {
			return nil, nil, err
		}
		return sqlQuerier{db}, func() { db.Close() }, nil
	}
	return nil, nil, fmt.Errorf("kind %q is not supported", kind)
}

type pgQuerier struct{ pool *pgxpool.Pool }

// QueryNumber implements reconcile.Querier.
func (q pgQuerier) QueryNumber(ctx context.Context, query string) (float64, error) {
	var v any
	if err := q.pool.QueryRow(ctx, query).Scan(&v); err != nil {
		return 0, err
	}
	switch v := v.(type) {
	case int64:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case int16:
		return float64(v), nil
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	case pgtype.Numeric:
		f, err := v.Float64Value()
		return f.Float64, err
	case nil:
		return 0, errors.New("the query returned NULL")
	}
	return 0, fmt.Errorf("the query returned %T, not a number", v)
}

type sqlQuerier struct{ db *sql.DB }

// QueryNumber implements reconcile.Querier.
func (q sqlQuerier) QueryNumber(ctx context.Context, query string) (float64, error) {
	var v sql.NullString
	if err := q.db.QueryRowContext(ctx, query).Scan(&v); err != nil {
		return 0, err
	}
	if !v.Valid {
		return 0, errors.New("the query returned NULL")
	}
	f, err := strconv.ParseFloat(v.String, 64)
	if err != nil {
		if r, ok := new(big.Rat).SetString(v.String); ok {
			f, _ = r.Float64()
			return f, nil
		}
		return 0, fmt.Errorf("the query returned %q, not a number", v.String)
	}
	return f, nil
}
