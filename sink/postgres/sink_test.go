package postgres_test

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// row is a target row: for writes, column -> Go value; as read back,
// column -> PostgreSQL's text form, nil for NULL.
type row = map[string]any

// shopDDL is the target schema most tests write to.
const shopDDL = `
CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer, note text);
CREATE TABLE lines (order_id bigint, line integer, sku text, PRIMARY KEY (order_id, line));
`

// The queries that read the whole of each shop table, in key order.
const (
	allItems = "SELECT * FROM items ORDER BY id"
	allLines = "SELECT * FROM lines ORDER BY order_id, line"
)

// target is a fresh database holding a schema, and a Sink writing to it.
type target struct {
	dsn  string
	db   *pgxpool.Pool
	sink *postgres.Sink
}

func newTarget(t *testing.T, ddl string) *target {
	t.Helper()
	dsn := testenv.NewDatabase(t)
	db, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to the target: %v", err)
	}
	t.Cleanup(db.Close)
	tg := &target{dsn: dsn, db: db}
	tg.Exec(t, ddl)
	tg.sink = tg.newSink(t, postgres.Config{DSN: dsn})
	return tg
}

// newSink opens another Sink on the target, closed when the test ends.
func (tg *target) newSink(t *testing.T, cfg postgres.Config) *postgres.Sink {
	t.Helper()
	s, err := postgres.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Exec runs sql, which may hold several statements.
func (tg *target) Exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := tg.db.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Rows returns what query selects, every column in PostgreSQL's text form.
func (tg *target) Rows(t *testing.T, query string) []row {
	t.Helper()
	// not a cached statement: tests alter tables between reads
	rs, err := tg.db.Query(t.Context(), query, pgx.QueryExecModeDescribeExec, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		r := row{}
		for i, f := range rs.FieldDescriptions() {
			r[f.Name] = nil
			if v := rs.RawValues()[i]; v != nil {
				r[f.Name] = string(v)
			}
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// wantRows fails the test unless query selects exactly want.
func (tg *target) wantRows(t *testing.T, query string, want []row) {
	t.Helper()
	if diff := cmp.Diff(want, tg.Rows(t, query), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", query, diff)
	}
}

// apply applies writes with checkpoint cp and fails the test on an error.
func (tg *target) apply(t *testing.T, cp sink.Checkpoint, writes ...change.Write) {
	t.Helper()
	if err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// applyErr applies writes with checkpoint cp and returns the error, failing
// the test when there is none.
func (tg *target) applyErr(t *testing.T, cp sink.Checkpoint, writes ...change.Write) error {
	t.Helper()
	err := tg.sink.Apply(t.Context(), sink.Batch{Writes: writes}, cp)
	if err == nil {
		t.Fatal("Apply succeeded, want an error")
	}
	return err
}

// wantPgError fails the test unless err wraps a PostgreSQL error with code.
func wantPgError(t *testing.T, err error, code string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		t.Errorf("error = %v, want SQLSTATE %s", err, code)
	}
}

func write(op change.WriteOp, table string, r row, key ...string) change.Write {
	return change.Write{Table: table, Op: op, Key: key, Row: r}
}

func item(op change.WriteOp, r row) change.Write { return write(op, "items", r, "id") }

func offset(topic string, partition int32, next int64) sink.Offset {
	return sink.Offset{Topic: topic, Partition: partition, Next: next}
}

// typesDDL has a column of each type the sink must write through text casts.
const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
	id integer PRIMARY KEY, i8 bigint, i4 integer, n numeric(65,30), f double precision, b boolean,
	t text, by bytea, js jsonb, jm jsonb, ts timestamptz, d date, u uuid, m mood, c char(3), v varchar(5));
`

// withNulls sets every column of kinds that r does not name to nil: what a
// row inserted without them holds, or a write of NULL to each.
func withNulls(r row) row {
	for _, c := range []string{"i8", "i4", "n", "f", "b", "t", "by", "js", "jm", "ts", "d", "u", "m", "c", "v"} {
		if _, ok := r[c]; !ok {
			r[c] = nil
		}
	}
	return r
}

func TestApply_TypesGoThroughTextCasts(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, typesDDL)
	kind := func(r row) change.Write { return write(change.WriteUpsert, "kinds", r, "id") }
	tg.apply(t, sink.Checkpoint{},
		kind(row{
			"id": int64(1), "i8": int64(math.MinInt64), "i4": int32(math.MaxInt32),
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": 0.1, "b": true, "t": "naïve 🐘 日本語のテキスト",
			"by": []byte{0x00, 0x01, '\\', '\'', 0xff},
			"js": `{"b": [1, 2.50], "a": "x"}`,
			"jm": map[string]any{"k": "v", "n": 1.5, "nested": map[string]any{"z": nil}, "list": []any{1, "two"}},
			"ts": time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("JST", 9*3600)),
			"d":  "2024-02-29", "u": "6f1c8a5e-3b7d-4c2a-9e1f-0a1b2c3d4e5f", "m": "happy", "c": "ab", "v": "日本語です",
		}),
		kind(row{"id": int64(2), "i8": uint64(math.MaxInt64), "i4": int(-7), "n": 0.1, "f": math.NaN(), "b": false,
			"d": time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "by": []byte{}, "t": ""}),
		kind(row{"id": int64(3), "f": math.Inf(1), "n": "NaN"}),
		kind(row{"id": int64(4), "f": math.Inf(-1)}),
		kind(withNulls(row{"id": int64(5)})),
	)
	tg.wantRows(t, "SELECT * FROM kinds ORDER BY id", []row{
		{
			"id": "1", "i8": "-9223372036854775808", "i4": "2147483647",
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": "0.1", "b": "t", "t": "naïve 🐘 日本語のテキスト",
			"by": `\x00015c27ff`,
			"js": `{"a": "x", "b": [1, 2.50]}`,
			"jm": `{"k": "v", "n": 1.5, "list": [1, "two"], "nested": {"z": null}}`,
			"ts": "2024-02-29 14:59:59.123457+00",
			"d":  "2024-02-29", "u": "6f1c8a5e-3b7d-4c2a-9e1f-0a1b2c3d4e5f", "m": "happy", "c": "ab ", "v": "日本語です",
		},
		withNulls(row{"id": "2", "i8": "9223372036854775807", "i4": "-7", "n": "0.100000000000000000000000000000", "f": "NaN", "b": "f",
			"d": "2024-03-01", "by": `\x`, "t": ""}),
		withNulls(row{"id": "3", "f": "Infinity", "n": "NaN"}),
		withNulls(row{"id": "4", "f": "-Infinity"}),
		withNulls(row{"id": "5"}),
	})
}

func TestApply_TooLongValueIsAnErrorNotATruncation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    row
	}{
		{"varchar(5) given 6 characters", row{"id": int64(1), "v": "abcdef"}},
		{"varchar(5) given 6 Japanese characters", row{"id": int64(1), "v": "日本語のテキ"}},
		{"char(3) given 4 characters", row{"id": int64(1), "c": "abcd"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t, typesDDL)
			err := tg.applyErr(t, sink.Checkpoint{}, write(change.WriteUpsert, "kinds", tc.r, "id"))
			wantPgError(t, err, "22001") // string_data_right_truncation
			tg.wantRows(t, "SELECT * FROM kinds", nil)
		})
	}
}

// hostileDDL names a schema, a type, a table and columns as badly as PostgreSQL allows.
const hostileDDL = `
CREATE SCHEMA "Shop Old";
CREATE TYPE "Shop Old"."Mood" AS ENUM ('sad', 'happy');
CREATE TABLE "Shop Old"."order" (
	"select" bigint, "MixedCase" text, """quoted""" text, "Mood" "Shop Old"."Mood",
	"a,b" text, a text, b text,
	PRIMARY KEY ("select", "MixedCase"));
`

func TestApply_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, hostileDDL)
	const table = "Shop Old.order"
	key := []string{"select", "MixedCase"}
	order := func(op change.WriteOp, r row) change.Write { return write(op, table, r, key...) }
	// Another state schema, as badly named.
	s := tg.newSink(t, postgres.Config{DSN: tg.dsn, StateSchema: `Tandem "State"`})
	cp := sink.Checkpoint{Group: "g", Epoch: "e", Offsets: []sink.Offset{offset("shop.order", 0, 7)}}
	err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteUpsert, row{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma"}),
		// the same columns as above but for "a,b", and a and b instead
		order(change.WriteUpsert, row{"select": int64(2), "MixedCase": "b", `"quoted"`: "q2", "Mood": "sad", "a": "x", "b": "y"}),
		order(change.WriteInsertIfAbsent, row{"select": int64(3), "MixedCase": "C"}),
		order(change.WriteUpsert, row{"select": int64(4), "MixedCase": "d", "a": "gone"}),
	}}, cp)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
		order(change.WriteDelete, row{"select": int64(4), "MixedCase": "d"}),
		order(change.WriteUpsert, row{"select": int64(3), "MixedCase": "C", "Mood": "sad"}),
	}}, sink.Checkpoint{}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	tg.wantRows(t, `SELECT * FROM "Shop Old"."order" ORDER BY 1, 2`, []row{
		{"select": "1", "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma", "a": nil, "b": nil},
		{"select": "2", "MixedCase": "b", `"quoted"`: "q2", "Mood": "sad", "a,b": nil, "a": "x", "b": "y"},
		{"select": "3", "MixedCase": "C", `"quoted"`: nil, "Mood": "sad", "a,b": nil, "a": nil, "b": nil},
	})
	got, err := s.Offsets(t.Context(), "g", "e")
	if err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	if diff := cmp.Diff(cp.Offsets, got); diff != "" {
		t.Errorf("Offsets (-want +got):\n%s", diff)
	}
	uses := []sink.TableUse{{Table: table, Key: key, Columns: []string{"select", "MixedCase", `"quoted"`, "Mood", "a,b", "a", "b"}}}
	if diff := cmp.Diff([]preflight.Problem(nil), postgres.Check(t.Context(), postgres.Config{DSN: tg.dsn}, uses)); diff != "" {
		t.Errorf("Check (-want +got):\n%s", diff)
	}
}

func TestCheck_ReportsWhatTheTargetLacks(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `
CREATE TABLE good (id bigint PRIMARY KEY, name text);
CREATE TABLE nokey (id bigint, name text);
CREATE TABLE partial (id bigint, name text);
CREATE UNIQUE INDEX ON partial (id) WHERE id > 0;
CREATE TABLE wide (id bigint, tenant integer, name text);
CREATE UNIQUE INDEX ON wide (tenant, id);
CREATE TABLE covering (id bigint, name text);
CREATE UNIQUE INDEX ON covering (id) INCLUDE (name);
CREATE TABLE deferred (id bigint, name text, UNIQUE (id) DEFERRABLE);
`)
	use := func(table string, key ...string) sink.TableUse {
		return sink.TableUse{Table: table, Key: key, Columns: append([]string{"name"}, key...)}
	}
	noKey := func(table, key, fix string) preflight.Problem {
		return preflight.Problem{Severity: preflight.Fail, Object: "target table " + table,
			What: "has no primary key or unique index on the mapping key (" + key + "), which upserts need", Fix: fix}
	}
	tests := []struct {
		name string
		uses []sink.TableUse
		want []preflight.Problem
	}{
		{"a good table", []sink.TableUse{use("good", "id"), use("public.good", "id")}, nil},
		{"a key in another order than the unique index's", []sink.TableUse{use("wide", "id", "tenant")}, nil},
		{"a unique index with included columns", []sink.TableUse{use("covering", "id")}, nil},
		{"a missing table", []sink.TableUse{use("missing", "id"), use("nope.good", "id")}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target table missing", What: "does not exist", Fix: "create it in the target, or correct the mapping's table"},
			{Severity: preflight.Fail, Object: "target table nope.good", What: "does not exist", Fix: "create it in the target, or correct the mapping's table"},
		}},
		{"a missing column", []sink.TableUse{{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name", "Name", "price"}}}, []preflight.Problem{
			{Severity: preflight.Fail, Object: "target column good.Name", What: "does not exist", Fix: `ALTER TABLE "good" ADD COLUMN "Name" <type>; or correct the mapping`},
			{Severity: preflight.Fail, Object: "target column good.price", What: "does not exist", Fix: `ALTER TABLE "good" ADD COLUMN "price" <type>; or correct the mapping`},
		}},
		{"no unique index on the key", []sink.TableUse{use("nokey", "id")}, []preflight.Problem{
			noKey("nokey", "id", `CREATE UNIQUE INDEX ON "nokey" ("id");`),
		}},
		{"a key of a column that is not unique alone", []sink.TableUse{use("wide", "id"), use("good", "id", "name")}, []preflight.Problem{
			noKey("wide", "id", `CREATE UNIQUE INDEX ON "wide" ("id");`),
			noKey("good", "id, name", `CREATE UNIQUE INDEX ON "good" ("id", "name");`),
		}},
		{"a partial unique index", []sink.TableUse{use("partial", "id")}, []preflight.Problem{
			noKey("partial", "id", `CREATE UNIQUE INDEX ON "partial" ("id");`),
		}},
		{"a deferrable unique constraint", []sink.TableUse{use("deferred", "id")}, []preflight.Problem{
			noKey("deferred", "id", `CREATE UNIQUE INDEX ON "deferred" ("id");`),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, postgres.Check(t.Context(), postgres.Config{DSN: tg.dsn}, tc.uses)); diff != "" {
				t.Errorf("Check (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheck_ReportsAUserWhoMayNotWrite(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, `CREATE TABLE good (id bigint PRIMARY KEY, name text)`)
	cfg, err := pgconn.ParseConfig(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Roles belong to the server, so the name comes from the test's database.
	role := "reader_" + cfg.Database
	tg.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'reader-pw'; GRANT SELECT, INSERT ON good TO %[1]s`,
		pgx.Identifier{role}.Sanitize()))
	u, err := url.Parse(tg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "reader-pw")
	tg.Exec(t, `DROP SCHEMA IF EXISTS tandem CASCADE`) // a fresh target: no state schema yet
	uses := []sink.TableUse{{Table: "good", Key: []string{"id"}, Columns: []string{"id", "name"}}}
	who := pgx.Identifier{role}.Sanitize()
	want := []preflight.Problem{{Severity: preflight.Fail, Object: "target table good",
		What: "the target user may not insert, update and delete rows", Fix: `GRANT INSERT, UPDATE, DELETE, SELECT ON "good" TO <target user>;`},
		{Severity: preflight.Fail, Object: "target state schema tandem", What: "does not exist, and the target user " + role + " may not create it",
			Fix: fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO %s; or CREATE SCHEMA "tandem" AUTHORIZATION %[2]s;`, pgx.Identifier{cfg.Database}.Sanitize(), who)}}
	if diff := cmp.Diff(want, postgres.Check(t.Context(), postgres.Config{DSN: u.String()}, uses)); diff != "" {
		t.Errorf("Check with no state schema (-want +got):\n%s", diff)
	}

	// The schema made by another user: the reader may not use it, then
	// not write its tables.
	tg.Exec(t, `CREATE SCHEMA tandem; CREATE TABLE tandem.kafka_offsets (id int); CREATE TABLE tandem.backfills (id int)`)
	want[1] = preflight.Problem{Severity: preflight.Fail, Object: "target state schema tandem",
		What: "the target user " + role + " may not use it and create tandem's tables in it", Fix: `GRANT USAGE, CREATE ON SCHEMA "tandem" TO ` + who + ";"}
	if diff := cmp.Diff(want, postgres.Check(t.Context(), postgres.Config{DSN: u.String()}, uses)); diff != "" {
		t.Errorf("Check with a state schema the user may not use (-want +got):\n%s", diff)
	}
	tg.Exec(t, fmt.Sprintf(`GRANT USAGE, CREATE ON SCHEMA tandem TO %s; GRANT ALL ON tandem.backfills TO %[1]s`, who))
	want[1] = preflight.Problem{Severity: preflight.Fail, Object: "target state schema tandem",
		What: "the target user " + role + " may not read and write tandem's tables kafka_offsets", Fix: `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "tandem" TO ` + who + ";"}
	if diff := cmp.Diff(want, postgres.Check(t.Context(), postgres.Config{DSN: u.String()}, uses)); diff != "" {
		t.Errorf("Check with state tables the user may not write (-want +got):\n%s", diff)
	}
}
