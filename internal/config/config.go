package config

import (
	"fmt"
	"reflect"
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

// Delete actions, the values of mappings[].to[].on_delete: what a delete of
// the source row does to the target row of that output.
const (
	// OnDeleteDelete deletes the target row.
	OnDeleteDelete = "delete"
	// OnDeleteClear sets the output's columns other than the key to NULL
	// and keeps the row: for a mapping that feeds part of a row another
	// mapping owns (a merge).
	OnDeleteClear = "clear"
)

// Tolerance is a rule of reconcile.tolerate (and a mapping's tolerate and
// tolerate_columns): a difference reconcile does not count as drift.
type Tolerance string

// The tolerances.
const (
	TolerateNullEqualsEmpty Tolerance = "null_equals_empty" // NULL and "" compare equal
	TolerateTrimSpace       Tolerance = "trim_space"        // leading and trailing white space is ignored
	TolerateFloatEpsilon    Tolerance = "float_epsilon"     // floats equal within a small relative epsilon
	TolerateTimePrecisionMS Tolerance = "time_precision_ms" // times compared at millisecond precision
	TolerateCaseInsensitive Tolerance = "case_insensitive"  // strings compared case-insensitively
)

// Defaults applied to absent keys by Parse, and to zero fields by
// SetDefaults, for code that needs them by name. The default tags of the
// fields are what Parse and SetDefaults read; a test keeps the two equal.
const (
	DefaultServerID          uint32        = 4242             // source.mysql.server_id
	DefaultSlot                            = "tandem"         // source.postgres.slot
	DefaultPublication                     = "tandem"         // source.postgres.publication
	DefaultTopicPrefix                     = "tandem"         // kafka.topic_prefix
	DefaultPartitions                      = 12               // kafka.partitions
	DefaultGroup                           = "tandem"         // kafka.group
	DefaultMaxRecordBytes                  = 16 << 20         // kafka.max_record_bytes
	DefaultCompression                     = "zstd"           // kafka.compression
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
// character in the file: the YAML scalar as yaml reports it, past the
// opening quote of a quoted scalar (columns after an escape such as \" or
// ” are then one off per escape), except for a block scalar (| or >), whose
// text starts on the line after the indicator, at the block's
// indentation, where each of a literal block's (|) lines starts: line n
// of Text, column c, is line Pos.Line+n-1, column Pos.Col+c of the file.
// Text is the scalar's value after ${VAR} expansion.
type Expr struct {
	Text string
	Pos  Pos
}

// Column is one computed column, a target column (or, in Inverse, a source
// column), and the expression that computes it.
type Column struct {
	Name string `mapping:"key"`
	Expr Expr   `mapping:"value"`
}

// Config is a whole tandem.yaml. Parse and Load return it with defaults
// applied and validated; a Config built in code should go through
// SetDefaults and Validate before use.
//
// Each key of the file is declared once, as a tagged field of Config or of
// the structs inside it; tags.go says what each tag means. Parse, Default,
// SetDefaults and Validate all read those tags, so adding a key is adding a
// field, such as
//
//	MaxFoo int `yaml:"max_foo" default:"7" check:">0"`
type Config struct {
	File      string    // path it was loaded from
	Source    Source    `yaml:"source"`
	Kafka     Kafka     `yaml:"kafka"`
	Target    Target    `yaml:"target"`
	Mappings  []Mapping `yaml:"mappings"`
	Reconcile Reconcile `yaml:"reconcile"`
	Backfill  Backfill  `yaml:"backfill"`
	HTTP      HTTP      `yaml:"http"`
	Cutover   *Cutover  `yaml:"cutover"` // nil when absent: no cohorts are switched, no reverse stream runs
	// ShutdownTimeout bounds a stop (SIGTERM, SIGINT): the roles stop
	// taking new work, write and commit what they hold, and give up on
	// what is left once it has passed.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" default:"30s" what:"a duration such as 30s" check:">0" must:"be more than 0"`
}

// Source is the database tandem captures changes from (yaml key source).
type Source struct {
	Kind      string         `yaml:"kind"`     // KindMySQL or KindPostgres
	DSN       Secret         `yaml:"dsn"`      // mysql://user:pass@host:3306/db or postgres://user:pass@host/db
	Tables    []string       `yaml:"tables"`   // captured tables, each "schema.table", unique
	TablesPos []Pos          `pos:"tables"`    // position of each entry of Tables
	MySQL     MySQLSource    `yaml:"mysql"`    // used when Kind is KindMySQL
	Postgres  PostgresSource `yaml:"postgres"` // used when Kind is KindPostgres
	// StreamTimeout is how long the replication stream (WAL or binlog) may
	// stay silent, no change and no keepalive or heartbeat though one was
	// asked for, before it is taken as hung, dropped and reopened.
	StreamTimeout time.Duration `yaml:"stream_timeout" default:"30s" what:"a duration such as 30s" check:">0" must:"be more than 0"`
	Pos           Pos           // position of the source key's value
}

// MySQLSource holds the MySQL-only source settings.
type MySQLSource struct {
	// ServerID is the replica server id tandem uses, never 0.
	ServerID uint32 `yaml:"server_id" default:"4242" what:"a whole number from 1 to 4294967295" check:">0"`
}

// PostgresSource holds the PostgreSQL-only source settings.
type PostgresSource struct {
	Slot        string `yaml:"slot" default:"tandem"`                                                   // logical replication slot name
	Publication string `yaml:"publication" default:"tandem" check:"1..63" must:"be 1 to 63 bytes long"` // publication name
}

// Kafka is the transport between capture and apply (yaml key kafka).
type Kafka struct {
	// Brokers are the seed brokers, host:port each; empty means the
	// embedded in-process broker. The file may give them as a list or as
	// one comma-separated string (brokers: ${BROKERS}).
	Brokers     []string `yaml:"brokers" split:","`
	TopicPrefix string   `yaml:"topic_prefix" default:"tandem"`                         // topics are <prefix>.<schema>.<table> and <prefix>.dlq
	Partitions  int      `yaml:"partitions" default:"12" check:"1..10000"`              // partitions per topic, at most MaxPartitions
	Group       string   `yaml:"group" default:"tandem" check:">0" must:"not be empty"` // consumer group name prefix
	Envelope    Envelope `yaml:"envelope"`                                              // how change records are written
	// MaxRecordBytes is the largest Kafka record tandem produces, key and
	// value before compression. A change whose record would be larger is
	// not produced: a small marker in its place is dead-lettered in the
	// target with its key and why, and the stream goes on (see the
	// README's "Record size").
	MaxRecordBytes int `yaml:"max_record_bytes" default:"16777216" check:"1024..536870912" must:"be from 1024 (1 KiB) to 536870912 (512 MiB)"`
	// Compression is the codec of the record batches produced: one of
	// Compressions.
	Compression string `yaml:"compression" default:"zstd"`
	// TLS, when set, encrypts every connection to the brokers (not to
	// the embedded broker); nil: plaintext. tls: {} verifies the brokers
	// against the system's CAs.
	TLS *KafkaTLS `yaml:"tls"`
	// SASL, when set, authenticates every connection to the brokers (not
	// to the embedded broker); nil: none.
	SASL *KafkaSASL `yaml:"sasl"`
}

// Compressions are the values of kafka.compression, Kafka's codec names.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// KafkaTLS is how connections to the brokers are encrypted (yaml key
// kafka.tls). Relative paths are relative to the working directory; the
// files are read when a client is made (and by tandem check).
type KafkaTLS struct {
	CAFile     string `yaml:"ca_file"`     // PEM CA certificates the brokers' must chain to; empty: the system's
	CertFile   string `yaml:"cert_file"`   // PEM client certificate, for brokers that require one; with KeyFile
	KeyFile    string `yaml:"key_file"`    // PEM key of CertFile
	ServerName string `yaml:"server_name"` // the name the brokers' certificates must hold; empty: the host dialled
	// InsecureSkipVerify accepts any broker certificate: the connection
	// is encrypted but not authenticated (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// The SASL mechanisms of kafka.sasl.mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// KafkaSASL is how tandem authenticates to the brokers (yaml key
// kafka.sasl).
type KafkaSASL struct {
	Mechanism string   `yaml:"mechanism"` // SASLPlain, SASLScramSHA256 or SASLScramSHA512
	User      string   `yaml:"user"`
	Password  Password `yaml:"password"` // or password_file
	Pos       Pos      // position of the sasl key's value
}

// String shows the mechanism and the user, never the password. fmt
// prints a pointer inside a struct under a wrong verb (%s, %d) without
// calling the Password's Format, so *KafkaSASL needs its own.
func (s KafkaSASL) String() string {
	return fmt.Sprintf("{mechanism: %s, user: %s, password: %s}", s.Mechanism, s.User, s.Password)
}

// Envelope is how change records are written (yaml key kafka.envelope):
// Debezium's option names, with Debezium's meanings.
type Envelope struct {
	DecimalHandling string `yaml:"decimal.handling.mode" default:"string"` // string | double | precise
	TimePrecision   string `yaml:"time.precision.mode" default:"adaptive"` // adaptive | adaptive_time_microseconds | connect
	TombstonesOnDel string `yaml:"tombstones.on.delete" default:"true"`    // true | false: a null-value record after each delete
	SchemasEnable   string `yaml:"schemas.enable" default:"false"`         // true | false: the JsonConverter schema + payload form
}

// Tombstones reports whether a delete is followed by a tombstone.
func (e Envelope) Tombstones() bool { return e.TombstonesOnDel != "false" }

// Schemas reports whether records carry their Kafka Connect schema.
func (e Envelope) Schemas() bool { return e.SchemasEnable == "true" }

// Target is the database tandem writes to (yaml key target).
type Target struct {
	Kind string `yaml:"kind"` // KindPostgres or KindMySQL
	DSN  Secret `yaml:"dsn"`
	// StateSchema holds tandem's own tables (offsets, dead letters,
	// backfill progress): a schema of the target database (PostgreSQL) or
	// a database of the target server (MySQL), where every migration into
	// the server needs its own.
	StateSchema string `yaml:"state_schema" default:"tandem" check:"1..63" must:"be a schema (PostgreSQL) or database (MySQL) name of 1 to 63 bytes"`
	// WriteTimeout is how long apply waits for the target to write one
	// batch with its offsets (or to answer any other request of apply's)
	// before it cancels the attempt and retries, the mapping paused: a hung
	// target or a lock held that long shows as a paused mapping.
	WriteTimeout time.Duration `yaml:"write_timeout" default:"30s" what:"a duration such as 30s" check:">0" must:"be more than 0"`
	Pos          Pos           // position of the target key's value
}

// Mapping turns the rows of one source table into rows of one or more target
// tables (an entry of yaml key mappings).
type Mapping struct {
	Name string   `yaml:"name"` // unique; defaults to From
	From string   `yaml:"from"` // the source table, one of Source.Tables
	To   []Output `yaml:"to"`   // at least one
	// Tolerate are reconcile tolerances (Tolerate* constants) for every
	// column this mapping writes, on top of reconcile.tolerate.
	Tolerate []Tolerance `yaml:"tolerate"`
	// TolerateColumns are reconcile tolerances for single target columns,
	// by "<to table>.<column>", on top of the mapping's and the global ones.
	TolerateColumns []ColumnTolerance `yaml:"tolerate_columns" what:"a mapping of <to table>.<column> to a list of tolerances"`
	Inverse         *Inverse          `yaml:"inverse"` // nil when absent
	Pos             Pos               `pos:"from"`     // position of the from value (of the entry when from is absent)
	// Cohort is the cohort of a source row for `tandem switch`: CEL over
	// `row`, the source row, naming one of its columns (the fence
	// triggers compute it in SQL). Nil: the mapping's rows are cohort
	// DefaultCohort.
	Cohort *Expr `yaml:"cohort"`

	// Rules are known differences: reconcile does not count what they
	// describe as drift, and counts how many differences each absorbed.
	Rules []Rule `yaml:"rules"`
}

// ColumnTolerance is the tolerances of one target column (an entry of a
// mapping's tolerate_columns).
type ColumnTolerance struct {
	Column string      `mapping:"key"`   // "<to table>.<column>"
	Rules  []Tolerance `mapping:"value"` // Tolerate* constants
	Pos    Pos
}

// Output is one target table a mapping writes.
type Output struct {
	Table string   `yaml:"table"`                 // "schema.table" or "table"
	Key   []string `yaml:"key"`                   // the target key columns, each one of Columns' names
	Mode  string   `yaml:"mode" default:"upsert"` // ModeUpsert or ModeCreateIfAbsent
	// OnDelete is OnDeleteDelete or OnDeleteClear: what a delete of the
	// source row, or a change that moves the row's key or makes when
	// false, does to the target row this output wrote.
	OnDelete string `yaml:"on_delete" default:"delete"`
	When     *Expr  `yaml:"when"` // filter: the row is written only when it is true; nil when absent
	// Cohort is the cohort of a row of this table, for the reverse
	// direction: CEL over `row`, the target row, naming one of its
	// columns. Nil: the column whose expression is the mapping's cohort
	// column copied as it is.
	Cohort  *Expr    `yaml:"cohort"`
	Columns []Column `yaml:"columns" what:"a mapping of column name to expression"` // in file order, names unique, at least one
	Pos     Pos      `pos:"table"`                                                  // position of the table value (of the entry when table is absent)
}

// Inverse computes the source row back from the target rows, for round-trip
// checks.
type Inverse struct {
	// Columns are the source column expressions, in file order.
	Columns []Column `yaml:"columns" what:"a mapping of column name to expression"`
	// Ignore names source columns the new schema drops on purpose: the
	// round trip does not ask the inverse to give them back. Every other
	// source column must come back equal.
	Ignore []string `yaml:"ignore"`
}

// Reconcile configures the comparison of source and target.
type Reconcile struct {
	// Interval is the time between runs.
	Interval time.Duration `yaml:"interval" default:"1m" check:">0"`
	// ChunkRows is how many rows each read takes.
	ChunkRows int `yaml:"chunk_rows" default:"5000" check:">=0" must:"be more than 0"`
	// MaxRowsPerSecond bounds the rows reconcile reads, source and target
	// together, so it never hurts production; 0 after SetDefaults is
	// impossible: set -1 for unbounded.
	MaxRowsPerSecond int `yaml:"max_rows_per_second" default:"5000" check:">=-1" must:"be more than 0, or -1 for unbounded"`
	// Settle is how long a difference must last, on top of the replication
	// lag, to count as drift.
	Settle   time.Duration `yaml:"settle" default:"5s" what:"a duration such as 5s or 1m" check:">=0" must:"be more than 0"`
	Tolerate []Tolerance   `yaml:"tolerate"` // Tolerate* constants, unique
	Checks   []Check       `yaml:"checks"`   // consistency queries
}

// Check is a consistency query pair: each side returns one number, and the
// two must be equal.
type Check struct {
	Name   string `yaml:"name"`   // unique; the check label of tandem_consistency_check_value
	Source string `yaml:"source"` // SQL run on the source
	Target string `yaml:"target"` // SQL run on the target
	Pos    Pos    // position of the entry
}

// Backfill configures the copy of existing rows.
type Backfill struct {
	ChunkRows        int `yaml:"chunk_rows" default:"5000" check:">0"`                              // rows per chunk
	Parallel         int `yaml:"parallel" default:"4" check:">0"`                                   // tables or chunks copied at once
	MaxRowsPerSecond int `yaml:"max_rows_per_second" check:">=0" must:"be 0 (unthrottled) or more"` // throttle, 0 = unthrottled
	// MaxLagSeconds: the copy pauses while any mapping's
	// tandem_replication_lag_seconds is above it; -1: never.
	MaxLagSeconds int `yaml:"max_lag_seconds" default:"30" check:">0|-1" must:"be more than 0, or -1 never to pause for lag"`
	// MaxSourceLoad: the copy pauses while more statements than this run
	// on the source (PostgreSQL: active client sessions other than
	// tandem's; MySQL: Threads_running); -1: never.
	MaxSourceLoad int `yaml:"max_source_load" default:"32" check:">0|-1" must:"be more than 0, or -1 never to pause for the source's load"`
}

// DefaultCohort is the cohort of the rows of a mapping without a cohort.
const DefaultCohort = "default"

// Cutover configures switching cohorts' writes between the old schema and
// the new one, with the reverse stream that keeps the old schema in step
// with the cohorts the new one owns (yaml key cutover).
type Cutover struct {
	// FenceTimeout is the longest a cohort's writes wait during a switch:
	// a switch whose drain takes longer is undone.
	FenceTimeout time.Duration `yaml:"fence_timeout" default:"2s" what:"a duration such as 2s" check:">0"`
	// Guard is GuardReport or GuardReject: what a write the application
	// makes on the side that does not own its cohort gets.
	Guard string `yaml:"guard" default:"report"`
	// MaxLagSeconds is a gate of a switch: both directions' lag under it.
	MaxLagSeconds int     `yaml:"max_lag_seconds" default:"5" check:">0"`
	Reverse       Reverse `yaml:"reverse"` // how the reverse stream reads the new schema
	Pos           Pos     // position of the cutover key's value
}

// The values of cutover.guard.
const (
	GuardReport = "report" // counted and logged
	GuardReject = "reject" // the database refuses the write
)

// Reverse is how the reverse stream reads the new schema (cutover.reverse).
type Reverse struct {
	Postgres ReversePostgres `yaml:"postgres"` // used when target.kind is postgres
	MySQL    ReverseMySQL    `yaml:"mysql"`    // used when target.kind is mysql
}

// ReversePostgres is the replication slot and publication the reverse
// stream reads the new schema through (cutover.reverse.postgres).
type ReversePostgres struct {
	Slot        string `yaml:"slot" default:"tandem_back"`
	Publication string `yaml:"publication" default:"tandem_back" check:"1..63" must:"be 1 to 63 bytes long"`
}

// ReverseMySQL is how the reverse stream reads the new schema's binlog
// (cutover.reverse.mysql).
type ReverseMySQL struct {
	ServerID uint32 `yaml:"server_id" default:"4243" what:"a whole number from 1 to 4294967295" check:">0"`
}

// HTTP configures the /metrics, /healthz and /readyz server.
type HTTP struct {
	Listen string `yaml:"listen" default:"127.0.0.1:9187"` // host:port; an empty value means the default
	// WebConfigFile, when set, is a Prometheus exporter web configuration
	// (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):
	// TLS and basic auth for every path served. It is read again as it
	// changes; relative paths in it are relative to it.
	WebConfigFile string `yaml:"web_config_file"`
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
	setDefaults(reflect.ValueOf(c).Elem())
	c.deriveDefaults()
}

// deriveDefaults fills the fields whose default is another field: a
// mapping's Name is its From.
func (c *Config) deriveDefaults() {
	for i := range c.Mappings {
		m := &c.Mappings[i]
		m.Name = orDefault(m.Name, m.From)
	}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
