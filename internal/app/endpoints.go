package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/capture"
	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	sinkmysql "github.com/tandemcdc/tandem/sink/mysql"
	sinkpg "github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/transform"
)

// target is what the pipeline needs of a sink: the rows, and a place for a
// slot-less capturer's position.
type target interface {
	apply.Sink
	transform.Lookuper
	mycapture.PositionStore
}

// The sinks satisfy every contract a role consumes from them.
var (
	_ target = (*sinkpg.Sink)(nil)
	_ target = (*sinkmysql.Sink)(nil)
)

// openTarget connects to the configured target.
func openTarget(ctx context.Context, cfg *config.Config) (target, error) {
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.New(ctx, sinkpg.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema})
	case config.KindMySQL:
		return sinkmysql.New(ctx, sinkmysql.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema})
	}
	return nil, fmt.Errorf("target kind %q is not supported (mysql, postgres are)", cfg.Target.Kind)
}

// openReader connects to the configured target to read it only: nothing is
// created there (check, preview and lookups outside a run).
func openReader(ctx context.Context, cfg *config.Config) (target, error) {
	switch cfg.Target.Kind {
	case config.KindPostgres:
		return sinkpg.New(ctx, sinkpg.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema, ReadOnly: true})
	case config.KindMySQL:
		return sinkmysql.New(ctx, sinkmysql.Config{DSN: cfg.Target.DSN.Value(), StateSchema: cfg.Target.StateSchema, ReadOnly: true})
	}
	return nil, fmt.Errorf("target kind %q is not supported (mysql, postgres are)", cfg.Target.Kind)
}

// source is a capturer the pipeline can set up and stream from.
type source interface {
	capture.Source
	// Setup prepares the source (slot, publication, start position).
	Setup(ctx context.Context) error
}

// sourceNeedsStore reports whether the source keeps its position in the
// target (a binlog has no slot).
func sourceNeedsStore(cfg *config.Config) bool { return cfg.Source.Kind == config.KindMySQL }

// positionKey names a MySQL capture's saved position: one per topic prefix,
// so migrations sharing a target keep theirs apart.
func positionKey(cfg *config.Config) string { return "mysql:" + cfg.Kafka.TopicPrefix }

// openSource builds the configured capturer; store is where a MySQL
// capturer keeps its position.
func openSource(cfg *config.Config, store mycapture.PositionStore, log *slog.Logger, m *capture.Metrics) (source, error) {
	switch cfg.Source.Kind {
	case config.KindPostgres:
		return pgcapture.New(pgcapture.Config{
			DSN: cfg.Source.DSN.Value(), Slot: cfg.Source.Postgres.Slot, Publication: cfg.Source.Postgres.Publication, Tables: sourceTables(cfg),
		}, pgcapture.WithLogger(log), pgcapture.WithMetrics(m))
	case config.KindMySQL:
		return mycapture.New(mycapture.Config{
			DSN: cfg.Source.DSN.Value(), ServerID: cfg.Source.MySQL.ServerID, Tables: sourceTables(cfg),
			Store: store, StoreKey: positionKey(cfg),
		}, mycapture.WithLogger(log), mycapture.WithMetrics(m))
	}
	return nil, fmt.Errorf("source kind %q is not supported (mysql, postgres are)", cfg.Source.Kind)
}

// connectorName is the envelope's source.connector for a source kind, as Debezium names it.
func connectorName(kind string) string {
	if kind == config.KindMySQL {
		return "mysql"
	}
	return "postgresql"
}

// dbName returns the database a source DSN names, for the envelope.
func dbName(kind, dsn string) string {
	if kind == config.KindMySQL {
		c, err := mysqlurl.Parse(dsn)
		if err != nil {
			return ""
		}
		return c.DBName
	}
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "" // the source connection reports a bad DSN
	}
	return c.Database
}

// ackedString says where the source stands, for the last log line.
func ackedString(src source) string {
	switch s := src.(type) {
	case *pgcapture.Source:
		return s.Flushed().String()
	case *mycapture.Source:
		return s.Acked().String()
	}
	return ""
}
