package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// streaming is capturetest's Stream of a mysql.Source.
type streaming struct {
	*capturetest.Stream
	src *mysql.Source
}

var serverIDs = struct {
	sync.Mutex
	next uint32
}{next: 100}

func newServerID() uint32 {
	serverIDs.Lock()
	defer serverIDs.Unlock()
	serverIDs.next++
	return serverIDs.next
}

func newSource(t *testing.T, dsn string, store mysql.PositionStore, tables ...string) *mysql.Source {
	t.Helper()
	return newSourceMax(t, dsn, store, 100, tables...)
}

// newSourceMax is newSource with batches of maxBatch events at most.
func newSourceMax(t *testing.T, dsn string, store mysql.PositionStore, maxBatch int, tables ...string) *mysql.Source {
	t.Helper()
	var ts []change.Table
	for _, n := range tables {
		s, tn, _ := strings.Cut(n, ".")
		ts = append(ts, change.Table{Schema: s, Name: tn})
	}
	src, err := mysql.New(mysql.Config{DSN: dsn, ServerID: newServerID(), Tables: ts, Store: store, StoreKey: "test",
		MaxBatch: maxBatch, Heartbeat: 200 * time.Millisecond, SaveInterval: 50 * time.Millisecond, IdleAckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return src
}

func stream(t *testing.T, src *mysql.Source) *streaming {
	t.Helper()
	return &streaming{capturetest.StartStream(t, src), src}
}

// stop cancels the stream, which must return no other error.
func (s *streaming) stop(t *testing.T) {
	t.Helper()
	if err := s.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Stream: %v", err)
	}
}

// next returns the next batch that has events, acknowledging every batch
// with a position (as the pipeline does once they are durable).
func (s *streaming) next(t *testing.T) change.Batch {
	t.Helper()
	for {
		b := s.Next()
		if b.Pos != nil {
			if err := s.src.Ack(b.Pos); err != nil {
				t.Fatal(err)
			}
		}
		if len(b.Events) > 0 {
			return b
		}
	}
}

// events collects n events, across batches.
func (s *streaming) events(t *testing.T, n int) []change.Event {
	t.Helper()
	var out []change.Event
	for len(out) < n {
		out = append(out, s.next(t).Events...)
	}
	if len(out) != n {
		t.Fatalf("got %d events, want %d", len(out), n)
	}
	return out
}

type shortEvent struct {
	Op     string
	Table  string
	Key    []string
	Before change.Row
	After  change.Row
}

func short(evs []change.Event) []shortEvent {
	out := make([]shortEvent, len(evs))
	for i, e := range evs {
		out[i] = shortEvent{Op: e.Op.String(), Table: e.Table.String(), Key: e.Key, Before: e.Before, After: e.After}
	}
	return out
}

func sourceDB(t *testing.T, dsn string) string {
	t.Helper()
	i := strings.LastIndexByte(dsn, '/')
	return dsn[i+1:]
}

func mustExec(t *testing.T, db string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range sql {
		if err := testenv.SharedMariaDB(t).Exec(ctx, db, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestStream_TypesRoundTrip(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE types (id BIGINT UNSIGNED PRIMARY KEY, "+
		"ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, "+
		"i INT, iu INT UNSIGNED, bi BIGINT, dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, "+
		"dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR, "+
		"c CHAR(5), vc VARCHAR(100), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB, "+
		"j JSON, e ENUM('small','large','x''y'), st SET('a','b','c'), bt BIT(10), b64 BIT(64)) CHARACTER SET utf8mb4")
	src := newSource(t, dsn, &capturetest.MemPositions{}, db+".types")
	s := stream(t, src)
	mustExec(t, db, "SET time_zone = '+02:00'; "+
		"INSERT INTO types VALUES (18446744073709551615, -128, 255, -32768, 65535, -8388608, 16777215, "+
		"-2147483648, 4294967295, -9223372036854775808, "+
		"'-12345678901234567890123456789012345.123456789012345678901234567890', 1.1, 2.718281828459045, "+
		"'2024-02-29', '2024-02-29 23:59:58.123456', '2024-03-01 01:02:03.654321', '-838:59:58.5', 2155, "+
		"'ab', 'héllo 🐘 日本語', 'long text ✓', 0xFF000000, 0x00, 0x000102, "+
		`'{"a": [1, 2.5, "x"], "b": null}', 'x''y', 'a,c', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111')`,
		"INSERT INTO types (id) VALUES (1)")
	evs := s.events(t, 2)
	want := []shortEvent{
		{Op: "c", Table: db + ".types", Key: []string{"id"}, After: change.Row{
			"id": "18446744073709551615", "ti": int64(-128), "tu": int64(255), "si": int64(-32768), "su": int64(65535),
			"mi": int64(-8388608), "mu": int64(16777215), "i": int64(-2147483648), "iu": int64(4294967295),
			"bi":    int64(-9223372036854775808),
			"dec65": "-12345678901234567890123456789012345.123456789012345678901234567890",
			"f":     1.1, "d": 2.718281828459045,
			"dt": "2024-02-29", "dtm": "2024-02-29 23:59:58.123456",
			"ts": "2024-02-29 23:02:03.654321", // written at +02:00, carried in UTC
			"tm": "-838:59:58.500000", "y": int64(2155),
			"c": "ab", "vc": "héllo 🐘 日本語", "tx": "long text ✓",
			"bn": []byte{0xFF, 0, 0, 0}, "vb": []byte{0}, "bl": []byte{0, 1, 2},
			// MariaDB's JSON is LONGTEXT with a check: its text, as written.
			"j": `{"a": [1, 2.5, "x"], "b": null}`,
			"e": "x'y", "st": "a,c", "bt": int64(0b1010101010), "b64": "18446744073709551615",
		}},
		{Op: "c", Table: db + ".types", Key: []string{"id"}, After: change.Row{
			"id": "1", "ti": nil, "tu": nil, "si": nil, "su": nil, "mi": nil, "mu": nil, "i": nil, "iu": nil, "bi": nil,
			"dec65": nil, "f": nil, "d": nil, "dt": nil, "dtm": nil, "ts": nil, "tm": nil, "y": nil,
			"c": nil, "vc": nil, "tx": nil, "bn": nil, "vb": nil, "bl": nil, "j": nil, "e": nil, "st": nil, "bt": nil, "b64": nil,
		}},
	}
	if diff := cmp.Diff(want, short(evs)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	wantTypes := map[string]change.Type{
		"id": change.TypeDecimal, "ti": change.TypeInt, "tu": change.TypeInt, "si": change.TypeInt, "su": change.TypeInt,
		"mi": change.TypeInt, "mu": change.TypeInt, "i": change.TypeInt, "iu": change.TypeInt, "bi": change.TypeInt,
		"dec65": change.TypeDecimal, "f": change.TypeFloat, "d": change.TypeFloat,
		"dt": change.TypeTime, "dtm": change.TypeTime, "ts": change.TypeTime, "tm": change.TypeTime, "y": change.TypeInt,
		"c": change.TypeString, "vc": change.TypeString, "tx": change.TypeString,
		"bn": change.TypeBytes, "vb": change.TypeBytes, "bl": change.TypeBytes,
		"j": change.TypeString, "e": change.TypeString, "st": change.TypeString, "bt": change.TypeInt, "b64": change.TypeDecimal,
	}
	if diff := cmp.Diff(wantTypes, evs[0].Types); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
	// The envelope carries every value back unchanged.
	enc := &change.Encoder{Connector: "mysql", Name: "t"}
	for _, ev := range evs {
		k, err := enc.Key(&ev)
		if err != nil {
			t.Fatal(err)
		}
		v, err := enc.Value(&ev)
		if err != nil {
			t.Fatal(err)
		}
		back, err := change.Decode(k, v)
		if err != nil {
			t.Fatalf("decode %s: %v", v, err)
		}
		if diff := cmp.Diff(ev.After, back.After); diff != "" {
			t.Errorf("envelope round trip (-captured +decoded):\n%s", diff)
		}
	}
}

// TestStream_ReservedNamesAndGTIDPositions: capturetest.RunSource covers
// the events of transactions; here tables and columns named by reserved
// words stream, and positions carry the GTID set and advance.
func TestStream_ReservedNamesAndGTIDPositions(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE `order` (id INT PRIMARY KEY, `select` VARCHAR(20))")
	src := newSource(t, dsn, &capturetest.MemPositions{}, db+".order")
	s := stream(t, src)
	mustExec(t, db, "INSERT INTO `order` VALUES (1, 'a')", "UPDATE `order` SET `select` = 'b' WHERE id = 1")
	tbl := db + ".order"
	b1, b2 := s.next(t), s.next(t)
	want := []shortEvent{
		{Op: "c", Table: tbl, Key: []string{"id"}, After: change.Row{"id": int64(1), "select": "a"}},
		{Op: "u", Table: tbl, Key: []string{"id"}, Before: change.Row{"id": int64(1), "select": "a"}, After: change.Row{"id": int64(1), "select": "b"}},
	}
	if diff := cmp.Diff(want, short(append(b1.Events, b2.Events...))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	p1, p2 := b1.Pos.(mysql.Position), b2.Pos.(mysql.Position)
	if p1.GTID == "" || p1.File == "" || p2.GTID == p1.GTID || !(p1.Offset < p2.Offset || p1.File < p2.File) {
		t.Errorf("positions do not advance with GTIDs: %v then %v", p1, p2)
	}
}

func TestStream_ResumesAfterTheAcknowledgedPosition(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
	store := &capturetest.MemPositions{}
	src := newSource(t, dsn, store, db+".t")
	s := stream(t, src)
	mustExec(t, db, "INSERT INTO t VALUES (1, 'one')")
	first := s.next(t) // acknowledged by next
	s.stop(t)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := store.Get("test"), first.Pos.String(); got != want {
		t.Fatalf("saved position %q, want the acknowledged %q", got, want)
	}
	// The binlog rotates between the two: resuming crosses into the next file.
	mustExec(t, db, "INSERT INTO t VALUES (2, 'two')", "FLUSH BINARY LOGS", "INSERT INTO t VALUES (3, 'three')")

	src2 := newSource(t, dsn, store, db+".t")
	s2 := stream(t, src2)
	got := short(s2.events(t, 2))
	want := []shortEvent{
		{Op: "c", Table: db + ".t", Key: []string{"id"}, After: change.Row{"id": int64(2), "v": "two"}},
		{Op: "c", Table: db + ".t", Key: []string{"id"}, After: change.Row{"id": int64(3), "v": "three"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
	if p := src2.Acked(); p.File == first.Pos.(mysql.Position).File {
		t.Errorf("acknowledged %v: still in the file before the rotation", p)
	}
}

// TestStream_ReadsRowsLoggedBeforeAnAlterAfterIt: the capturer reads rows
// logged before and after an ADD COLUMN after both (replaying, or catching
// up), and decodes each with its own columns: they come with each table
// map (binlog_row_metadata=FULL), not from the table as it is now.
// capturetest.RunSource covers an ALTER read live.
func TestStream_ReadsRowsLoggedBeforeAnAlterAfterIt(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10))")
	src := newSource(t, dsn, &capturetest.MemPositions{}, db+".t")
	mustExec(t, db, "INSERT INTO t VALUES (1, 'x')",
		"ALTER TABLE t ADD COLUMN b INT DEFAULT 7 AFTER id",
		"INSERT INTO t (id, a, b) VALUES (2, 'y', 8)",
		"UPDATE t SET a = 'z' WHERE id = 1")
	tbl := db + ".t"
	want := []shortEvent{
		{Op: "c", Table: tbl, Key: []string{"id"}, After: change.Row{"id": int64(1), "a": "x"}},
		{Op: "c", Table: tbl, Key: []string{"id"}, After: change.Row{"id": int64(2), "b": int64(8), "a": "y"}},
		{Op: "u", Table: tbl, Key: []string{"id"}, Before: change.Row{"id": int64(1), "b": int64(7), "a": "x"}, After: change.Row{"id": int64(1), "b": int64(7), "a": "z"}},
	}
	if diff := cmp.Diff(want, short(stream(t, src).events(t, 3))); diff != "" {
		t.Errorf("across ADD COLUMN (-want +got):\n%s", diff)
	}
}

func TestStream_LargeTransactionComesInBoundedBatches(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
	src := newSource(t, dsn, &capturetest.MemPositions{}, db+".t")
	s := stream(t, src)
	const n = 20_000
	mustExec(t, db, fmt.Sprintf("INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_%d", n))
	seen, batches := 0, 0
	var last change.Batch
	for last.Pos == nil {
		var b change.Batch
		select {
		case b = <-s.Batches():
		case <-time.After(20 * time.Second):
			t.Fatalf("no batch within 20s after %d events", seen)
		}
		if len(b.Events) > 100 {
			t.Fatalf("batch of %d events: MaxBatch is 100", len(b.Events))
		}
		if b.Pos != nil && seen+len(b.Events) < n {
			t.Fatalf("an interim batch (after %d of %d events) carries a position", seen+len(b.Events), n)
		}
		for _, e := range b.Events {
			seen++
			if want := (change.Row{"id": int64(seen), "v": fmt.Sprintf("v%d", seen)}); !cmp.Equal(want, e.After) {
				t.Fatalf("event %d: %v, want %v", seen, e.After, want)
			}
		}
		batches++
		last = b
	}
	if last.Pos == nil {
		t.Error("the transaction's last batch has no position")
	}
	if batches != n/100+1 { // the last one carries only the commit position
		t.Errorf("%d batches, want %d", batches, n/100)
	}
}

func TestStream_QuietTablesStillAdvanceTheSavedPosition(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE quiet (id INT PRIMARY KEY)", "CREATE TABLE busy (id INT PRIMARY KEY)")
	store := &capturetest.MemPositions{}
	src := newSource(t, dsn, store, db+".quiet")
	start := store.Get("test")
	s := stream(t, src)
	mustExec(t, db, "INSERT INTO busy VALUES (1)", "INSERT INTO busy VALUES (2)")
	// Where the binlog ends once both writes are in it: the saved position
	// must reach it, not merely move.
	file, offset := chkCurrentBinlog(t, dsn)
	// Batches with only a position arrive; acknowledge them as the pipeline would.
	testenv.WaitFor(t, "the saved position to move past the busy table's writes", 20*time.Second, func() (bool, error) {
		for {
			select {
			case b := <-s.Batches():
				if len(b.Events) > 0 {
					return false, fmt.Errorf("events from a table not captured: %v", b.Events)
				}
				if err := src.Ack(b.Pos); err != nil {
					return false, err
				}
				continue
			default:
			}
			break
		}
		if store.Get("test") == start {
			return false, nil
		}
		saved, err := mysql.ParsePosition(store.Get("test"))
		if err != nil {
			return false, err
		}
		return saved.File > file || saved.File == file && uint64(saved.Offset) >= offset, nil
	})
}

func TestTableReader_CopiesEqualWhatTheStreamCaptures(t *testing.T) {
	dsn := testenv.NewMariaDBDatabase(t)
	db := sourceDB(t, dsn)
	mustExec(t, db, "CREATE TABLE types (id BIGINT UNSIGNED PRIMARY KEY, "+
		"ti TINYINT, tu TINYINT UNSIGNED, mu MEDIUMINT UNSIGNED, bi BIGINT, dec65 DECIMAL(65,30), f FLOAT, d DOUBLE, "+
		"dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR, "+
		"c CHAR(5), vc VARCHAR(100), bn BINARY(4), bl BLOB, j JSON, e ENUM('small','x''y'), st SET('a','b','c'), bt BIT(10), b64 BIT(64)) CHARACTER SET utf8mb4")
	src := newSource(t, dsn, &capturetest.MemPositions{}, db+".types")
	s := stream(t, src)
	mustExec(t, db, "INSERT INTO types VALUES (18446744073709551615, -128, 255, 16777215, -9223372036854775808, "+
		"'-12345678901234567890123456789012345.123456789012345678901234567890', 3.1415927, 2.718281828459045, "+
		"'2024-02-29', '2024-02-29 23:59:58.123456', '2024-03-01 01:02:03.654321', '-838:59:58.5', 2155, "+
		"'ab', 'héllo 🐘 日本語', 0xFF000000, 0x000102, "+
		`'{"a": [1, 2.5]}', 'x''y', 'a,c', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111'),`+
		"(1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
	streamed := s.events(t, 2)

	r, err := mysql.NewTableReader(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	tbl, err := r.Describe(ctx, change.Table{Schema: db, Name: "types"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(streamed[0].Types, tbl.Types); diff != "" {
		t.Errorf("types (-stream +backfill):\n%s", diff)
	}
	if diff := cmp.Diff(streamed[0].Key, tbl.Key); diff != "" {
		t.Errorf("key (-stream +backfill):\n%s", diff)
	}
	rows, last, err := r.Chunk(ctx, tbl, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	more, _, err := r.Chunk(ctx, tbl, last, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Keys order as numbers: 1 first, then 18446744073709551615.
	want := []change.Row{streamed[1].After, streamed[0].After}
	if diff := cmp.Diff(want, append(rows, more...)); diff != "" {
		t.Errorf("rows (-stream +backfill):\n%s", diff)
	}

	// Verbatim: the same chunks as COPY text, the columns in another order,
	// each value as the PostgreSQL sink encodes it; decoded, each value is
	// that text.
	cols := slices.Clone(tbl.Columns)
	slices.Reverse(cols)
	for _, c := range []struct {
		after []string
		limit int
		rows  []change.Row
		last  []string
	}{{nil, 1, rows, last}, {last, 10, more, []string{"18446744073709551615"}}} {
		text, err := r.TextChunk(ctx, tbl, cols, c.after, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		var wantText []byte
		var wantDecoded []change.Row
		for _, row := range c.rows {
			decoded := change.Row{}
			for i, col := range cols {
				if i > 0 {
					wantText = append(wantText, '\t')
				}
				if wantText, err = pgtext.AppendCopy(wantText, row[col]); err != nil {
					t.Fatal(err)
				}
				v, err := pgtext.Encode(row[col])
				if err != nil {
					t.Fatal(err)
				}
				decoded[col] = nil
				if v != nil {
					decoded[col] = *v
				}
			}
			wantText = append(wantText, '\n')
			wantDecoded = append(wantDecoded, decoded)
		}
		if diff := cmp.Diff(string(wantText), string(text.Data)); diff != "" || text.Rows != len(c.rows) {
			t.Errorf("TextChunk after %q (-encoded rows +TextChunk):\n%s\n%d rows", c.after, diff, text.Rows)
		}
		if diff := cmp.Diff(c.last, text.Last); diff != "" {
			t.Errorf("TextChunk after %q: last key (-Chunk +TextChunk):\n%s", c.after, diff)
		}
		decoded, err := text.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantDecoded, decoded); diff != "" {
			t.Errorf("TextChunk after %q: decoded (-want +got):\n%s", c.after, diff)
		}
	}
}
