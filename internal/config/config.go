package config

import (
	"fmt"
	"time"
)

// Database kinds, the values of source.kind and target.kind.
const (
	KindMySQL    = "mysql"    // MySQL 8 or MariaDB 10.11+
	KindPostgres = "postgres" // PostgreSQL 14+
)

// Write modes, the values of mappings[].to[].mode.
const (
	// ModeUpsert inserts the row or overwrites the target row with the same key.
	ModeUpsert = "upsert"
	// ModeCreateIfAbsent inserts the row only when no row with its key exists;
	// it never overwrites.
	ModeCreateIfAbsent = "create_if_absent"
)

// Tolerances, the values of reconcile.tolerate: differences reconcile does not
// count as drift.
const (
	TolerateNullEqualsEmpty = "null_equals_empty" // NULL and "" compare equal
	TolerateTrimSpace       = "trim_space"        // leading and trailing white space is ignored
	TolerateFloatEpsilon    = "float_epsilon"     // floats equal within a small relative epsilon
	TolerateTimePrecisionMS = "time_precision_ms" // times compared at millisecond precision
	TolerateCaseInsensitive = "case_insensitive"  // strings compared case-insensitively
)

// Defaults applied to absent keys by Parse, and to zero fields by SetDefaults.
const (
	DefaultServerID          uint32        = 4242             // source.mysql.server_id
	DefaultSlot                            = "tandem"         // source.postgres.slot
	DefaultPublication                     = "tandem"         // source.postgres.publication
	DefaultTopicPrefix                     = "tandem"         // kafka.topic_prefix
	DefaultPartitions                      = 12               // kafka.partitions
	DefaultGroup                           = "tandem"         // kafka.group
	DefaultReconcileInterval time.Duration = time.Minute      // reconcile.interval
	DefaultReconcileChunk                  = 5000             // reconcile.chunk_rows
	DefaultReconcileRate                   = 5000             // reconcile.max_rows_per_second
	DefaultReconcileSettle   time.Duration = 5 * time.Second  // reconcile.settle
	DefaultChunkRows                       = 5000             // backfill.chunk_rows
	DefaultParallel                        = 4                // backfill.parallel
	DefaultMaxLagSeconds                   = 30               // backfill.max_lag_seconds
	DefaultMaxSourceLoad                   = 32               // backfill.max_source_load
	DefaultListen                          = "127.0.0.1:9187" // http.listen
	DefaultStateSchema                     = "tandem"         // target.state_schema
)

// MaxPartitions is the largest kafka.partitions accepted.
const MaxPartitions = 10000

// Pos is where a value sits in the config file. Line and Col are 1-based;
// the zero Line means the position is unknown (a Config built in code, or a
// key that is absent from the file).
type Pos struct {
	File string
	Line int
	Col  int
}

// String returns "file:line:col", "file:line" when the column is unknown, and
// just "file" when the line is unknown.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0 && p.File == "":
		return fmt.Sprintf("%d", p.Line)
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	case p.File == "":
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Expr is a CEL expression from the config, with the position of its first
// character in the file: the YAML scalar as yaml reports it, so for a quoted
// scalar that is the opening quote and for a block scalar (| or >) the
// indicator. Text is the scalar's value after ${VAR} expansion.
type Expr struct {
	Text string
	Pos  Pos
}

// Column is one computed column, a target column (or, in Inverse, a source
// column), and the expression that computes it.
type Column struct {
	Name string
	Expr Expr
}

// Config is a whole tandem.yaml. Parse and Load return it with defaults
// applied and validated; a Config built in code should go through
// SetDefaults and Validate before use.
type Config struct {
	File      string // path it was loaded from
	Source    Source
	Kafka     Kafka
	Target    Target
	Mappings  []Mapping
	Reconcile Reconcile
	Backfill  Backfill
	HTTP      HTTP
}

// Source is the database tandem captures changes from (yaml key source).
type Source struct {
	Kind      string         // KindMySQL or KindPostgres
	DSN       Secret         // mysql://user:pass@host:3306/db or postgres://user:pass@host/db
	Tables    []string       // captured tables, each "schema.table", unique
	TablesPos []Pos          // position of each entry of Tables
	MySQL     MySQLSource    // yaml key mysql; used when Kind is KindMySQL
	Postgres  PostgresSource // yaml key postgres; used when Kind is KindPostgres
	Pos       Pos            // position of the source key's value
}

// MySQLSource holds the MySQL-only source settings.
type MySQLSource struct {
	ServerID uint32 // yaml server_id: the replica server id tandem uses, default 4242, never 0
}

// PostgresSource holds the PostgreSQL-only source settings.
type PostgresSource struct {
	Slot        string // logical replication slot name, default "tandem"
	Publication string // publication name, default "tandem"
}

// Kafka is the transport between capture and apply (yaml key kafka).
type Kafka struct {
	Brokers     []string // seed brokers; empty means the embedded in-process broker
	TopicPrefix string   // yaml topic_prefix, default "tandem"; topics are <prefix>.<schema>.<table> and <prefix>.dlq
	Partitions  int      // partitions per topic, default 12, 1..10000
	Group       string   // consumer group name prefix, default "tandem"
}

// Target is the database tandem writes to (yaml key target).
type Target struct {
	Kind string // KindPostgres or KindMySQL
	DSN  Secret
	// StateSchema (yaml state_schema) holds tandem's own tables (offsets,
	// dead letters, backfill progress): a schema of the target database
	// (PostgreSQL) or a database of the target server (MySQL), where
	// every migration into the server needs its own. Default "tandem".
	StateSchema string
	Pos         Pos // position of the target key's value
}

// Mapping turns the rows of one source table into rows of one or more target
// tables (an entry of yaml key mappings).
type Mapping struct {
	Name    string   // unique; defaults to From
	From    string   // the source table, one of Source.Tables
	To      []Output // at least one
	Inverse *Inverse // nil when absent
	// Tolerate are reconcile tolerances (Tolerate* constants) for every
	// column this mapping writes, on top of reconcile.tolerate.
	Tolerate []string
	// TolerateColumns are reconcile tolerances for single target columns,
	// by "<to table>.<column>", on top of the mapping's and the global ones.
	TolerateColumns []ColumnTolerance
	Pos             Pos // position of the from value (of the entry when from is absent)
}

// ColumnTolerance is the tolerances of one target column (an entry of a
// mapping's tolerate_columns).
type ColumnTolerance struct {
	Column string   // "<to table>.<column>"
	Rules  []string // Tolerate* constants
	Pos    Pos
}

// Output is one target table a mapping writes.
type Output struct {
	Table   string   // "schema.table" or "table"
	Key     []string // the target key columns, each one of Columns' names
	Mode    string   // ModeUpsert (default) or ModeCreateIfAbsent
	When    *Expr    // filter: the row is written only when it is true; nil when absent
	Columns []Column // in file order, names unique, at least one
	Pos     Pos      // position of the table value (of the entry when table is absent)
}

// Inverse computes the source row back from the target rows, for round-trip
// checks.
type Inverse struct {
	Columns []Column // source column expressions, in file order
	// Ignore names source columns the new schema drops on purpose: the
	// round trip does not ask the inverse to give them back. Every other
	// source column must come back equal.
	Ignore []string
}

// Reconcile configures the comparison of source and target.
type Reconcile struct {
	Interval time.Duration // time between runs, default 1m, > 0
	// ChunkRows is how many rows each read takes, default 5000.
	ChunkRows int
	// MaxRowsPerSecond bounds the rows reconcile reads, source and target
	// together, so it never hurts production; default 5000, 0 after
	// SetDefaults is impossible: set -1 for unbounded.
	MaxRowsPerSecond int
	// Settle is how long a difference must last, on top of the replication
	// lag, to count as drift; default 5s.
	Settle   time.Duration
	Tolerate []string // Tolerate* constants, unique
	Checks   []Check  // consistency queries
}

// Check is a consistency query pair: each side returns one number, and the
// two must be equal.
type Check struct {
	Name   string // unique; the check label of tandem_consistency_check_value
	Source string // SQL run on the source
	Target string // SQL run on the target
	Pos    Pos    // position of the entry
}

// Backfill configures the copy of existing rows.
type Backfill struct {
	ChunkRows        int // yaml chunk_rows: rows per chunk, default 5000, > 0
	Parallel         int // tables or chunks copied at once, default 4, > 0
	MaxRowsPerSecond int // yaml max_rows_per_second: throttle, >= 0, 0 = unthrottled
	// MaxLagSeconds (yaml max_lag_seconds): the copy pauses while any
	// mapping's tandem_replication_lag_seconds is above it; default 30,
	// -1: never.
	MaxLagSeconds int
	// MaxSourceLoad (yaml max_source_load): the copy pauses while more
	// statements than this run on the source (PostgreSQL: active client
	// sessions other than tandem's; MySQL: Threads_running); default 32,
	// -1: never.
	MaxSourceLoad int
}

// HTTP configures the /metrics, /healthz and /readyz server.
type HTTP struct {
	Listen string // host:port, default "127.0.0.1:9187"; an empty value means the default
}

// Default returns a Config holding only the defaults: what an empty section
// of tandem.yaml means.
func Default() *Config {
	c := &Config{}
	c.SetDefaults()
	return c
}

// SetDefaults fills every zero field that has a default, including each
// mapping's Name (from From) and each output's Mode. Parse has already done
// it; it is for Configs built in code. Parse does not use it: there an
// explicit zero (partitions: 0) is an error, not a request for the default.
func (c *Config) SetDefaults() {
	if c.Source.MySQL.ServerID == 0 {
		c.Source.MySQL.ServerID = DefaultServerID
	}
	c.Source.Postgres.Slot = orDefault(c.Source.Postgres.Slot, DefaultSlot)
	c.Source.Postgres.Publication = orDefault(c.Source.Postgres.Publication, DefaultPublication)
	c.Kafka.TopicPrefix = orDefault(c.Kafka.TopicPrefix, DefaultTopicPrefix)
	c.Kafka.Group = orDefault(c.Kafka.Group, DefaultGroup)
	if c.Kafka.Partitions == 0 {
		c.Kafka.Partitions = DefaultPartitions
	}
	if c.Reconcile.Interval == 0 {
		c.Reconcile.Interval = DefaultReconcileInterval
	}
	if c.Reconcile.Settle == 0 {
		c.Reconcile.Settle = DefaultReconcileSettle
	}
	if c.Reconcile.ChunkRows == 0 {
		c.Reconcile.ChunkRows = DefaultReconcileChunk
	}
	if c.Reconcile.MaxRowsPerSecond == 0 {
		c.Reconcile.MaxRowsPerSecond = DefaultReconcileRate
	}
	if c.Backfill.ChunkRows == 0 {
		c.Backfill.ChunkRows = DefaultChunkRows
	}
	if c.Backfill.Parallel == 0 {
		c.Backfill.Parallel = DefaultParallel
	}
	if c.Backfill.MaxLagSeconds == 0 {
		c.Backfill.MaxLagSeconds = DefaultMaxLagSeconds
	}
	if c.Backfill.MaxSourceLoad == 0 {
		c.Backfill.MaxSourceLoad = DefaultMaxSourceLoad
	}
	c.HTTP.Listen = orDefault(c.HTTP.Listen, DefaultListen)
	c.Target.StateSchema = orDefault(c.Target.StateSchema, DefaultStateSchema)
	for i := range c.Mappings {
		m := &c.Mappings[i]
		m.Name = orDefault(m.Name, m.From)
		for j := range m.To {
			m.To[j].Mode = orDefault(m.To[j].Mode, ModeUpsert)
		}
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
