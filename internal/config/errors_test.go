package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// head is the valid start of most bad configs below: 7 lines, so the case's
// own lines start at line 8, and lines indented by two spaces continue
// source.
const head = `target:
  kind: postgres
  dsn: postgres://u:pw@h/db
source:
  kind: mysql
  dsn: mysql://u:pw@h/db
  tables: [shop.orders, shop.customers]
`

func TestParse_BadInputGivesExactErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{
			name: "empty file",
			yaml: "",
			want: "tandem.yaml: the file is empty",
		},
		{
			name: "only comments",
			yaml: "# nothing yet\n",
			want: "tandem.yaml: the file is empty",
		},
		{
			name: "not YAML",
			yaml: "source:\n  kind: [mysql\n",
			want: "tandem.yaml:2: not valid YAML: did not find expected ',' or ']'",
		},
		{
			name: "binary",
			yaml: "\x00\x01\x02",
			want: "tandem.yaml: not valid YAML: control characters are not allowed",
		},
		{
			name: "unquoted colon in an expression",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - columns:\n          s: row.s == \"\" ? \"x\" : row.s\n",
			want: `tandem.yaml:12: not valid YAML: mapping values are not allowed in this context (quote a value that contains ": ", e.g. status: 'row.s == "" ? "new" : row.s')`,
		},
		{
			name: "top level is a list",
			yaml: "- source\n- target\n",
			want: "tandem.yaml:1:1: the top level must be a mapping of sections (source, kafka, target, mappings, ...), got a list",
		},
		{
			name: "two documents",
			yaml: head + "---\nsource: {}\n",
			want: "tandem.yaml:8: a second YAML document: the file must hold exactly one",
		},
		{
			name: "unknown key",
			yaml: "source:\n  kind: mysql\n  dsn: mysql://u:pw@h/db\n  tabels: [shop.orders]\ntarget: {kind: postgres, dsn: postgres://h/db}\n",
			want: "tandem.yaml:2:3: source.tables: must list at least one table\n" +
				"tandem.yaml:4:3: source.tabels: unknown key (known: kind, dsn, dsn_file, tables, mysql, postgres, stream_timeout)",
		},
		{
			name: "unknown top-level and nested keys",
			yaml: head + "kafak: {}\nmappings:\n  - from: shop.orders\n    to:\n      - table: t\n        key: [id]\n        colums: {id: row.id}\n",
			want: "tandem.yaml:8:1: kafak: unknown key (known: source, kafka, target, mappings, reconcile, backfill, http, cutover, shutdown_timeout)\n" +
				"tandem.yaml:12:9: mappings[0].to[0].columns: must list at least one column\n" +
				"tandem.yaml:14:9: mappings[0].to[0].colums: unknown key (known: table, key, mode, on_delete, when, cohort, columns)",
		},
		{
			name: "duplicate key",
			yaml: head + "kafka:\n  partitions: 3\n  partitions: 4\n",
			want: "tandem.yaml:10:3: kafka.partitions: duplicate key (first at tandem.yaml:9:3)",
		},
		{
			name: "duplicate column",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - table: t\n        key: [id]\n        columns:\n          id: row.id\n          id: row.id2\n",
			want: "tandem.yaml:15:11: mappings[0].to[0].columns.id: duplicate key (first at tandem.yaml:14:11)",
		},
		{
			name: "list where a string goes",
			yaml: "source:\n  kind: [mysql]\n  dsn: mysql://u:pw@h/db\n  tables: [shop.orders]\ntarget: {kind: postgres, dsn: postgres://h/db}\n",
			want: "tandem.yaml:2:9: source.kind: must be a string, got a list",
		},
		{
			name: "string where a mapping goes",
			yaml: head + "kafka: embedded\n",
			want: "tandem.yaml:8:8: kafka: must be a mapping, got a string",
		},
		{
			name: "string where a list goes",
			yaml: "source:\n  kind: mysql\n  dsn: mysql://u:pw@h/db\n  tables: shop.orders\ntarget: {kind: postgres, dsn: postgres://h/db}\n",
			want: "tandem.yaml:4:11: source.tables: must be a list, got a string",
		},
		{
			name: "not a number",
			yaml: head + "kafka:\n  partitions: many\nbackfill: {chunk_rows: 1.5, parallel: true}\n",
			want: "tandem.yaml:9:15: kafka.partitions: must be a whole number, got \"many\"\n" +
				"tandem.yaml:10:24: backfill.chunk_rows: must be a whole number, got \"1.5\"\n" +
				"tandem.yaml:10:39: backfill.parallel: must be a whole number, got \"true\"",
		},
		{
			name: "not a duration",
			yaml: head + "reconcile:\n  interval: 60\n",
			want: "tandem.yaml:9:13: reconcile.interval: must be a duration such as 30s, 1m or 1h30m, got \"60\"",
		},
		{
			name: "server_id out of range",
			yaml: head + "  mysql: {server_id: 4294967296}\n",
			want: "tandem.yaml:8:22: source.mysql.server_id: must be a whole number from 1 to 4294967295, got \"4294967296\"",
		},
		{
			name: "explicit zeros are not defaults",
			yaml: head + "  mysql: {server_id: 0}\nkafka: {partitions: 0}\nreconcile: {interval: 0s}\nbackfill: {chunk_rows: 0, parallel: -1, max_rows_per_second: -5, max_lag_seconds: 0, max_source_load: -2}\n",
			want: "tandem.yaml:8:22: source.mysql.server_id: must be a whole number from 1 to 4294967295\n" +
				"tandem.yaml:9:21: kafka.partitions: must be from 1 to 10000\n" +
				"tandem.yaml:10:23: reconcile.interval: must be more than 0\n" +
				"tandem.yaml:11:24: backfill.chunk_rows: must be more than 0\n" +
				"tandem.yaml:11:37: backfill.parallel: must be more than 0\n" +
				"tandem.yaml:11:62: backfill.max_rows_per_second: must be 0 (unthrottled) or more\n" +
				"tandem.yaml:11:83: backfill.max_lag_seconds: must be more than 0, or -1 never to pause for lag\n" +
				"tandem.yaml:11:103: backfill.max_source_load: must be more than 0, or -1 never to pause for the source's load",
		},
		{
			name: "state schema too long",
			yaml: "target:\n  kind: postgres\n  dsn: postgres://u:pw@h/db\n  state_schema: " + strings.Repeat("s", 64) + "\n" + head[strings.Index(head, "source:"):],
			want: "tandem.yaml:4:17: target.state_schema: must be a schema (PostgreSQL) or database (MySQL) name of 1 to 63 bytes",
		},
		{
			name: "unset variable",
			yaml: "source:\n  kind: mysql\n  dsn: mysql://u:${DB_PASSWORD}@h/db\n  tables: [shop.orders]\ntarget: {kind: postgres, dsn: \"${TARGET_DSN}\"}\n",
			want: "tandem.yaml:3:8: source.dsn: environment variable DB_PASSWORD is not set\n" +
				"tandem.yaml:5:31: target.dsn: environment variable TARGET_DSN is not set",
		},
		{
			name: "bad variable references",
			yaml: head + "kafka:\n  group: ${}\n  topic_prefix: ${OPEN\n",
			want: "tandem.yaml:9:10: kafka.group: invalid environment variable reference: ${...} must hold a name of letters, digits and _ (write $$ for a literal $)\n" +
				"tandem.yaml:10:17: kafka.topic_prefix: unterminated ${: write ${NAME}, or $$ for a literal $",
		},
		{
			name: "mapping tolerances",
			yaml: "source: {kind: postgres, dsn: \"postgres://u@h/db\", tables: [shop.orders]}\n" +
				"target: {kind: postgres, dsn: \"postgres://u@h/db\"}\n" +
				"mappings:\n  - from: shop.orders\n    tolerate: [trim_space, fuzzy]\n    tolerate_columns:\n" +
				"      public.orders.note: [null_equals_empty]\n      public.orders.nope: [trim_space]\n      public.orders.id: [fuzzy]\n" +
				"    to:\n      - table: public.orders\n        key: [id]\n        columns: {id: row.id, note: row.note}\n",
			want: "tandem.yaml:5:28: mappings[0].tolerate[1]: unknown tolerance \"fuzzy\" (known: null_equals_empty, trim_space, float_epsilon, time_precision_ms, case_insensitive)\n" +
				"tandem.yaml:8:27: mappings[0].tolerate_columns[\"public.orders.nope\"]: is not <to table>.<column> of a column this mapping writes\n" +
				"tandem.yaml:9:26: mappings[0].tolerate_columns[\"public.orders.id\"][0]: unknown tolerance \"fuzzy\" (known: null_equals_empty, trim_space, float_epsilon, time_precision_ms, case_insensitive)",
		},
		{
			name: "missing sections",
			yaml: "kafka: {}\n",
			want: "tandem.yaml: source.kind: required (mysql or postgres)\n" +
				"tandem.yaml: source.dsn: required\n" +
				"tandem.yaml: source.tables: must list at least one table\n" +
				"tandem.yaml: target.kind: required (mysql or postgres)\n" +
				"tandem.yaml: target.dsn: required",
		},
		{
			name: "source and target rules",
			yaml: "source:\n  kind: oracle\n  dsn: \"\"\n  tables: [orders, shop.orders, shop.orders, a.b.c, .x]\n  postgres: {slot: Tandem-1}\ntarget:\n  kind: postgres\n  dsn: mysql://u:pw@h/db\n",
			want: "tandem.yaml:2:9: source.kind: unknown kind \"oracle\" (known: mysql, postgres)\n" +
				"tandem.yaml:3:8: source.dsn: required\n" +
				"tandem.yaml:4:12: source.tables[0]: must be \"schema.table\", got \"orders\"\n" +
				"tandem.yaml:4:33: source.tables[2]: duplicate of source.tables[1]\n" +
				"tandem.yaml:4:46: source.tables[3]: must be \"schema.table\", got \"a.b.c\"\n" +
				"tandem.yaml:4:53: source.tables[4]: must be \"schema.table\", got \".x\"\n" +
				"tandem.yaml:5:20: source.postgres.slot: must be 1 to 63 lower-case letters, digits or _, got \"Tandem-1\"\n" +
				"tandem.yaml:8:8: target.dsn: the URL scheme does not fit kind postgres (write postgres://...)",
		},
		{
			name: "kafka, reconcile and http rules",
			yaml: head + "kafka: {brokers: [\"\", \"a b\"], topic_prefix: \"tandem/x\", partitions: 10001}\n" +
				"reconcile:\n  tolerate: [trim_space, trim_space, fuzzy]\n  checks:\n    - name: c\n      source: SELECT 1\n    - name: c\n      source: SELECT 1\n      target: \" \"\n" +
				"http: {listen: localhost}\n",
			want: "tandem.yaml:8:19: kafka.brokers[0]: must be host:port, got \"\"\n" +
				"tandem.yaml:8:23: kafka.brokers[1]: must be host:port, got \"a b\"\n" +
				"tandem.yaml:8:45: kafka.topic_prefix: must be letters, digits, '.', '_' or '-', got \"tandem/x\"\n" +
				"tandem.yaml:8:69: kafka.partitions: must be from 1 to 10000\n" +
				"tandem.yaml:10:26: reconcile.tolerate[1]: duplicate of reconcile.tolerate[0]\n" +
				"tandem.yaml:10:38: reconcile.tolerate[2]: unknown tolerance \"fuzzy\" (known: null_equals_empty, trim_space, float_epsilon, time_precision_ms, case_insensitive)\n" +
				"tandem.yaml:12:7: reconcile.checks[0].target: required: a query on the target returning one number\n" +
				"tandem.yaml:14:13: reconcile.checks[1].name: duplicate check name \"c\" (first in reconcile.checks[0])\n" +
				"tandem.yaml:16:15: reconcile.checks[1].target: required: a query on the target returning one number\n" +
				"tandem.yaml:17:16: http.listen: must be host:port, such as 127.0.0.1:9187 or :9187, got \"localhost\"",
		},
		{
			name: "mapping rules",
			yaml: head + `mappings:
  - from: shop.order
    to:
      - table: a.b.c
        key: []
        mode: overwrite
        when: "  "
        columns:
          "": row.x
          y: ""
  - from: shop.customers
    to: []
    inverse: {columns: {}}
  - from: shop.customers
    to:
      - table: customers
        key: [id, id, name]
        columns: {id: row.id}
  - to: [{table: t, key: [id], columns: {id: row.id}}]
`,
			want: "tandem.yaml:9:11: mappings[0].from: must be one of source.tables, got \"shop.order\"\n" +
				"tandem.yaml:11:16: mappings[0].to[0].table: must be \"schema.table\" or \"table\", got \"a.b.c\"\n" +
				"tandem.yaml:12:14: mappings[0].to[0].key: must list at least one column\n" +
				"tandem.yaml:13:15: mappings[0].to[0].mode: unknown mode \"overwrite\" (known: upsert, create_if_absent)\n" +
				"tandem.yaml:14:15: mappings[0].to[0].when: must not be empty\n" +
				"tandem.yaml:16:15: mappings[0].to[0].columns[\"\"]: column name must not be empty\n" +
				"tandem.yaml:17:14: mappings[0].to[0].columns.y: expression must not be empty\n" +
				"tandem.yaml:19:9: mappings[1].to: must list at least one target table\n" +
				"tandem.yaml:20:24: mappings[1].inverse.columns: must list at least one column\n" +
				"tandem.yaml:21:5: mappings[2].name: duplicate mapping name \"shop.customers\" (first in mappings[1]); set name to tell them apart\n" +
				"tandem.yaml:24:19: mappings[2].to[0].key[1]: duplicate of key[0]\n" +
				"tandem.yaml:24:23: mappings[2].to[0].key[2]: must be one of the columns of this output, got \"name\"\n" +
				"tandem.yaml:26:5: mappings[3].from: required: the source table to read",
		},
		{
			name: "cutover guard",
			yaml: head + "cutover:\n  guard: block\n",
			want: "tandem.yaml:9:10: cutover.guard: unknown guard \"block\" (known: report, reject)",
		},
		{
			name: "cohorts",
			yaml: head + `mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        cohort: row.merchant_id
        columns: {id: row.id, merchant_id: row.merchant_id}
  - from: shop.customers
    cohort: " "
    to:
      - table: public.customers
        key: [id]
        cohort: ""
        columns: {id: row.id}
`,
			want: "tandem.yaml:13:17: mappings[0].to[0].cohort: the mapping has no cohort: set mappings[].cohort (the source row's cohort column) too, or remove this one\n" +
				"tandem.yaml:16:13: mappings[1].cohort: must not be empty: name the column that holds the row's cohort, such as row.merchant_id\n" +
				"tandem.yaml:20:17: mappings[1].to[0].cohort: must not be empty: name the column of this table that holds the row's cohort, such as row.merchant_id",
		},
		{
			name: "merge keys",
			yaml: head + "kafka:\n  <<: {partitions: 3}\n",
			want: "tandem.yaml:9:3: kafka: merge keys (<<) are not supported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("tandem.yaml", []byte(tt.yaml), env(tt.env))
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want errors", c)
			}
			if diff := cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrors_ShowTheFirstTwentyEachCutAndCountTheRest(t *testing.T) {
	var es Errors
	for i := range 25 {
		es = append(es, &Error{Pos: Pos{File: "tandem.yaml", Line: i + 1, Col: 3}, Path: fmt.Sprintf("mappings[%d].from", i), Msg: "must not be empty"})
	}
	es[0].Msg = "unknown value " + strings.Repeat("x", 5000)
	var want []string
	prefix := "tandem.yaml:1:3: mappings[0].from: unknown value "
	want = append(want, prefix+strings.Repeat("x", 1000-len(prefix))+fmt.Sprintf("... (%d bytes more)", len(prefix)+5000-1000))
	for i := 1; i < 20; i++ {
		want = append(want, fmt.Sprintf("tandem.yaml:%d:3: mappings[%d].from: must not be empty", i+1, i))
	}
	want = append(want, "... and 5 more problems: fix these first")
	if diff := cmp.Diff(want, strings.Split(es.Error(), "\n")); diff != "" {
		t.Errorf("Errors.Error() (-want +got):\n%s", diff)
	}
	if len(es.Unwrap()) != 25 {
		t.Errorf("Unwrap gives %d problems, want all 25", len(es.Unwrap()))
	}
}
