package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql on the PostgreSQL target, to read it as the MariaDB one

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
)

// The notes tests: a MariaDB source whose titles may be longer than the
// target's VARCHAR(10), and whose dates and texts hold what MySQL allows
// and PostgreSQL does not (zero dates, NUL bytes).
const notesSourceDDL = `CREATE TABLE notes (id INT PRIMARY KEY, title VARCHAR(500) NOT NULL, body TEXT, d DATE, dt DATETIME)`

// notesTargetDDL is the target table of each kind; without, when not
// empty, is the column it lacks (the table is missing for "table").
func notesTargetDDL(kind, without string) string {
	cols := []string{"id BIGINT PRIMARY KEY", "title VARCHAR(10) NOT NULL", "body TEXT", "d DATE", "dt DATETIME"}
	if kind == "postgres" {
		cols[4] = "dt TIMESTAMP"
	}
	var keep []string
	for _, c := range cols {
		if !strings.HasPrefix(c, without+" ") {
			keep = append(keep, c)
		}
	}
	return "CREATE TABLE notes (" + strings.Join(keep, ", ") + ")"
}

// notesMigration is a MariaDB source of notes and a target of one kind.
type notesMigration struct {
	src, tgt *sql.DB
	cfg      *config.Config
	kind     string
}

// newNotesMigration creates the source and a target of kind ("postgres" or
// "mysql") holding notesTargetDDL(kind, without) (nothing for "table").
func newNotesMigration(t *testing.T, kind, without string) *notesMigration {
	t.Helper()
	ctx := context.Background()
	srcDSN := testenv.NewMariaDBDatabase(t)
	m := &notesMigration{src: openMySQL(t, srcDSN), kind: kind}
	if _, err := m.src.ExecContext(ctx, notesSourceDDL); err != nil {
		t.Fatal(err)
	}
	var tgtDSN string
	switch kind {
	case "postgres":
		tgtDSN = testenv.NewDatabase(t)
		db, err := sql.Open("pgx", tgtDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		m.tgt = db
	case "mysql":
		tgtDSN = testenv.NewMariaDBDatabase(t)
		m.tgt = openMySQL(t, tgtDSN)
	}
	if without != "table" {
		m.exec(t, m.tgt, notesTargetDDL(kind, without))
	}
	srcCfg, _ := mysqlurl.Parse(srcDSN)
	m.cfg = parseConfig(t, fmt.Sprintf(`source:
  kind: mysql
  dsn: %q
  tables: [%[2]s.notes]
  mysql: { server_id: %[3]d }
kafka:
  topic_prefix: notes
target:
  kind: %[4]s
  dsn: %[5]q
http:
  listen: 127.0.0.1:0
mappings:
  - from: %[2]s.notes
    to:
      - table: notes
        key: [id]
        columns:
          id: row.id
          title: row.title
          body: row.body
          d: row.d
          dt: row.dt
`, srcDSN, srcCfg.DBName, 3000+serverIDCounter.Add(1), kind, tgtDSN))
	return m
}

func (m *notesMigration) exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// rows reads the target's notes as text, in key order, dates as ISO text.
func (m *notesMigration) rows(ctx context.Context) ([][]string, error) {
	q := "SELECT CAST(id AS CHAR), title, body, CAST(d AS CHAR), CAST(dt AS CHAR) FROM notes ORDER BY id"
	if m.kind == "postgres" {
		q = "SELECT id::text, title, body, d::text, to_char(dt, 'YYYY-MM-DD HH24:MI:SS') FROM notes ORDER BY id"
	}
	return cart.SQLText(ctx, m.tgt, q)
}

// waitRows waits until the target's notes are want, failing with the difference.
func (m *notesMigration) waitRows(t *testing.T, want [][]string, within time.Duration) {
	t.Helper()
	var got [][]string
	_, err := poll.Until(context.Background(), 50*time.Millisecond, within, func() (bool, error) {
		var err error
		got, err = m.rows(context.Background())
		return err == nil && cmp.Equal(want, got), nil
	})
	if err != nil {
		t.Fatalf("target notes: %v (-want +got):\n%s", err, cmp.Diff(want, got))
	}
}

// deadLetters returns the dead letters the target keeps of the notes
// mapping (a MariaDB target's state database is shared by the tests on
// the server, each with its own mapping name).
func (m *notesMigration) deadLetters(t *testing.T) []sink.StoredDeadLetter {
	t.Helper()
	store, closeStore, err := app.ListDeadLetters(context.Background(), m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	dls, err := store.DeadLetters(context.Background(), m.cfg.Mappings[0].Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

// wantRejected fails t unless dls is one dead letter of the notes mapping,
// reason rejected, whose error names the source key id and holds each of msgs.
func (m *notesMigration) wantRejected(t *testing.T, dls []sink.StoredDeadLetter, id int, msgs ...string) {
	t.Helper()
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1: %+v", len(dls), dls)
	}
	d := dls[0]
	key := fmt.Sprintf(`{"id":%d}`, id)
	if d.Reason != sink.DeadLetterRejected || string(d.Key) != key || !strings.Contains(d.Error, key) {
		t.Errorf("dead letter: reason %q, key %s, error %q: want reason rejected and the source key %s in both", d.Reason, d.Key, d.Error, key)
	}
	for _, msg := range msgs {
		if !strings.Contains(d.Error, msg) {
			t.Errorf("dead letter's error %q does not hold the database's %q", d.Error, msg)
		}
	}
}

// null is how the notes rows read back a NULL.
const null = cart.Null

func TestRun_ValueTooLongIsDeadLetteredWithItsKeyWhileTheNextRowsApply(t *testing.T) {
	for kind, msg := range map[string]string{"postgres": "value too long for type character varying(10)", "mysql": "Data too long for column 'title'"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newNotesMigration(t, kind, "")
			r := start(t, m.cfg)
			m.exec(t, m.src, `INSERT INTO notes (id, title) VALUES (1, 'first'), (2, 'a title far too long'), (3, 'third')`)
			m.exec(t, m.src, `UPDATE notes SET title = 'third!' WHERE id = 3`)
			m.exec(t, m.src, `INSERT INTO notes (id, title) VALUES (4, 'fourth')`)
			m.waitRows(t, [][]string{{"1", "first", null, null, null}, {"3", "third!", null, null, null}, {"4", "fourth", null, null, null}}, 30*time.Second)
			m.wantRejected(t, m.deadLetters(t), 2, msg)
			labels := map[string]string{"mapping": m.cfg.Mappings[0].Name}
			if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", labels); v != 0 {
				t.Errorf("tandem_mapping_paused = %v, want 0", v)
			}
			labels["reason"] = sink.DeadLetterRejected
			if v, _ := metricValue(t, r.Reg, "tandem_dlq_events_total", labels); v != 1 {
				t.Errorf("tandem_dlq_events_total{reason=rejected} = %v, want 1", v)
			}
			// A later change of the key that fits is applied: the row
			// becomes what the source holds.
			m.exec(t, m.src, `UPDATE notes SET title = 'second' WHERE id = 2`)
			m.waitRows(t, [][]string{{"1", "first", null, null, null}, {"2", "second", null, null, null}, {"3", "third!", null, null, null}, {"4", "fourth", null, null, null}}, 30*time.Second)
		})
	}
}

// TestRun_PausedMappingResumesWithinSecondsOfTheFix pauses a mapping long
// enough that a backoff doubling to 30s would wait 8s or more before its
// next attempt, then fixes the target and wants the rows within 5s.
func TestRun_PausedMappingResumesWithinSecondsOfTheFix(t *testing.T) {
	for kind, missing := range map[string]string{"postgres": "body", "mysql": "table"} {
		t.Run("to_"+kind+"_"+missing+"_missing", func(t *testing.T) {
			m := newNotesMigration(t, kind, missing)
			r := start(t, m.cfg)
			m.exec(t, m.src, `INSERT INTO notes (id, title, body) VALUES (1, 'first', 'a'), (2, 'second', 'b')`)
			reason := map[string]string{"body": "column_missing", "table": "table_missing"}[missing]
			testenv.WaitFor(t, "seven failed attempts", time.Minute, func() (bool, error) {
				v, _ := metricValue(t, r.Reg, "tandem_apply_errors_total", map[string]string{"reason": reason})
				return v >= 7, nil
			})
			if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", nil); v != 1 {
				t.Errorf("tandem_mapping_paused = %v, want 1", v)
			}
			if missing == "table" {
				m.exec(t, m.tgt, notesTargetDDL(kind, ""))
			} else {
				m.exec(t, m.tgt, "ALTER TABLE notes ADD COLUMN body TEXT")
			}
			m.waitRows(t, [][]string{{"1", "first", "a", null, null}, {"2", "second", "b", null, null}}, 5*time.Second)
			testenv.WaitFor(t, "the mapping resumed", 5*time.Second, func() (bool, error) {
				v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", nil)
				return v == 0, nil
			})
			if dls := m.deadLetters(t); len(dls) != 0 {
				t.Errorf("dead letters %+v: a paused mapping must dead-letter nothing", dls)
			}
		})
	}
}

// TestRun_MySQLZeroDatesBecomeNullAndNULInTextIsDeadLetteredInPostgres:
// the documented rule (sink/postgres's table.value, README's dead letters).
func TestRun_MySQLZeroDatesBecomeNullAndNULInTextIsDeadLetteredInPostgres(t *testing.T) {
	m := newNotesMigration(t, "postgres", "")
	r := start(t, m.cfg)
	m.exec(t, m.src, `SET STATEMENT sql_mode = '' FOR INSERT INTO notes (id, title, body, d, dt) VALUES
		(1, 'zero', 'z', '0000-00-00', '0000-00-00 00:00:00'),
		(2, 'nul', CONCAT('a', CHAR(0 USING utf8mb4), 'b'), '2024-02-29', '2024-02-29 12:34:56'),
		(3, 'dated', 'ok', '2024-02-29', '2024-02-29 12:34:56')`)
	m.waitRows(t, [][]string{{"1", "zero", "z", null, null}, {"3", "dated", "ok", "2024-02-29", "2024-02-29 12:34:56"}}, 30*time.Second)
	m.wantRejected(t, m.deadLetters(t), 2, "0x00", "SQLSTATE 22021")
	if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", nil); v != 0 {
		t.Errorf("tandem_mapping_paused = %v, want 0", v)
	}
}
