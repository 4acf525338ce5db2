package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
	"github.com/tandemcdc/tandem/sink"
)

// The oversize tests: docs whose body may be far larger than a Kafka
// record may be, copied whole into a PostgreSQL target.
const oversizeTargetDDL = `CREATE TABLE public.docs (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL)`

// oversizeMigration is a source of docs, of either kind, and the target.
type oversizeMigration struct {
	src, tgt  *sql.DB
	srcRows   string                 // the query reading the source's docs as text, in id order
	config    func(limit int) string // tandem.yaml with kafka.max_record_bytes: limit
	mapping   string
	bigLength int
}

// rows reads the docs of db with q.
func (m *oversizeMigration) rows(t *testing.T, db *sql.DB, q string) [][]string {
	t.Helper()
	rows, err := cart.SQLText(context.Background(), db, q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func (m *oversizeMigration) exec(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// waitTarget waits until the target's docs are the source's but for the
// ids left out, failing with the difference (long bodies cut short).
func (m *oversizeMigration) waitTarget(t *testing.T, what string, without ...string) {
	t.Helper()
	var want, got [][]string
	_, err := poll.Until(context.Background(), 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		want = nil
		for _, r := range m.rows(t, m.src, m.srcRows) {
			if !slices.Contains(without, r[0]) {
				want = append(want, r)
			}
		}
		got = m.rows(t, m.tgt, `SELECT id::text, title, body FROM public.docs ORDER BY id`)
		return cmp.Equal(want, got), nil
	})
	if err != nil {
		diff := cmp.Diff(want, got)
		t.Fatalf("%s: target docs (-source +target), %d bytes of diff:\n%.3000s", what, len(diff), diff)
	}
}

// deadLetters returns the dead letters the target keeps of the mapping.
func (m *oversizeMigration) deadLetters(t *testing.T, cfg *config.Config) []sink.StoredDeadLetter {
	t.Helper()
	return deadLettersOf(t, cfg, m.mapping)
}

// deadLettersOf returns the dead letters cfg's target keeps of mapping.
func deadLettersOf(t *testing.T, cfg *config.Config, mapping string) []sink.StoredDeadLetter {
	t.Helper()
	store, closeStore, err := app.ListDeadLetters(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	dls, err := store.DeadLetters(context.Background(), mapping, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

// insertDoc is the statement inserting doc id with body, which holds
// letters and spaces only, as either source's SQL writes it.
func insertDoc(id int, body string) string {
	return fmt.Sprintf(`INSERT INTO docs (id, title, body) VALUES (%d, 'doc %d', '%s')`, id, id, body)
}

// bigText is n letters that compress poorly: neither the source's own
// compression nor Kafka's brings the row under the limit.
func bigText(n int) string {
	r := rand.New(rand.NewPCG(7, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// run is the oversize scenario on m: a source transaction with rows
// before and after one of 200 KiB under a 64 KiB kafka.max_record_bytes
// streams every other row; the big one is dead-lettered with its key and
// why; later changes stream; `dlq replay` writes the big row; and once the
// limit is raised, the big row's changes stream.
func (m *oversizeMigration) run(t *testing.T) {
	ctx := context.Background()
	low := parseConfig(t, m.config(64<<10))
	r := start(t, low)

	tx, err := m.src.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, body := range []string{1: "one", 2: "two", 3: "three", 4: bigText(m.bigLength), 5: "five", 6: "six"} {
		if id == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, insertDoc(id, body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	m.waitTarget(t, "the rows beside the big one", "4")

	dls := m.deadLetters(t, low)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want the big row's: %+v", len(dls), dls)
	}
	d := dls[0]
	if d.Reason != kafka.ReasonOversize || string(d.Key) != `{"id":4}` || !strings.Contains(d.Error, "exceeds kafka.max_record_bytes 65,536") ||
		!strings.Contains(d.Error, "record of 2") || !strings.Contains(d.Error, "dlq replay") {
		t.Errorf("dead letter: reason %q, key %s, error %q; want oversize, {\"id\":4}, the record's size and the limit", d.Reason, d.Key, d.Error)
	}
	if len(d.Value) > 4096 {
		t.Errorf("the dead letter keeps a record of %d bytes, want the small marker", len(d.Value))
	}
	if v, _ := metricValue(t, r.Reg, "tandem_dlq_events_total", map[string]string{"mapping": m.mapping, "reason": "oversize"}); v != 1 {
		t.Errorf("tandem_dlq_events_total{reason=oversize} = %v, want 1", v)
	}

	// The stream goes on.
	m.exec(t, m.src, `INSERT INTO docs (id, title, body) VALUES (7, 'doc 7', 'seven')`)
	m.exec(t, m.src, `UPDATE docs SET title = 'doc 1 again' WHERE id = 1`)
	m.waitTarget(t, "the changes after the big row", "4")

	// Replay re-reads the big row from the source and writes it.
	high := parseConfig(t, m.config(1<<20))
	rep, err := app.ReplayDeadLetters(ctx, high, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rows != 1 || rep.Removed != 1 || len(rep.Failures) != 0 {
		t.Errorf("replay: %+v, want one row re-synced and its dead letter removed", rep)
	}
	m.waitTarget(t, "after dlq replay")
	if dls := m.deadLetters(t, low); len(dls) != 0 {
		t.Errorf("dead letters after replay: %+v", dls)
	}

	// Under the raised limit the big row's changes stream.
	r.Stop(t)
	start(t, high)
	m.exec(t, m.src, `UPDATE docs SET body = '`+bigText(m.bigLength+1)+`' WHERE id = 4`)
	m.exec(t, m.src, insertDoc(8, bigText(m.bigLength+2)))
	m.waitTarget(t, "big rows under the raised limit")
	if dls := m.deadLetters(t, high); len(dls) != 0 {
		t.Errorf("dead letters under the raised limit: %+v", dls)
	}
}

// TestRun_PostgresRowOverTheRecordLimitIsDeadLetteredAndReplayedWhileTheStreamGoesOn
// is the oversize scenario with a PostgreSQL source.
func TestRun_PostgresRowOverTheRecordLimitIsDeadLetteredAndReplayedWhileTheStreamGoesOn(t *testing.T) {
	ctx := context.Background()
	sm, err := shop.Open(ctx, testenv.NewDatabase(t), testenv.NewDatabase(t), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sm.Close)
	slot := slotFor(t, sm)
	m := &oversizeMigration{src: openPG(t, sm.SrcDSN), tgt: openPG(t, sm.TgtDSN), mapping: "public.docs", bigLength: 200 << 10,
		srcRows: `SELECT id::text, title, body FROM docs ORDER BY id`}
	m.exec(t, m.src, `CREATE TABLE public.docs (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL)`)
	m.exec(t, m.tgt, oversizeTargetDDL)
	m.config = func(limit int) string {
		return oversizeConfig(fmt.Sprintf("kind: postgres\n  dsn: %q\n  postgres: { slot: %s, publication: %s }", sm.SrcDSN, slot, slot), m.mapping, limit, sm.TgtDSN)
	}
	m.run(t)
}

// TestRun_MariaDBRowOverTheRecordLimitIsDeadLetteredAndReplayedWhileTheStreamGoesOn
// is the oversize scenario with a MariaDB source.
func TestRun_MariaDBRowOverTheRecordLimitIsDeadLetteredAndReplayedWhileTheStreamGoesOn(t *testing.T) {
	srcDSN, tgtDSN := testenv.NewMariaDBDatabase(t), testenv.NewDatabase(t)
	m := &oversizeMigration{src: openMySQL(t, srcDSN), tgt: openPG(t, tgtDSN), bigLength: 200 << 10,
		srcRows: `SELECT CAST(id AS CHAR), title, body FROM docs ORDER BY id`}
	m.exec(t, m.src, `CREATE TABLE docs (id BIGINT PRIMARY KEY, title VARCHAR(100) NOT NULL, body MEDIUMTEXT NOT NULL)`)
	m.exec(t, m.tgt, oversizeTargetDDL)
	srcCfg, _ := mysqlurl.Parse(srcDSN)
	m.mapping = srcCfg.DBName + ".docs"
	serverID := 3000 + serverIDCounter.Add(1)
	m.config = func(limit int) string {
		return oversizeConfig(fmt.Sprintf("kind: mysql\n  dsn: %q\n  mysql: { server_id: %d }", srcDSN, serverID), m.mapping, limit, tgtDSN)
	}
	m.run(t)
}

// oversizeConfig is the tandem.yaml of the oversize tests: source (its
// keys but tables) reads table, copied whole into the target's
// public.docs, under kafka.max_record_bytes limit.
func oversizeConfig(source, table string, limit int, tgtDSN string) string {
	return fmt.Sprintf(`source:
  %s
  tables: [%s]
kafka:
  max_record_bytes: %d
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: %[2]s
    to:
      - table: public.docs
        key: [id]
        columns: { id: row.id, title: row.title, body: row.body }
`, source, table, limit, tgtDSN)
}

// openPG opens a PostgreSQL database through database/sql.
func openPG(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
