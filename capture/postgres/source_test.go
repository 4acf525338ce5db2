package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// waitTimeout bounds every wait for the server or the stream.
const waitTimeout = 15 * time.Second

// publication is the publication name of every test; publications are per
// database, so tests do not share one.
const publication = "tandem"

// fixture is a fresh database with a replication slot named after it, which
// is dropped when the test ends.
type fixture struct {
	t    *testing.T
	dsn  string
	db   string // also the slot name: slots are server-wide
	conn *pgx.Conn
}

// newFixture creates a database and runs ddl in it.
func newFixture(t *testing.T, ddl string) *fixture {
	t.Helper()
	dsn := testenv.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dsn: dsn, db: cfg.Database, conn: conn}
	// Registered first, so it runs after the streams' cleanups have stopped them.
	t.Cleanup(func() {
		f.dropSlot(f.db)
		conn.Close(context.Background())
	})
	if ddl != "" {
		f.exec(ddl)
	}
	return f
}

// exec runs sql, which may hold several statements and its own BEGIN/COMMIT.
func (f *fixture) exec(sql string) {
	f.t.Helper()
	if _, err := f.conn.PgConn().Exec(context.Background(), sql).ReadAll(); err != nil {
		f.t.Fatalf("exec %q: %v", sql, err)
	}
}

// query scans the single row of sql into dest.
func (f *fixture) query(sql string, args []any, dest ...any) {
	f.t.Helper()
	if err := f.conn.QueryRow(context.Background(), sql, args...).Scan(dest...); err != nil {
		f.t.Fatalf("query %q: %v", sql, err)
	}
}

// config is a Config for the fixture's database, slot and publication.
func (f *fixture) config(tables ...string) Config {
	f.t.Helper()
	cfg := Config{DSN: f.dsn, Slot: f.db, Publication: publication, StatusInterval: 50 * time.Millisecond}
	for _, tb := range tables {
		schema, name, ok := strings.Cut(tb, ".")
		if !ok {
			f.t.Fatalf("table %q is not schema.name", tb)
		}
		cfg.Tables = append(cfg.Tables, change.Table{Schema: schema, Name: name})
	}
	return cfg
}

// source creates a Source for cfg and runs Setup.
func (f *fixture) source(cfg Config) *Source {
	f.t.Helper()
	src, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := src.Setup(context.Background()); err != nil {
		f.t.Fatalf("Setup: %v", err)
	}
	return src
}

// slotLSN returns the slot's confirmed_flush_lsn.
func (f *fixture) slotLSN(slot string) LSN {
	f.t.Helper()
	var s string
	f.query(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, []any{slot}, &s)
	lsn, err := ParseLSN(s)
	if err != nil {
		f.t.Fatal(err)
	}
	return lsn
}

// The states of a slot that tests wait for, as SQL conditions on
// pg_replication_slots s LEFT JOIN pg_stat_replication r (its walsender).
const (
	slotReleased  = `NOT s.active` // a stopped stream's walsender releases it a moment after the client left
	slotInUse     = `s.active`
	slotStreaming = `r.state = 'streaming'` // the client is past START_REPLICATION
)

// waitSlot polls until the slot meets cond, with $2 bound to arg (a slot
// that does not exist meets every condition), failing the test after
// waitTimeout.
func (f *fixture) waitSlot(slot, cond string, arg ...any) {
	f.t.Helper()
	sql := `SELECT NOT EXISTS (SELECT FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
	WHERE s.slot_name = $1 AND NOT coalesce(` + cond + `, false))`
	testenv.WaitFor(f.t, fmt.Sprintf("slot %s: %s", slot, cond), waitTimeout, func() (bool, error) {
		var ok bool
		err := f.conn.QueryRow(context.Background(), sql, append([]any{slot}, arg...)...).Scan(&ok)
		return ok, err
	})
}

// dropSlot drops the slot, if it exists, once it is released.
func (f *fixture) dropSlot(slot string) {
	f.t.Helper()
	f.waitSlot(slot, slotReleased)
	if _, err := f.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot); err != nil {
		f.t.Errorf("drop replication slot %s: %v", slot, err)
	}
}

// streaming is capturetest's Stream whose transactions also pass
// PostgreSQL's stamp checks.
type streaming struct {
	*capturetest.Stream
	t *testing.T
}

// startStream runs src.Stream until the test ends or Stop is called.
func startStream(t *testing.T, src *Source) *streaming {
	t.Helper()
	return &streaming{capturetest.StartStream(t, src), t}
}

// events returns the events of the next transaction, checking its batches
// are stamped consistently.
func (s *streaming) events() []change.Event {
	s.t.Helper()
	bs := s.Tx()
	checkStamps(s.t, bs)
	return capturetest.Flatten(bs)
}

// checkStamps checks what diffEvents ignores: every event of the
// transaction's batches carries one non-zero TxID, the commit time of its
// batch, and a position not after the transaction's end; only the last batch
// has a position.
func checkStamps(t *testing.T, bs []change.Batch) {
	t.Helper()
	last := bs[len(bs)-1]
	end, ok := last.Pos.(LSN)
	if !ok || end == 0 {
		t.Fatalf("last batch of the transaction has position %#v, want a non-zero LSN", last.Pos)
	}
	var xid uint32
	for i, b := range bs {
		if i < len(bs)-1 && b.Pos != nil {
			t.Errorf("batch %d of %d has position %v, want nil for all but the last", i+1, len(bs), b.Pos)
		}
		if b.Commit.IsZero() {
			t.Errorf("batch %d has no commit time", i+1)
		}
		for j, e := range b.Events {
			if xid == 0 {
				xid = e.TxID
			}
			if e.TxID == 0 || e.TxID != xid {
				t.Errorf("batch %d event %d: TxID %d, want the transaction's non-zero TxID %d", i+1, j, e.TxID, xid)
			}
			if !e.Commit.Equal(b.Commit) {
				t.Errorf("batch %d event %d: commit %v, batch commit %v", i+1, j, e.Commit, b.Commit)
			}
			if p, ok := e.Pos.(LSN); !ok || p == 0 || p > end {
				t.Errorf("batch %d event %d: position %#v, want a non-zero LSN not after the transaction's end %v", i+1, j, e.Pos, end)
			}
		}
	}
}

// eventOpts compares events in full except their source stamps, which
// checkStamps covers; NaN equals NaN.
var eventOpts = cmp.Options{
	cmpopts.IgnoreFields(change.Event{}, "Pos", "TxID", "Commit", "Columns", "SQLTypes"), // Columns: capturetest.RunSource; SQLTypes: TestRelation_NamesSQLTypes
	cmpopts.EquateNaNs(),
}

func diffEvents(want, got []change.Event) string {
	return cmp.Diff(want, got, eventOpts)
}

// tbl returns the change.Table of "public.name".
func tbl(name string) change.Table { return change.Table{Schema: "public", Name: name} }

// event builds an expected event.
func event(op change.Op, table string, key []string, types map[string]change.Type, before, after change.Row) change.Event {
	return change.Event{Op: op, Table: tbl(table), Key: key, Types: types, Before: before, After: after}
}

const kindsDDL = `CREATE TABLE public.kinds (
	id  integer PRIMARY KEY,
	sm  smallint,
	i4  integer,
	i8  bigint,
	f4  real,
	f8  double precision,
	ok  boolean,
	num numeric(30,10),
	txt text,
	bin bytea,
	doc jsonb,
	ts  timestamptz,
	dt  date,
	uid uuid)`

var kindsTypes = map[string]change.Type{
	"id": change.TypeInt, "sm": change.TypeInt, "i4": change.TypeInt, "i8": change.TypeInt,
	"f4": change.TypeFloat, "f8": change.TypeFloat, "ok": change.TypeBool, "num": change.TypeDecimal,
	"txt": change.TypeString, "bin": change.TypeBytes, "doc": change.TypeJSON, "ts": change.TypeTime,
	"dt": change.TypeTime, "uid": change.TypeString,
}

// TestStream_DecodesPostgresValues covers what capturetest.RunSource's
// portable kinds do not: smallint, real, NaN and the infinities, the
// largest double, date, uuid, text escapes.
func TestStream_DecodesPostgresValues(t *testing.T) {
	f := newFixture(t, kindsDDL)
	src := f.source(f.config("public.kinds"))
	s := startStream(t, src)

	f.exec(`INSERT INTO kinds VALUES
	(1, -32768, 2147483647, '-9223372036854775808', 3.14, 'NaN', true, '12345678901234567890.0123456789',
	 E'naïve café 😀 日本語\n\ttab \\ ''quote''', '\x00ff00', '{"b": [1, 2.50], "a": null}',
	 '2024-02-29 23:59:59.123456+02', '2024-02-29', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
	(2, NULL, NULL, NULL, NULL, '-Infinity', false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	f.exec(`UPDATE kinds SET f8 = 1.7976931348623157e308 WHERE id = 1`)

	row1 := change.Row{
		"id": int64(1), "sm": int64(-32768), "i4": int64(2147483647), "i8": int64(math.MinInt64),
		"f4": 3.14, "f8": math.NaN(), "ok": true, "num": "12345678901234567890.0123456789",
		"txt": "naïve café 😀 日本語\n\ttab \\ 'quote'", "bin": []byte{0x00, 0xff, 0x00},
		"doc": `{"a": null, "b": [1, 2.50]}`, "ts": "2024-02-29 21:59:59.123456+00", "dt": "2024-02-29",
		"uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
	}
	row2 := change.Row{
		"id": int64(2), "sm": nil, "i4": nil, "i8": nil, "f4": nil, "f8": math.Inf(-1), "ok": false,
		"num": nil, "txt": nil, "bin": nil, "doc": nil, "ts": nil, "dt": nil, "uid": nil,
	}
	row1After := maps.Clone(row1)
	row1After["f8"] = math.MaxFloat64
	key := []string{"id"}
	for i, want := range [][]change.Event{
		{
			event(change.OpCreate, "kinds", key, kindsTypes, nil, row1),
			event(change.OpCreate, "kinds", key, kindsTypes, nil, row2),
		},
		{event(change.OpUpdate, "kinds", key, kindsTypes, nil, row1After)},
	} {
		if diff := diffEvents(want, s.events()); diff != "" {
			t.Errorf("transaction %d: events (-want +got):\n%s", i+1, diff)
		}
	}
}

const itemsDDL = `CREATE TABLE public.items (id integer PRIMARY KEY, name text);
CREATE TABLE public.other (id integer PRIMARY KEY)`

var itemsTypes = map[string]change.Type{"id": change.TypeInt, "name": change.TypeString}

func item(id int64, name string) change.Row { return change.Row{"id": id, "name": name} }

// TestStream_BeforeImageFollowsReplicaIdentity covers the replica
// identities other than capturetest.RunSource's DEFAULT.
func TestStream_BeforeImageFollowsReplicaIdentity(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.full (id integer PRIMARY KEY, a text, n integer);
	ALTER TABLE public.full REPLICA IDENTITY FULL;
	CREATE TABLE public.byidx (id integer PRIMARY KEY, code text NOT NULL, n integer);
	CREATE UNIQUE INDEX byidx_code ON public.byidx (code);
	ALTER TABLE public.byidx REPLICA IDENTITY USING INDEX byidx_code;
	INSERT INTO public.full VALUES (1, 'x', 10);
	INSERT INTO public.byidx VALUES (1, 'c1', 10)`)
	s := startStream(t, f.source(f.config("public.full", "public.byidx")))

	types := map[string]change.Type{"id": change.TypeInt, "a": change.TypeString, "n": change.TypeInt}
	byidxTypes := map[string]change.Type{"id": change.TypeInt, "code": change.TypeString, "n": change.TypeInt}
	for _, tc := range []struct {
		name string
		sql  string
		want []change.Event
	}{
		// The key stays the primary key: pgoutput flags every column as part
		// of a FULL replica identity.
		{"full update carries the old row", `UPDATE "full" SET a = 'y', n = NULL WHERE id = 1`, []change.Event{
			event(change.OpUpdate, "full", []string{"id"}, types,
				change.Row{"id": int64(1), "a": "x", "n": int64(10)}, change.Row{"id": int64(1), "a": "y", "n": nil}),
		}},
		{"full delete carries the old row", `DELETE FROM "full" WHERE id = 1`, []change.Event{
			event(change.OpDelete, "full", []string{"id"}, types, change.Row{"id": int64(1), "a": "y", "n": nil}, nil),
		}},
		{"using index delete carries the index columns", `DELETE FROM byidx WHERE id = 1`, []change.Event{
			event(change.OpDelete, "byidx", []string{"code"}, byidxTypes, change.Row{"code": "c1"}, nil),
		}},
	} {
		f.exec(tc.sql)
		if diff := diffEvents(tc.want, s.events()); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestStream_KeyChangeOfAFullIdentityTableDeletesTheKeyOnly: a key change
// is a delete of the old key and a create (capturetest.RunSource), and the
// delete carries the key only even when pgoutput sends the whole old row.
func TestStream_KeyChangeOfAFullIdentityTableDeletesTheKeyOnly(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.full (id integer PRIMARY KEY, a text);
	ALTER TABLE public.full REPLICA IDENTITY FULL;
	INSERT INTO public.full VALUES (1, 'x')`)
	s := startStream(t, f.source(f.config("public.full")))
	f.exec(`UPDATE "full" SET id = 2, a = 'y' WHERE id = 1`)
	types := map[string]change.Type{"id": change.TypeInt, "a": change.TypeString}
	want := []change.Event{
		event(change.OpDelete, "full", []string{"id"}, types, change.Row{"id": int64(1)}, nil),
		event(change.OpCreate, "full", []string{"id"}, types, nil, change.Row{"id": int64(2), "a": "y"}),
	}
	if diff := diffEvents(want, s.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestStream_TruncateEmitsOneEventPerTable(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.a (id integer PRIMARY KEY);
	CREATE TABLE public.b (id bigint PRIMARY KEY, note text);
	INSERT INTO public.a VALUES (1); INSERT INTO public.b VALUES (1, 'x')`)
	s := startStream(t, f.source(f.config("public.a", "public.b")))

	f.exec(`TRUNCATE a, b`)

	want := []change.Event{
		event(change.OpTruncate, "a", []string{"id"}, map[string]change.Type{"id": change.TypeInt}, nil, nil),
		event(change.OpTruncate, "b", []string{"id"}, map[string]change.Type{"id": change.TypeInt, "note": change.TypeString}, nil, nil),
	}
	got := s.events()
	// pgoutput lists the truncated relations in no promised order.
	sortEvents := cmpopts.SortSlices(func(x, y change.Event) bool { return x.Table.Name < y.Table.Name })
	if diff := cmp.Diff(want, got, eventOpts, sortEvents); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestAck_MovesTheSlotOnlyAsFarAsAcknowledged(t *testing.T) {
	f := newFixture(t, itemsDDL)
	cfg := f.config("public.items")
	src := f.source(cfg)
	s := startStream(t, src)

	f.exec(`INSERT INTO items VALUES (1, 'one')`)
	f.exec(`INSERT INTO items VALUES (2, 'two')`)
	b1, b2 := s.Next(), s.Next()
	p1, p2 := b1.Pos.(LSN), b2.Pos.(LSN)

	if err := src.Ack(b1.Pos); err != nil {
		t.Fatal(err)
	}
	if src.Acked() != p1 {
		t.Errorf("Flushed() = %v after Ack(%v)", src.Acked(), p1)
	}
	f.waitSlot(f.db, `s.confirmed_flush_lsn >= $2::pg_lsn`, p1.String())
	// Let at least one more standby status update reach the server, then
	// check it did not confirm the unacknowledged second transaction.
	var since time.Time
	f.query(`SELECT clock_timestamp()`, nil, &since)
	f.waitSlot(f.db, `r.reply_time > $2`, since)
	if got := f.slotLSN(f.db); got >= p2 {
		t.Errorf("confirmed_flush_lsn = %v, reaches the unacknowledged transaction ending at %v", got, p2)
	}

	if err := s.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream returned %v after cancel, want context.Canceled", err)
	}
	f.waitSlot(f.db, slotReleased)
	if got := f.slotLSN(f.db); got < p1 || got >= p2 {
		t.Errorf("after stop, confirmed_flush_lsn = %v, want in [%v, %v)", got, p1, p2)
	}

	// A new Source on the same slot replays the second transaction, stamps
	// and all (capturetest.RunSource covers what a restart emits).
	src2 := f.source(cfg)
	s2 := startStream(t, src2)
	if diff := cmp.Diff(b2, s2.Next()); diff != "" {
		t.Errorf("first batch after restart (-want the unacknowledged transaction +got):\n%s", diff)
	}

	// Everything acknowledged: keepalives carry the slot on past writes to
	// tables outside the publication, so it does not hold WAL back.
	if err := src2.Ack(b2.Pos); err != nil {
		t.Fatal(err)
	}
	f.exec(`INSERT INTO other VALUES (1)`)
	f.waitSlot(f.db, `s.confirmed_flush_lsn > $2::pg_lsn`, p2.String())
}

func TestAck_KeepsTheHighestPosition(t *testing.T) {
	src, err := New(Config{DSN: "postgres://127.0.0.1:1/x", Slot: "s", Publication: "p", Tables: []change.Table{tbl("t")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ack  change.Position
		want LSN
	}{
		{LSN(0x200), 0x200},
		{LSN(0x100), 0x200}, // older: ignored
		{change.TextPosition("0/300"), 0x300},
		{change.TextPosition("1/0"), 0x1_0000_0000},
	} {
		if err := src.Ack(tc.ack); err != nil {
			t.Fatalf("Ack(%v): %v", tc.ack, err)
		}
		if got := src.Acked(); got != tc.want {
			t.Errorf("after Ack(%v): Flushed() = %v, want %v", tc.ack, got, tc.want)
		}
	}
	for _, bad := range []change.Position{nil, change.TextPosition("nope")} {
		if err := src.Ack(bad); err == nil {
			t.Errorf("Ack(%#v) = nil, want an error", bad)
		}
	}
	if got := src.Acked(); got != 0x1_0000_0000 {
		t.Errorf("a rejected Ack moved Flushed() to %v", got)
	}
}

// publicationTables lists the publication's tables.
func (f *fixture) publicationTables() []string {
	f.t.Helper()
	rows, err := f.conn.Query(context.Background(), `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, publication)
	if err != nil {
		f.t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return got
}

func TestSetup_CreatesIsIdempotentAndAddsTables(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.a (id integer PRIMARY KEY); CREATE TABLE public.b (id integer PRIMARY KEY)`)

	type slotRow struct{ Plugin, Type, Database string }
	slot := func() slotRow {
		var r slotRow
		f.query(`SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = $1`, []any{f.db}, &r.Plugin, &r.Type, &r.Database)
		return r
	}
	wantSlot := slotRow{Plugin: "pgoutput", Type: "logical", Database: f.db}

	f.source(f.config("public.a"))
	if diff := cmp.Diff([]string{"public.a"}, f.publicationTables()); diff != "" {
		t.Errorf("publication tables after Setup (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSlot, slot()); diff != "" {
		t.Errorf("slot after Setup (-want +got):\n%s", diff)
	}
	created := f.slotLSN(f.db)

	f.source(f.config("public.a"))
	if diff := cmp.Diff([]string{"public.a"}, f.publicationTables()); diff != "" {
		t.Errorf("publication tables after a second Setup (-want +got):\n%s", diff)
	}
	if got := f.slotLSN(f.db); got != created {
		t.Errorf("a second Setup moved or recreated the slot: confirmed_flush_lsn %v, was %v", got, created)
	}

	src := f.source(f.config("public.a", "public.b"))
	if diff := cmp.Diff([]string{"public.a", "public.b"}, f.publicationTables()); diff != "" {
		t.Errorf("publication tables after Setup with a new table (-want +got):\n%s", diff)
	}
	// The added table streams through the existing slot.
	s := startStream(t, src)
	f.exec(`INSERT INTO b VALUES (7)`)
	want := []change.Event{event(change.OpCreate, "b", []string{"id"}, map[string]change.Type{"id": change.TypeInt}, nil, change.Row{"id": int64(7)})}
	if diff := diffEvents(want, s.events()); diff != "" {
		t.Errorf("events of the added table (-want +got):\n%s", diff)
	}
}

func TestSetup_RefusesSlotOfAnotherPluginOrDatabase(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.a (id integer PRIMARY KEY)`)
	f.query(`SELECT 1 FROM pg_create_logical_replication_slot($1, 'test_decoding')`, []any{f.db}, new(int))

	src, err := New(f.config("public.a"))
	if err != nil {
		t.Fatal(err)
	}
	err = src.Setup(context.Background())
	want := fmt.Sprintf(`replication slot %s uses plugin "test_decoding", not pgoutput: drop it or choose another slot name`, f.db)
	if err == nil || err.Error() != want {
		t.Errorf("Setup with a test_decoding slot: %v\nwant: %s", err, want)
	}

	// A pgoutput slot of another database.
	other := newFixture(t, `CREATE TABLE public.a (id integer PRIMARY KEY)`)
	other.source(other.config("public.a"))
	cfg := f.config("public.a")
	cfg.Slot = other.db
	if src, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	err = src.Setup(context.Background())
	want = fmt.Sprintf(`replication slot %s belongs to database %q, not %q: choose another slot name`, other.db, other.db, f.db)
	if err == nil || err.Error() != want {
		t.Errorf("Setup with another database's slot: %v\nwant: %s", err, want)
	}
}

// check runs Check for cfg.
func check(t *testing.T, cfg Config) []preflight.Problem {
	t.Helper()
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src.Check(context.Background())
}

func TestCheck(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.good (id integer PRIMARY KEY);
	CREATE TABLE public.nopk (id integer, v text);
	CREATE TABLE public.nothing (id integer PRIMARY KEY);
	ALTER TABLE public.nothing REPLICA IDENTITY NOTHING;
	CREATE TABLE public.fullnopk (id integer);
	ALTER TABLE public.fullnopk REPLICA IDENTITY FULL`)
	good := f.config("public.good")

	if diff := cmp.Diff([]preflight.Problem(nil), check(t, good)); diff != "" {
		t.Errorf("before Setup (-want +got):\n%s", diff)
	}
	src := f.source(good)
	if diff := cmp.Diff([]preflight.Problem(nil), check(t, good)); diff != "" {
		t.Errorf("after Setup (-want +got):\n%s", diff)
	}
	startStream(t, src)
	f.waitSlot(f.db, slotInUse)
	want := []preflight.Problem{{Severity: preflight.Warn, Object: "source replication slot " + f.db,
		What: "is in use by another connection (another tandem capture?)", Fix: "stop the other capture; only one may stream from a slot"}}
	if diff := cmp.Diff(want, check(t, good)); diff != "" {
		t.Errorf("while streaming (-want +got):\n%s", diff)
	}

	cfg := f.config("public.good", "public.nopk", "public.missing", "public.nothing", "public.fullnopk")
	cfg.Slot = f.db + "_new"
	want = []preflight.Problem{
		{Severity: preflight.Fail, Object: "source table public.nopk", What: "has no primary key, so its changes carry no key",
			Fix: `ALTER TABLE "public"."nopk" ADD PRIMARY KEY (...);`},
		{Severity: preflight.Fail, Object: "source table public.missing", What: "does not exist",
			Fix: "create it, or correct source.tables in the config"},
		{Severity: preflight.Fail, Object: "source table public.nothing", What: "has REPLICA IDENTITY NOTHING: updates and deletes carry no key",
			Fix: `ALTER TABLE "public"."nothing" REPLICA IDENTITY DEFAULT;`},
	}
	if diff := cmp.Diff(want, check(t, cfg)); diff != "" {
		t.Errorf("bad tables (-want +got):\n%s", diff)
	}

	slotCfg := f.config("public.good")
	slotCfg.Slot = f.db + "_td"
	f.query(`SELECT 1 FROM pg_create_logical_replication_slot($1, 'test_decoding')`, []any{slotCfg.Slot}, new(int))
	t.Cleanup(func() { f.dropSlot(slotCfg.Slot) })
	want = []preflight.Problem{{Severity: preflight.Fail, Object: "source replication slot " + slotCfg.Slot,
		What: `exists with plugin "test_decoding", tandem needs pgoutput`,
		Fix:  "SELECT pg_drop_replication_slot('" + slotCfg.Slot + "'); or set source.postgres.slot to another name"}}
	if diff := cmp.Diff(want, check(t, slotCfg)); diff != "" {
		t.Errorf("slot of another plugin (-want +got):\n%s", diff)
	}
}

func TestCheck_RoleWithoutReplicationPrivilege(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.good (id integer PRIMARY KEY)`)
	role := f.db + "_plain"
	f.exec(fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'plain-pw'`, pgx.Identifier{role}.Sanitize()))
	t.Cleanup(func() {
		if _, err := f.conn.Exec(context.Background(), `DROP ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "plain-pw")
	cfg := f.config("public.good")
	cfg.DSN = u.String()

	want := []preflight.Problem{
		{Severity: preflight.Fail, Object: "source", What: fmt.Sprintf("role %q may not use replication", role),
			Fix: fmt.Sprintf(`ALTER ROLE "%s" WITH REPLICATION;`, role)},
		{Severity: preflight.Warn, Object: "source table public.good", What: fmt.Sprintf("is not owned by %q, which cannot add it to a publication", role),
			Fix: "create the publication as the table owner, or run tandem as the owner"},
		{Severity: preflight.Fail, Object: "source publication " + publication,
			What: fmt.Sprintf("does not exist and %q may not create it in database %q", role, f.db),
			Fix:  fmt.Sprintf(`CREATE PUBLICATION "%s" FOR TABLE ...; as the table owner, or GRANT CREATE ON DATABASE "%s" TO "%s";`, publication, f.db, role)},
	}
	if diff := cmp.Diff(want, check(t, cfg)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestStream_TableWithoutKeyFailsOnItsFirstChange(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.nopk (id integer, v text)`)
	src := f.source(f.config("public.nopk"))

	// PostgreSQL itself refuses updates and deletes of a published table
	// without replica identity, so an insert is the only row change that
	// can reach the stream.
	for _, sql := range []string{`UPDATE nopk SET v = 'x'`, `DELETE FROM nopk`} {
		_, err := f.conn.Exec(context.Background(), sql)
		if err == nil || !strings.Contains(err.Error(), "does not have a replica identity") {
			t.Errorf("%s on the source: %v, want PostgreSQL's replica identity error", sql, err)
		}
	}
	s := startStream(t, src)
	f.exec(`INSERT INTO nopk VALUES (1, 'a')`)
	err := s.Wait()
	want := `table public.nopk has no replica identity key: add a primary key (or REPLICA IDENTITY USING INDEX)`
	if err == nil || err.Error() != want {
		t.Errorf("Stream returned %v\nwant: %s", err, want)
	}
	if len(s.Batches()) != 0 {
		t.Errorf("Stream emitted %d batches before failing, want none", len(s.Batches()))
	}
	// The failed transaction is not skipped: a restart fails on it again.
	f.waitSlot(f.db, slotReleased)
	s2 := startStream(t, f.source(f.config("public.nopk")))
	if err := s2.Wait(); err == nil || err.Error() != want {
		t.Errorf("restarted Stream returned %v\nwant: %s", err, want)
	}
}

func TestCheck_WarnsWhenTheSlotHoldsBackWAL(t *testing.T) {
	f := newFixture(t, `CREATE TABLE public.good (id integer PRIMARY KEY, v text)`)
	cfg := f.config("public.good")
	f.source(cfg) // Setup: the slot now holds WAL from here on
	f.exec(`INSERT INTO public.good SELECT g, repeat('x', 1000) FROM generate_series(1, 3000) g`)
	cfg.RetainedWALWarn = 1 << 20
	got := check(t, cfg)
	if len(got) != 1 || got[0].Severity != preflight.Warn || got[0].Object != "source replication slot "+cfg.Slot ||
		!strings.HasPrefix(got[0].What, "holds back ") || !strings.Contains(got[0].Fix, "tandem slot drop") {
		t.Errorf("problems = %+v, want one warning that the slot holds back WAL", got)
	}
}

func TestStream_SecondReaderOfALiveSlotFailsFastAndLeavesItAlone(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items (id bigint PRIMARY KEY, name text)`)
	cfg := f.config("public.items")
	first := startStream(t, f.source(cfg))
	f.waitSlot(f.db, slotStreaming)
	f.exec(`INSERT INTO items VALUES (1, 'one')`)
	first.events()
	// The first reader replies to the server every StatusInterval: alive.
	testenv.WaitFor(t, "the first reader's reply", waitTimeout, func() (bool, error) {
		var ok bool
		err := f.conn.QueryRow(context.Background(), `SELECT coalesce(bool_or(r.reply_time IS NOT NULL), false) FROM pg_replication_slots s
	JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = $1`, f.db).Scan(&ok)
		return ok, err
	})

	second, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	start := time.Now()
	err = second.Stream(ctx, func(context.Context, change.Batch) error { return errors.New("the second reader got a batch") })
	if !errors.Is(err, capture.ErrSourceTaken) {
		t.Fatalf("second Stream = %v, want capture.ErrSourceTaken", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the second reader took %v to fail", took)
	}
	for _, want := range []string{f.db, "another tandem", "source.postgres.slot"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// The first reader still has the slot and its changes.
	f.exec(`INSERT INTO items VALUES (2, 'two')`)
	want := []change.Event{event(change.OpCreate, "items", []string{"id"}, itemsTypes, nil, item(2, "two"))}
	if diff := diffEvents(want, first.events()); diff != "" {
		t.Errorf("first reader after the second gave up (-want +got):\n%s", diff)
	}
}

// TestTableReader_CopiesEqualWhatTheStreamCaptures covers the values of
// PostgreSQL's own types (NaN, uuid, date, ...) that
// capturetest.RunSource's portable kinds do not.
func TestTableReader_CopiesEqualWhatTheStreamCaptures(t *testing.T) {
	f := newFixture(t, kindsDDL)
	s := startStream(t, f.source(f.config("public.kinds")))
	f.exec(`INSERT INTO kinds VALUES
	(1, -32768, 2147483647, '-9223372036854775808', 3.14, 'NaN', true, '12345678901234567890.0123456789',
	 E'naïve café 😀 日本語\n\ttab \\ ''quote''', '\x00ff00', '{"b": [1, 2.50], "a": null}',
	 '2024-02-29 23:59:59.123456+02', '2024-02-29', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
	(2, NULL, NULL, NULL, NULL, '-Infinity', false, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	streamed := s.events()

	ctx := context.Background()
	r, err := NewTableReader(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	kt, err := r.Describe(ctx, tbl("kinds"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kindsTypes, kt.Types); diff != "" {
		t.Errorf("types (-stream +backfill):\n%s", diff)
	}
	rows, _, err := r.Chunk(ctx, kt, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []change.Row{streamed[0].After, streamed[1].After}
	if diff := cmp.Diff(want, rows, cmpopts.EquateNaNs()); diff != "" {
		t.Errorf("rows (-stream +backfill):\n%s", diff)
	}
}

func TestStream_IntervalsAndTextDoNotDependOnTheSourcesSessionDefaults(t *testing.T) {
	f := newFixture(t, `CREATE TABLE spans (id int PRIMARY KEY, span interval, note text)`)
	f.exec(`ALTER DATABASE ` + pgx.Identifier{f.db}.Sanitize() + ` SET IntervalStyle = 'sql_standard'`)
	s := startStream(t, f.source(f.config("public.spans")))
	f.exec(`INSERT INTO spans VALUES (1, '-1 day -1 hour', 'é')`)
	got := s.events()
	want := change.Row{"id": int64(1), "span": "-1 days -01:00:00", "note": "é"}
	if diff := cmp.Diff(want, got[0].After); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
}
