package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// env returns a lookup function over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// at is a position in tandem.yaml.
func at(line, col int) Pos { return Pos{File: "tandem.yaml", Line: line, Col: col} }

func mustParse(t *testing.T, data string, vars map[string]string) *Config {
	t.Helper()
	c, err := Parse("tandem.yaml", []byte(data), env(vars))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// testdata/contract.yaml is the tandem.yaml example of CONTRACT.md, with one
// change: the status expression is quoted, because as written there
// (status: row.status == "" ? "pending" : row.status) its ": " makes it
// invalid YAML.
func TestParse_ContractExampleGivesTheExactConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/contract.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, string(data), map[string]string{
		"SOURCE_DSN": "mysql://user:pass@127.0.0.1:3306/shop",
		"TARGET_DSN": "postgres://app:s3cret@db.internal:5432/shop?sslmode=require",
	})
	want := &Config{
		File: "tandem.yaml",
		Source: Source{
			Kind:      "mysql",
			DSN:       "mysql://user:pass@127.0.0.1:3306/shop",
			Tables:    []string{"shop.orders", "shop.customers"},
			TablesPos: []Pos{at(4, 12), at(4, 25)},
			MySQL:     MySQLSource{ServerID: 4242},
			Postgres:  PostgresSource{Slot: "tandem", Publication: "tandem"}, StreamTimeout: 30 * time.Second,
			Pos: at(2, 3),
		},
		Kafka: Kafka{TopicPrefix: "tandem", Partitions: 12, Group: "tandem", Envelope: defaultEnvelope, MaxRecordBytes: 16777216, Compression: "zstd"},
		Target: Target{
			Kind:        "postgres",
			DSN:         "postgres://app:s3cret@db.internal:5432/shop?sslmode=require",
			StateSchema: "tandem", WriteTimeout: 30 * time.Second,
			Pos: at(12, 3),
		},
		Mappings: []Mapping{{
			Name: "shop.orders",
			From: "shop.orders",
			To: []Output{
				{
					Table:    "public.orders",
					Key:      []string{"id"},
					Mode:     "upsert",
					OnDelete: "delete",
					When:     &Expr{Text: "row.tenant_id in [1, 2, 3]", Pos: at(20, 15)},
					Columns: []Column{
						{Name: "id", Expr: Expr{Text: "row.id", Pos: at(22, 15)}},
						{Name: "customer_id", Expr: Expr{Text: "row.customer_id", Pos: at(23, 24)}},
						{Name: "total_cents", Expr: Expr{Text: "int(row.total * 100.0)", Pos: at(24, 24)}},
						{Name: "status", Expr: Expr{Text: `row.status == "" ? "pending" : row.status`, Pos: at(25, 20)}},
					},
					Pos: at(17, 16),
				},
				{
					Table:    "public.payments",
					Key:      []string{"order_id"},
					Mode:     "upsert",
					OnDelete: "delete",
					When:     &Expr{Text: `row.payment_method != ""`, Pos: at(28, 15)},
					Columns: []Column{
						{Name: "order_id", Expr: Expr{Text: "row.id", Pos: at(30, 21)}},
						{Name: "kind", Expr: Expr{Text: "row.payment_method", Pos: at(31, 17)}},
					},
					Pos: at(26, 16),
				},
			},
			Inverse: &Inverse{Columns: []Column{
				{Name: "id", Expr: Expr{Text: "orders.id", Pos: at(34, 13)}},
				{Name: "total", Expr: Expr{Text: "double(orders.total_cents) / 100.0", Pos: at(35, 16)}},
			}},
			Pos: at(15, 11),
		}},
		Reconcile: Reconcile{
			ChunkRows: 5000, MaxRowsPerSecond: 5000, Settle: 5 * time.Second,
			Interval: time.Minute,
			Tolerate: []Tolerance{"null_equals_empty", "trim_space"},
			Checks: []Check{{
				Name:   "orders_last_hour",
				Source: "SELECT count(*) FROM orders WHERE created_at > NOW() - INTERVAL 1 HOUR",
				Target: "SELECT count(*) FROM orders WHERE created_at > now() - interval '1 hour'",
				Pos:    at(40, 7),
			}},
		},
		Backfill:        Backfill{ChunkRows: 5000, Parallel: 4, MaxRowsPerSecond: 0, MaxLagSeconds: 30, MaxSourceLoad: 32},
		HTTP:            HTTP{Listen: "127.0.0.1:9187"},
		ShutdownTimeout: 30 * time.Second,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

// minimal is the smallest valid config; its lines are referred to by number
// in the tests below.
const minimal = `source:
  kind: postgres
  dsn: postgres://u:pw@h/db
  tables: [public.users]
target:
  kind: mysql
  dsn: mysql://u:pw@h:3306/app
mappings:
  - from: public.users
    to:
      - table: users
        key: [id]
        columns:
          id: row.id
`

func TestParse_AbsentKeysGetDefaults(t *testing.T) {
	c := mustParse(t, minimal, nil)
	want := &Config{
		File: "tandem.yaml",
		Source: Source{
			Kind:      "postgres",
			DSN:       "postgres://u:pw@h/db",
			Tables:    []string{"public.users"},
			TablesPos: []Pos{at(4, 12)},
			MySQL:     MySQLSource{ServerID: 4242},
			Postgres:  PostgresSource{Slot: "tandem", Publication: "tandem"}, StreamTimeout: 30 * time.Second,
			Pos: at(2, 3),
		},
		Kafka:  Kafka{TopicPrefix: "tandem", Partitions: 12, Group: "tandem", Envelope: defaultEnvelope, MaxRecordBytes: 16777216, Compression: "zstd"},
		Target: Target{Kind: "mysql", DSN: "mysql://u:pw@h:3306/app", StateSchema: "tandem", WriteTimeout: 30 * time.Second, Pos: at(6, 3)},
		Mappings: []Mapping{{
			Name: "public.users",
			From: "public.users",
			To: []Output{{
				Table:    "users",
				Key:      []string{"id"},
				Mode:     "upsert",
				OnDelete: "delete",
				Columns:  []Column{{Name: "id", Expr: Expr{Text: "row.id", Pos: at(14, 15)}}},
				Pos:      at(11, 16),
			}},
			Pos: at(9, 11),
		}},
		Reconcile:       Reconcile{Interval: time.Minute, ChunkRows: 5000, MaxRowsPerSecond: 5000, Settle: 5 * time.Second},
		Backfill:        Backfill{ChunkRows: 5000, Parallel: 4, MaxLagSeconds: 30, MaxSourceLoad: 32},
		HTTP:            HTTP{Listen: "127.0.0.1:9187"},
		ShutdownTimeout: 30 * time.Second,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Parse mismatch (-want +got):\n%s", diff)
	}
}

// contractDefaults is what CONTRACT.md documents for absent keys, written
// out as literals rather than read from the code under test: a default
// changed in the code fails here until the contract's value is changed too.
func contractDefaults() *Config {
	return &Config{
		Source: Source{MySQL: MySQLSource{ServerID: 4242}, Postgres: PostgresSource{Slot: "tandem", Publication: "tandem"}, StreamTimeout: 30 * time.Second},
		Kafka: Kafka{TopicPrefix: "tandem", Partitions: 12, Group: "tandem", MaxRecordBytes: 16777216, Compression: "zstd",
			Envelope: Envelope{DecimalHandling: "string", TimePrecision: "adaptive", TombstonesOnDel: "true", SchemasEnable: "false"}},
		Target:          Target{StateSchema: "tandem", WriteTimeout: 30 * time.Second},
		Reconcile:       Reconcile{Interval: time.Minute, ChunkRows: 5000, MaxRowsPerSecond: 5000, Settle: 5 * time.Second},
		Backfill:        Backfill{ChunkRows: 5000, Parallel: 4, MaxRowsPerSecond: 0, MaxLagSeconds: 30, MaxSourceLoad: 32},
		HTTP:            HTTP{Listen: "127.0.0.1:9187"},
		ShutdownTimeout: 30 * time.Second,
	}
}

func TestDefault_IsWhatTheContractDocuments(t *testing.T) {
	if diff := cmp.Diff(contractDefaults(), Default()); diff != "" {
		t.Errorf("Default() mismatch (-contract +got):\n%s", diff)
	}
}

func TestParse_EmptyAndNullValuesMeanTheDefault(t *testing.T) {
	c := mustParse(t, minimal+`kafka:
  topic_prefix: ""
  partitions: ~
  group:
http:
  listen: ""
reconcile:
backfill: {}
`, nil)
	want := contractDefaults()
	if diff := cmp.Diff(want.Kafka, c.Kafka); diff != "" {
		t.Errorf("Kafka mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.HTTP, c.HTTP); diff != "" {
		t.Errorf("HTTP mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Backfill, c.Backfill); diff != "" {
		t.Errorf("Backfill mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Reconcile, c.Reconcile); diff != "" {
		t.Errorf("Reconcile mismatch (-want +got):\n%s", diff)
	}
}

func TestParse_ColumnsKeepFileOrderAndBlockScalarPositions(t *testing.T) {
	c := mustParse(t, `source: {kind: mysql, dsn: "mysql://u@h/db", tables: [a.t]}
target: {kind: postgres, dsn: "postgres://h/db"}
mappings:
  - from: a.t
    name: t_v2
    to:
      - table: t
        key: [zeta]
        mode: create_if_absent
        columns:
          zeta: row.z
          alpha: |
            row.a +
            1
          mid: "row.m"
`, nil)
	want := []Column{
		{Name: "zeta", Expr: Expr{Text: "row.z", Pos: at(11, 17)}},
		{Name: "alpha", Expr: Expr{Text: "row.a +\n1\n", Pos: at(13, 13)}},
		{Name: "mid", Expr: Expr{Text: "row.m", Pos: at(15, 17)}},
	}
	if diff := cmp.Diff(want, c.Mappings[0].To[0].Columns); diff != "" {
		t.Errorf("columns mismatch (-want +got):\n%s", diff)
	}
	if got := c.Mappings[0].Name; got != "t_v2" {
		t.Errorf("Name = %q, want t_v2", got)
	}
	if got := c.Mappings[0].To[0].Mode; got != ModeCreateIfAbsent {
		t.Errorf("Mode = %q, want create_if_absent", got)
	}
}

func TestParse_ExplicitValuesOverrideDefaults(t *testing.T) {
	c := mustParse(t, minimal+`kafka:
  brokers: [k1:9092, "k2:9092"]
  topic_prefix: mig-2024.v1
  partitions: 3
  group: blue
  max_record_bytes: 65536
  compression: lz4
reconcile:
  interval: 90s
  tolerate: [float_epsilon, time_precision_ms, case_insensitive]
backfill: {chunk_rows: 100, parallel: 1, max_rows_per_second: 250, max_lag_seconds: -1, max_source_load: 8}
http: {listen: ":0"}
`, nil)
	want := Kafka{Brokers: []string{"k1:9092", "k2:9092"}, TopicPrefix: "mig-2024.v1", Partitions: 3, Group: "blue",
		MaxRecordBytes: 65536, Compression: "lz4",
		Envelope: Envelope{DecimalHandling: "string", TimePrecision: "adaptive", TombstonesOnDel: "true", SchemasEnable: "false"}}
	if diff := cmp.Diff(want, c.Kafka); diff != "" {
		t.Errorf("Kafka mismatch (-want +got):\n%s", diff)
	}
	wantR := Reconcile{Interval: 90 * time.Second, ChunkRows: 5000, MaxRowsPerSecond: 5000, Settle: 5 * time.Second, Tolerate: []Tolerance{"float_epsilon", "time_precision_ms", "case_insensitive"}}
	if diff := cmp.Diff(wantR, c.Reconcile); diff != "" {
		t.Errorf("Reconcile mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Backfill{ChunkRows: 100, Parallel: 1, MaxRowsPerSecond: 250, MaxLagSeconds: -1, MaxSourceLoad: 8}, c.Backfill); diff != "" {
		t.Errorf("Backfill mismatch (-want +got):\n%s", diff)
	}
	if c.HTTP.Listen != ":0" {
		t.Errorf("Listen = %q, want :0", c.HTTP.Listen)
	}
}

func TestParse_AliasesShareColumns(t *testing.T) {
	c := mustParse(t, `source: {kind: mysql, dsn: "mysql://u@h/db", tables: [a.t]}
target: {kind: postgres, dsn: "postgres://h/db"}
mappings:
  - from: a.t
    to:
      - table: t1
        key: [id]
        columns: &cols
          id: row.id
      - table: t2
        key: [id]
        columns: *cols
`, nil)
	want := []Column{{Name: "id", Expr: Expr{Text: "row.id", Pos: at(9, 15)}}}
	for i, o := range c.Mappings[0].To {
		if diff := cmp.Diff(want, o.Columns); diff != "" {
			t.Errorf("to[%d] columns mismatch (-want +got):\n%s", i, diff)
		}
	}
}

func TestParse_ExpandsEnvironmentInValuesOnly(t *testing.T) {
	vars := map[string]string{
		// Characters that would break the YAML if substituted before parsing.
		"PW":     `p#ss: "w'rd`,
		"PREFIX": "blue",
		"PARTS":  "6",
		"KEY":    "kind",
	}
	c := mustParse(t, `source:
  kind: mysql
  dsn: mysql://app:${PW}@h:3306/shop
  tables: [shop.orders]
target: {kind: postgres, dsn: "postgres://h/db?application_name=$$x"}
kafka:
  topic_prefix: ${PREFIX}
  partitions: ${PARTS}
mappings:
  - from: shop.orders
    to:
      - table: orders
        key: [id]
        columns:
          id: row.id
          price: 'row.note == "$$${KEY}$"'
`, vars)
	if got, want := c.Source.DSN.Value(), `mysql://app:p#ss: "w'rd@h:3306/shop`; got != want {
		t.Errorf("source DSN = %q, want %q", got, want)
	}
	if got, want := c.Target.DSN.Value(), "postgres://h/db?application_name=$x"; got != want {
		t.Errorf("target DSN = %q, want %q", got, want)
	}
	if c.Kafka.TopicPrefix != "blue" || c.Kafka.Partitions != 6 {
		t.Errorf("Kafka = %+v, want prefix blue and 6 partitions", c.Kafka)
	}
	if got, want := c.Mappings[0].To[0].Columns[1].Expr.Text, `row.note == "$kind$"`; got != want {
		t.Errorf("expression = %q, want %q", got, want)
	}
	// Keys are never expanded: ${KEY} as a key is an unknown key.
	_, err := Parse("tandem.yaml", []byte("source:\n  ${KEY}: mysql\n"), env(vars))
	if err == nil || !strings.Contains(err.Error(), `tandem.yaml:2:3: source["${KEY}"]: unknown key`) {
		t.Errorf("key with ${KEY}: got %v, want an unknown key error", err)
	}
}

func TestLoad_ReadsTheFileAndTheProcessEnvironment(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tandem.yaml")
	data := strings.Replace(minimal, "postgres://u:pw@h/db", "${TANDEM_TEST_SOURCE_DSN}", 1)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TANDEM_TEST_SOURCE_DSN", "postgres://u:other@h/db")
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.File != path || c.Source.Pos.File != path || c.Source.DSN.Value() != "postgres://u:other@h/db" {
		t.Errorf("Load = File %q, Source.Pos %v, DSN %v", c.File, c.Source.Pos, c.Source.DSN)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestErrors_AreFoundWithErrorsAs(t *testing.T) {
	_, err := Parse("tandem.yaml", []byte("source: {tabels: 1}\n"), nil)
	var es Errors
	if !errors.As(err, &es) || len(es) < 2 {
		t.Fatalf("errors.As(Errors) = %v, %v", es, err)
	}
	var e *Error
	if !errors.As(err, &e) || e != es[0] {
		t.Fatalf("errors.As(*Error) = %v, want the first of %v", e, es)
	}
}

func TestValidate_ConfigBuiltInCode(t *testing.T) {
	c := &Config{
		Source: Source{Kind: KindPostgres, DSN: "postgres://h/db", Tables: []string{"public.a"}},
		Target: Target{Kind: KindPostgres, DSN: "postgres://h/db2"},
		Mappings: []Mapping{{From: "public.a", To: []Output{{
			Table: "a", Key: []string{"id"},
			Columns: []Column{{Name: "id", Expr: Expr{Text: "row.id"}}},
		}}}},
	}
	if err := c.Validate(); err == nil {
		t.Fatal("Validate before SetDefaults = nil, want errors about the zero fields")
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate after SetDefaults: %v", err)
	}
	if c.Mappings[0].Name != "public.a" || c.Mappings[0].To[0].Mode != ModeUpsert {
		t.Errorf("SetDefaults: name %q, mode %q", c.Mappings[0].Name, c.Mappings[0].To[0].Mode)
	}

	c.Mappings[0].From = "public.b"
	c.Mappings[0].Pos = Pos{File: "x.yaml", Line: 3, Col: 9}
	c.HTTP.Listen = "9187"
	want := "x.yaml:3:9: mappings[0].from: must be one of source.tables, got \"public.b\"\n" +
		"http.listen: must be host:port, such as 127.0.0.1:9187 or :9187, got \"9187\""
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate = %v\nwant %s", err, want)
	}
}

func TestParse_TargetStateSchema(t *testing.T) {
	c := mustParse(t, strings.Replace(minimal, "target:\n", "target:\n  state_schema: tandem_blue\n", 1), nil)
	if c.Target.StateSchema != "tandem_blue" {
		t.Errorf("StateSchema = %q, want tandem_blue", c.Target.StateSchema)
	}
}
