package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

var updateDebeziumGolden = flag.Bool("update-debezium-golden", false, "rewrite the e2e golden records from what kcat reads")

// debeziumGolden is the golden file of the PostgreSQL end-to-end records,
// beside the encoder's golden records.
var debeziumGolden = filepath.Join("..", "change", "testdata", "golden", "e2e_postgres_shop_orders.json")

// TestRun_TopicsHoldDebeziumRecordsAsKcatReadsThem: an insert, an update,
// a key change and a delete on a PostgreSQL source, read back from the
// topic by kcat (librdkafka), are Debezium's records: the golden records
// once times, positions and transaction ids are normalised, with a
// tombstone after each delete.
func TestRun_TopicsHoldDebeziumRecordsAsKcatReadsThem(t *testing.T) {
	ctx := context.Background()
	cluster := externalKafka(t)
	m := newMigration(t)
	start(t, parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Brokers: cluster.ListenAddrs()})))
	for _, q := range []string{
		`INSERT INTO shop.orders (id, customer_id, total, status, payment_method, created_at)
		 VALUES (1, 7, 1234.50, 'paid', 'card', '2024-03-01 08:20:30.123456+00')`,
		`UPDATE shop.orders SET total = 0.05, card_last4 = '4242' WHERE id = 1`,
		`UPDATE shop.orders SET id = 2 WHERE id = 1`,
		`DELETE FROM shop.orders WHERE id = 2`,
	} {
		if _, err := m.Src.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// apply reads every record, tombstones skipped rather than dead-lettered.
	testenv.WaitFor(t, "every record applied", time.Minute, func() (bool, error) {
		var next, rows int64
		if err := m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM tandem.kafka_offsets`).Scan(&next); err != nil {
			return false, nil // not created yet
		}
		if err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM public.orders`).Scan(&rows); err != nil {
			return false, err
		}
		return next >= 7 && rows == 0, nil
	})
	var dead int
	if err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM tandem.dead_letters`).Scan(&dead); err != nil || dead != 0 {
		t.Errorf("dead letters: %d (%v), want none", dead, err)
	}
	const want = 7 // c, u, d + tombstone, c, d + tombstone
	broker := cluster.ListenAddrs()[0]
	var recs []kcatRecord
	testenv.WaitFor(t, "the changes in the orders topic", time.Minute, func() (bool, error) {
		recs = kcatRecords(t, broker, "shop.shop.orders")
		return len(recs) >= want, nil
	})
	got := normaliseDebezium(t, recs)
	if *updateDebeziumGolden {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(debeziumGolden, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(debeziumGolden)
	if err != nil {
		t.Fatal(err)
	}
	var golden []map[string]any
	for _, r := range decodeJSON(t, string(b)).([]any) {
		golden = append(golden, r.(map[string]any))
	}
	if diff := cmp.Diff(golden, got); diff != "" {
		t.Errorf("records read by kcat (-golden +got):\n%s", diff)
	}
}

// normaliseDebezium turns kcat's records into {key, value} JSON, with the
// values that differ between runs (times, positions, transaction ids,
// version) replaced by a mark of their presence.
func normaliseDebezium(t *testing.T, recs []kcatRecord) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range recs {
		rec := map[string]any{"key": decodeJSON(t, r.Key), "value": nil}
		if r.Payload != "" {
			v := decodeJSON(t, r.Payload).(map[string]any)
			present(v, "ts_ms", "ts_us", "ts_ns")
			if src, ok := v["source"].(map[string]any); ok {
				present(src, "ts_ms", "ts_us", "ts_ns", "pos", "lsn", "txId", "version", "db", "name")
			}
			rec["value"] = v
		}
		out = append(out, rec)
	}
	return out
}

func present(m map[string]any, keys ...string) {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			m[k] = "<present>"
		}
	}
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return v
}

// debeziumGoldenMariaDB is the golden file of the MariaDB end-to-end records.
var debeziumGoldenMariaDB = filepath.Join("..", "change", "testdata", "golden", "e2e_mariadb_carts.json")

// TestRun_MariaDBTopicsHoldDebeziumRecordsAsKcatReadsThem is
// TestRun_TopicsHoldDebeziumRecordsAsKcatReadsThem on a MariaDB source
// (Debezium's MySQL connector's encodings: DECIMAL as a string, DATETIME(6)
// as epoch microseconds, ENUM as its text), the database's generated name
// normalised too.
func TestRun_MariaDBTopicsHoldDebeziumRecordsAsKcatReadsThem(t *testing.T) {
	ctx := context.Background()
	cluster := externalKafka(t)
	m := newCartMigration(t, "postgres")
	start(t, parseConfig(t, strings.Replace(cartConfig(m.srcDSN, m.srcDB, "postgres", m.cfg.Target.DSN.Value()),
		"brokers: []", "brokers: ["+strings.Join(cluster.ListenAddrs(), ", ")+"]", 1)))
	for _, q := range []string{
		`INSERT INTO carts (id, owner, total, state, note, touched) VALUES (1, 'ann', 1234.50, 'open', NULL, '2024-03-01 08:20:30.123456')`,
		`UPDATE carts SET total = 0.05, state = 'paid', note = 'gift' WHERE id = 1`,
		`UPDATE carts SET id = 2 WHERE id = 1`,
		`DELETE FROM carts WHERE id = 2`,
	} {
		if _, err := m.src.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const want = 7 // c, u, d + tombstone, c, d + tombstone
	broker, topic := cluster.ListenAddrs()[0], "cart."+m.srcDB+".carts"
	var recs []kcatRecord
	testenv.WaitFor(t, "the changes in the carts topic", time.Minute, func() (bool, error) {
		recs = kcatRecords(t, broker, topic)
		return len(recs) >= want, nil
	})
	got := normaliseDebezium(t, recs)
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	// The source database's name is generated per test.
	got = decodeRecords(t, strings.ReplaceAll(string(b), `"`+m.srcDB+`"`, `"<db>"`))
	if *updateDebeziumGolden {
		b, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(debeziumGoldenMariaDB, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(debeziumGoldenMariaDB)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decodeRecords(t, string(golden)), got); diff != "" {
		t.Errorf("records read by kcat (-golden +got):\n%s", diff)
	}
}

// decodeRecords decodes a JSON array of records.
func decodeRecords(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range decodeJSON(t, s).([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}
