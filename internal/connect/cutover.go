package connect

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture"
	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/cutover"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/pgdsn"
	"github.com/tandemcdc/tandem/sink"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/transform"
)

// The replication origins tandem marks its own writes with, so that no
// change it wrote on one side is captured and sent back (no echo).
const (
	OriginForward = "tandem_forward" // the forward stream's writes into the new schema
	OriginReverse = "tandem_reverse" // the reverse stream's writes into the old schema
)

// skipTandem are tandem's origins: changes they mark are not captured.
var skipTandem = []string{OriginForward, OriginReverse}

var (
	_ sink.CohortStore = (*sinkpg.Sink)(nil)
	_ sink.CohortStore = (*sinkmysql.Sink)(nil)
	_ cutover.Log      = (*pgcapture.SlotLog)(nil)
	_ cutover.Log      = (*mycapture.BinlogLog)(nil)
)

// Side is one database of a migration with cutover: rows and offsets of
// the stream writing it, its cohort owners and guard triggers, and, as the
// source of the reverse stream, a wait for a captured change to be
// visible to its reads.
type Side interface {
	Target
	sink.CohortStore
	// AwaitCommitted waits until the transaction of ev, a change captured
	// from this database, is visible to the sink's reads.
	AwaitCommitted(ctx context.Context, ev *change.Event) error
}

var (
	_ Side = (*sinkpg.Sink)(nil)
	_ Side = (*sinkmysql.Sink)(nil)
)

// origin is the origin of the writes into the target, when cutover is configured.
func origin(cfg *config.Config, o string) string {
	if cfg.Cutover == nil {
		return ""
	}
	return o
}

// OpenOld connects to the source database as the reverse stream's target:
// tandem's tables in its state schema (target.state_schema's name), its
// writes marked as the reverse stream's.
func OpenOld(ctx context.Context, cfg *config.Config) (Side, error) {
	dsn, state := cfg.Source.DSN.Value(), cfg.Target.StateSchema
	switch cfg.Source.Kind {
	case config.KindPostgres:
		return sinkpg.New(ctx, sinkpg.Config{DSN: dsn, StateSchema: state, Origin: OriginReverse})
	case config.KindMySQL:
		return sinkmysql.New(ctx, sinkmysql.Config{DSN: dsn, StateSchema: state, Origin: OriginReverse})
	}
	return nil, unsupported("source", cfg.Source.Kind)
}

// TargetTables returns every table the mappings write, schema-qualified
// as the target names it (PostgreSQL: public when unqualified; MySQL: the
// DSN's database), in the order first written.
func TargetTables(cfg *config.Config) []change.Table {
	var out []change.Table
	for _, m := range cfg.Mappings {
		for _, o := range m.To {
			t := QualifyTarget(cfg, o.Table)
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// QualifyTarget returns the target table a mapping names, schema-qualified.
func QualifyTarget(cfg *config.Config, table string) change.Table {
	if schema, name, ok := strings.Cut(table, "."); ok {
		return change.Table{Schema: schema, Name: name}
	}
	schema := "public"
	if cfg.Target.Kind == config.KindMySQL {
		if c, err := mysqlurl.Parse(cfg.Target.DSN.Value()); err == nil {
			schema = c.DBName
		}
	}
	return change.Table{Schema: schema, Name: table}
}

// OpenReverseSource builds the capturer of the new schema's tables for the
// reverse stream (cutover.reverse), skipping tandem's own writes; old is
// where a MySQL capturer keeps its position.
func OpenReverseSource(cfg *config.Config, old mycapture.PositionStore, log *slog.Logger, m *capture.Metrics) (Source, error) {
	tables := TargetTables(cfg)
	switch cfg.Target.Kind {
	case config.KindPostgres:
		r := cfg.Cutover.Reverse.Postgres
		return pgcapture.New(pgcapture.Config{
			DSN: cfg.Target.DSN.Value(), Slot: r.Slot, Publication: r.Publication, Tables: tables,
			SkipOrigins: skipTandem, StatusInterval: drainInterval, SilenceTimeout: cfg.Source.StreamTimeout,
		}, pgcapture.WithLogger(log), pgcapture.WithMetrics(m))
	case config.KindMySQL:
		return mycapture.New(mycapture.Config{
			DSN: cfg.Target.DSN.Value(), ServerID: cfg.Cutover.Reverse.MySQL.ServerID, Tables: tables,
			Store: old, StoreKey: ReversePositionKey(cfg), SkipOrigins: skipTandem,
			OriginTable:  change.Table{Schema: cfg.Target.StateSchema, Name: sinkmysql.OriginTable},
			SaveInterval: drainInterval, IdleAckInterval: drainInterval, Timeout: cfg.Source.StreamTimeout,
		}, mycapture.WithLogger(log), mycapture.WithMetrics(m))
	}
	return nil, unsupported("target", cfg.Target.Kind)
}

// drainInterval is how often a capturer reports its acknowledged position
// when cutover is configured: a switch's drain waits for it, so it bounds
// how long a cohort's writes are fenced.
const drainInterval = 50 * time.Millisecond

// ReversePositionKey names the reverse MySQL capture's saved position.
func ReversePositionKey(cfg *config.Config) string { return "mysql-back:" + cfg.Kafka.TopicPrefix }

// ReverseTopicPrefix is the topic prefix of the reverse stream's records:
// <prefix>.back.<schema>.<table>.
func ReverseTopicPrefix(cfg *config.Config) string { return cfg.Kafka.TopicPrefix + ".back" }

// Logs returns the logs a switch drains: the old database's, read by the
// forward capture (its position saved in newSide for MySQL), and the new
// database's, read by the reverse capture (saved in oldSide). close
// releases their connections.
func Logs(ctx context.Context, cfg *config.Config, oldSide, newSide mycapture.PositionStore) (oldLog, newLog cutover.Log, close func(), err error) {
	var closers []func()
	close = func() {
		for _, c := range closers {
			c()
		}
	}
	open := func(kind, dsn, slot string, store mycapture.PositionStore, key string) (cutover.Log, error) {
		switch kind {
		case config.KindPostgres:
			l, err := pgcapture.NewSlotLog(ctx, dsn, slot)
			if err != nil {
				return nil, err
			}
			closers = append(closers, l.Close)
			return l, nil
		case config.KindMySQL:
			l, err := mycapture.NewBinlogLog(dsn, store, key)
			if err != nil {
				return nil, err
			}
			closers = append(closers, l.Close)
			return l, nil
		}
		return nil, unsupported("database", kind)
	}
	if oldLog, err = open(cfg.Source.Kind, cfg.Source.DSN.Value(), cfg.Source.Postgres.Slot, newSide, PositionKey(cfg)); err != nil {
		close()
		return nil, nil, nil, err
	}
	if newLog, err = open(cfg.Target.Kind, cfg.Target.DSN.Value(), cfg.Cutover.Reverse.Postgres.Slot, oldSide, ReversePositionKey(cfg)); err != nil {
		close()
		return nil, nil, nil, err
	}
	return oldLog, newLog, close, nil
}

// SourceCohorts returns the cohorts of the source's rows: each mapping's
// cohort column's distinct values (their text), and "default" for a
// mapping without one.
func SourceCohorts(ctx context.Context, cfg *config.Config, mappings []*transform.Mapping) ([]string, error) {
	q, closeQ, err := openRowQuerier(ctx, cfg.Source.Kind, cfg.Source.DSN.Value())
	if err != nil {
		return nil, err
	}
	defer closeQ()
	var out []string
	for _, m := range mappings {
		col := m.CohortColumn()
		if col == "" {
			out = append(out, config.DefaultCohort)
			continue
		}
		var query string
		if cfg.Source.Kind == config.KindMySQL {
			c, t := mysqlurl.QuoteIdent(col), mysqlurl.QuoteIdent(m.From.Schema)+"."+mysqlurl.QuoteIdent(m.From.Name)
			query = fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s IS NOT NULL", c, t, c)
		} else {
			c, t := pgx.Identifier{col}.Sanitize(), pgx.Identifier{m.From.Schema, m.From.Name}.Sanitize()
			query = fmt.Sprintf("SELECT DISTINCT %s::text FROM %s WHERE %s IS NOT NULL", c, t, c)
		}
		vals, err := q(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("list the cohorts of %s: %w", m.From, err)
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// openRowQuerier opens a function that runs a query returning one text
// column on the database of kind and dsn.
func openRowQuerier(ctx context.Context, kind, dsn string) (func(context.Context, string) ([]string, error), func(), error) {
	switch kind {
	case config.KindPostgres:
		conn, err := pgdsn.Connect(ctx, dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("connect: %w", err)
		}
		return func(ctx context.Context, q string) ([]string, error) {
			rows, err := conn.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
				var s string
				err := r.Scan(&s)
				return s, err
			})
		}, func() { conn.Close(context.Background()) }, nil
	case config.KindMySQL:
		db, err := mysqlurl.Open(dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("connect: %w", err)
		}
		return func(ctx context.Context, q string) ([]string, error) {
			rows, err := db.QueryContext(ctx, q)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					return nil, err
				}
				out = append(out, s)
			}
			return out, rows.Err()
		}, func() { db.Close() }, nil
	}
	return nil, nil, unsupported("database", kind)
}
