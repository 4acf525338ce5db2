package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

func newMigration(t *testing.T) *shop.Migration {
	t.Helper()
	m, err := shop.Open(context.Background(), testenv.NewDatabase(t), testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// slotFor returns a replication slot name of the test's own (slots are
// server-wide) and drops the slot when the test ends.
func slotFor(t *testing.T, m *shop.Migration) string {
	t.Helper()
	var db string
	if err := m.Src.QueryRow(context.Background(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	slot := strings.ToLower(db)
	if len(slot) > 63 {
		slot = slot[len(slot)-63:]
	}
	t.Cleanup(func() {
		_, _ = m.Src.Exec(context.Background(), `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
	})
	return slot
}

// externalKafka starts a kfake cluster on a loopback port, standing in for
// an external Kafka cluster (kafka.brokers set).
func externalKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster
}

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	return apptest.ParseConfig(t, yaml)
}

func start(t *testing.T, cfg *config.Config) *apptest.Running {
	t.Helper()
	return startWith(t, cfg, app.Roles{Capture: true, Apply: true})
}

func startWith(t *testing.T, cfg *config.Config, roles app.Roles) *apptest.Running {
	t.Helper()
	return apptest.Start(t, cfg, roles, slog.LevelInfo)
}

func waitConverged(t *testing.T, m *shop.Migration, within time.Duration) *shop.NewRows {
	t.Helper()
	got, err := m.WaitConverged(context.Background(), within)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRun_ConcurrentWriterConverges(t *testing.T) {
	m := newMigration(t)
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}))
	start(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w := &shop.Workload{Src: m.Src, Seed: 1}
	if err := w.History(ctx, 100); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 3)
	for i := range 3 {
		go func() {
			wk := &shop.Workload{Src: m.Src, Seed: uint64(10 + i)}
			errc <- wk.Run(ctx, 400, 0)
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	got := waitConverged(t, m, time.Minute)
	if got.Count() < 300 {
		t.Errorf("only %d rows in the target: the workload did too little to prove anything", got.Count())
	}
}

func TestRun_EmbeddedBrokerNeedsBothRoles(t *testing.T) {
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{SourceDSN: "postgres://x@127.0.0.1:1/x", TargetDSN: "postgres://x@127.0.0.1:1/x"}))
	err := app.Run(context.Background(), cfg, app.Options{Roles: app.Roles{Capture: true}})
	if !errors.Is(err, app.ErrEmbeddedNeedsRun) {
		t.Fatalf("Run(capture only, embedded broker) = %v, want ErrEmbeddedNeedsRun", err)
	}
}

// metricValue reads one metric (summed over the matching label sets).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return apptest.Metric(reg, name, labels)
}

func TestRun_FailingMappingPausesAloneAndResumes(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}))
	r := start(t, cfg)
	if _, err := m.Tgt.Exec(ctx, `ALTER TABLE public.customers RENAME TO customers_away`); err != nil {
		t.Fatal(err)
	}
	w := &shop.Workload{Src: m.Src, Seed: 7}
	if err := w.History(ctx, 50); err != nil {
		t.Fatal(err)
	}
	paused := map[string]string{"mapping": "shop.customers"}
	testenv.WaitFor(t, "shop.customers paused", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", paused)
		return v == 1, nil
	})
	// A paused mapping is behind: its lag grows instead of reading 0.
	testenv.WaitFor(t, "the paused mapping's lag to grow", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_replication_lag_seconds", paused)
		return v >= 0.5, nil
	})
	if v, _ := metricValue(t, r.Reg, "tandem_apply_errors_total", map[string]string{"reason": "table_missing"}); v < 1 {
		t.Errorf("tandem_apply_errors_total{reason=table_missing} = %v, want >= 1", v)
	}
	// The orders mapping goes on while customers is paused.
	testenv.WaitFor(t, "orders and payments applied while customers is paused", 30*time.Second, func() (bool, error) {
		want, err := shop.Expected(ctx, m.Src)
		if err != nil {
			t.Fatal(err)
		}
		var orders, payments int
		if err := m.Tgt.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.orders), (SELECT count(*) FROM public.payments)`).Scan(&orders, &payments); err != nil {
			t.Fatal(err)
		}
		return orders == len(want.Orders) && payments == len(want.Payments), nil
	})
	if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", map[string]string{"mapping": "shop.orders"}); v != 0 {
		t.Errorf("shop.orders paused = %v, want 0", v)
	}
	// Fixed: the paused mapping resumes and everything converges.
	if _, err := m.Tgt.Exec(ctx, `ALTER TABLE public.customers_away RENAME TO customers`); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	testenv.WaitFor(t, "shop.customers resumed", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", paused)
		return v == 0, nil
	})
}

func TestRun_ExternalKafkaSplitRolesAndReplayedSuffixChangesNothing(t *testing.T) {
	ctx := context.Background()
	cluster := externalKafka(t)
	m := newMigration(t)
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Brokers: cluster.ListenAddrs()}))

	// capture and apply as separate roles, as separate processes would run them.
	startRoles := func(roles app.Roles) *apptest.Running { return startWith(t, cfg, roles) }
	capture := startRoles(app.Roles{Capture: true})
	apply := startRoles(app.Roles{Apply: true})

	w := &shop.Workload{Src: m.Src, Seed: 3}
	if err := w.History(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, 600, 0); err != nil {
		t.Fatal(err)
	}
	before := waitConverged(t, m, time.Minute)
	for _, name := range []string{"tandem_capture_events_total", "tandem_capture_lag_seconds", "tandem_source_retention_headroom_bytes"} {
		if _, ok := metricValue(t, capture.Reg, name, nil); !ok {
			t.Errorf("capture role exports no %s", name)
		}
	}
	for _, name := range []string{"tandem_apply_rows_total", "tandem_replication_lag_seconds", "tandem_mapping_paused"} {
		if _, ok := metricValue(t, apply.Reg, name, nil); !ok {
			t.Errorf("apply role exports no %s", name)
		}
	}
	for _, reg := range []*prometheus.Registry{capture.Reg, apply.Reg} {
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
		}
	}
	apply.Stop(t)

	// Rewind every partition to half its offset and apply the suffix again.
	var end int64
	if err := m.Tgt.QueryRow(ctx, `SELECT sum(next_offset) FROM tandem.kafka_offsets`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tgt.Exec(ctx, `UPDATE tandem.kafka_offsets SET next_offset = next_offset / 2`); err != nil {
		t.Fatal(err)
	}
	startRoles(app.Roles{Apply: true})
	testenv.WaitFor(t, "the replayed suffix applied", time.Minute, func() (bool, error) {
		var n int64
		if err := m.Tgt.QueryRow(ctx, `SELECT sum(next_offset) FROM tandem.kafka_offsets`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n >= end, nil
	})
	after, err := shop.ReadTarget(ctx, m.Tgt)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("replaying a suffix changed the target (-before +after):\n%s", diff)
	}
}

// kcatRecords reads a whole topic with kcat (librdkafka), an independent
// Kafka client: what it reads is what any Kafka consumer would.
func kcatRecords(t *testing.T, broker, topic string) []kcatRecord {
	t.Helper()
	out, err := exec.Command("kcat", "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J").Output()
	if err != nil {
		t.Fatalf("kcat -C -t %s: %v", topic, err)
	}
	var recs []kcatRecord
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("kcat output %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

type kcatRecord struct {
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Key       string `json:"key"`
	Payload   string `json:"payload"`
}

func TestRun_PoisonChangeGoesToDeadLetterTopicAndStreamGoesOn(t *testing.T) {
	ctx := context.Background()
	cluster := externalKafka(t)
	m := newMigration(t)
	yaml := shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN, Brokers: cluster.ListenAddrs()})
	poison := `status: 'row.status == "poison" ? string(int(row.status)) : (row.status == "" ? "pending" : row.status)'`
	yaml = strings.Replace(yaml, `status: 'row.status == "" ? "pending" : row.status'`, poison, 1)
	r := start(t, parseConfig(t, yaml))

	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.orders (id, customer_id, total, status, payment_method) VALUES
		(1, 1, 1.00, 'paid', 'card'), (2, 1, 2.00, 'poison', 'card'), (3, 1, 3.00, '', '')`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `UPDATE shop.orders SET total = 4.00 WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the changes after the poison one applied", 30*time.Second, func() (bool, error) {
		var cents int64
		err := m.Tgt.QueryRow(ctx, `SELECT total_cents FROM public.orders WHERE id = 3`).Scan(&cents)
		return err == nil && cents == 400, nil
	})
	got, err := shop.ReadTarget(ctx, m.Tgt)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, o := range got.Orders {
		ids = append(ids, o.ID)
	}
	if diff := cmp.Diff([]int64{1, 3}, ids); diff != "" {
		t.Errorf("target orders (-want +got):\n%s", diff)
	}
	if v, _ := metricValue(t, r.Reg, "tandem_dlq_events_total", map[string]string{"mapping": "shop.orders", "reason": "transform"}); v != 1 {
		t.Errorf("tandem_dlq_events_total{mapping=shop.orders,reason=transform} = %v, want 1", v)
	}

	// The dead letter is also kept in the target, committed with its offset.
	var stored struct {
		Mapping, Reason, Error string
		Offset                 int64
		Record                 []byte
	}
	if err := m.Tgt.QueryRow(ctx, `SELECT mapping, reason, error, "offset", record FROM tandem.dead_letters`).Scan(
		&stored.Mapping, &stored.Reason, &stored.Error, &stored.Offset, &stored.Record); err != nil {
		t.Fatalf("read tandem.dead_letters: %v", err)
	}
	if stored.Mapping != "shop.orders" || stored.Reason != "transform" || !strings.Contains(stored.Error, "to[0].columns.status") ||
		!strings.Contains(string(stored.Record), `"status":"poison"`) {
		t.Errorf("stored dead letter = %+v, want the mapping, reason, error and original record", stored)
	}

	broker := cluster.ListenAddrs()[0]
	dead := kcatRecords(t, broker, "shop.dlq")
	if len(dead) != 1 {
		t.Fatalf("dead letters: %d records, want 1: %+v", len(dead), dead)
	}
	var dl struct {
		Mapping, Reason, Error, Topic string
		Key                           map[string]any
		Value                         struct {
			After map[string]any
		}
	}
	if err := json.Unmarshal([]byte(dead[0].Payload), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Mapping != "shop.orders" || dl.Reason != "transform" || dl.Topic != "shop.shop.orders" ||
		!strings.Contains(dl.Error, "to[0].columns.status") || dl.Value.After["status"] != "poison" || dl.Key["id"] != 2.0 {
		t.Errorf("dead letter does not carry the mapping, reason, error and original record: %s", dead[0].Payload)
	}

	// The change records are Debezium-style envelopes keyed by the primary key.
	var ops []string
	for _, rec := range kcatRecords(t, broker, "shop.shop.orders") {
		var env struct {
			Before, After map[string]any
			Op            string
			TsMs          int64 `json:"ts_ms"`
			Source        struct {
				Connector, DB, Schema, Table, Pos string
				TsMs                              int64 `json:"ts_ms"`
			}
		}
		if err := json.Unmarshal([]byte(rec.Payload), &env); err != nil {
			t.Fatalf("record value is not JSON: %v: %s", err, rec.Payload)
		}
		var key map[string]any
		if err := json.Unmarshal([]byte(rec.Key), &key); err != nil || len(key) != 1 || key["id"] == nil {
			t.Errorf("record key %q is not the primary key as JSON", rec.Key)
		}
		if env.Source.Connector != "postgresql" || env.Source.Schema != "shop" || env.Source.Table != "orders" ||
			env.Source.Pos == "" || env.Source.TsMs == 0 || env.TsMs == 0 || env.After == nil {
			t.Errorf("not a complete envelope: %s", rec.Payload)
		}
		ops = append(ops, env.Op)
	}
	slices.Sort(ops)
	if diff := cmp.Diff([]string{"c", "c", "c", "u"}, ops); diff != "" {
		t.Errorf("ops on the orders topic (-want +got):\n%s", diff)
	}
}

func TestRun_ReconnectsWhenTheReplicationConnectionDies(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	slot := slotFor(t, m)
	r := start(t, parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})))
	for _, path := range []string{"/healthz", "/readyz"} {
		testenv.WaitFor(t, path+" answers 200", 30*time.Second, func() (bool, error) {
			resp, err := http.Get("http://" + r.Addr + path)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
	}
	w := &shop.Workload{Src: m.Src, Seed: 11}
	if err := w.History(ctx, 20); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	streaming := func(want float64) {
		t.Helper()
		testenv.WaitFor(t, fmt.Sprintf("tandem_capture_streaming %v", want), 30*time.Second, func() (bool, error) {
			v, ok := apptest.Metric(apptest.Scraped(r.Addr), "tandem_capture_streaming", nil)
			return ok && v == want, nil
		})
	}
	streaming(1)

	// The source refuses new connections: the walsender killed, capture
	// retries in vain and says so; once the source accepts them again it
	// streams, and nothing is lost.
	var db string
	if err := m.Src.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	// (from the target's database: a database cannot bar its own sessions;
	// both are on the test server)
	if _, err := m.Tgt.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` WITH ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	var killed bool
	if err := m.Src.QueryRow(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the walsender: %v (terminated: %v)", err, killed)
	}
	streaming(0)
	if _, err := m.Tgt.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` WITH ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}
	streaming(1)
	if err := w.Run(ctx, w.Ops.Load()+200, 0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
}

func TestRun_UnchangedToastedValueIsNotOverwritten(t *testing.T) {
	ctx := context.Background()
	srcDSN, tgtDSN := testenv.NewDatabase(t), testenv.NewDatabase(t)
	m, err := shop.Open(ctx, srcDSN, tgtDSN, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Src.Exec(ctx, `CREATE SCHEMA docs; CREATE TABLE docs.pages (id bigint PRIMARY KEY, title text, body text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tgt.Exec(ctx, `CREATE TABLE public.pages (id bigint PRIMARY KEY, title text, body text, body_chars int)`); err != nil {
		t.Fatal(err)
	}
	slot := slotFor(t, m)
	start(t, parseConfig(t, fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [docs.pages]
  postgres: { slot: %s, publication: %s }
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: docs.pages
    to:
      - table: public.pages
        key: [id]
        columns:
          id: row.id
          title: row.title
          body: row.body
          body_chars: size(row.body)
`, srcDSN, slot, slot, tgtDSN)))

	// 32 KB of incompressible text: stored out of line (TOAST).
	if _, err := m.Src.Exec(ctx, `INSERT INTO docs.pages SELECT 1, 'first', string_agg(md5(g::text), '') FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `UPDATE docs.pages SET title = 'renamed' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	type page struct {
		Title     string
		BodyChars int
		BodyMD5   string
	}
	read := func(pool *pgxpool.Pool, q string) (page, error) {
		var p page
		err := pool.QueryRow(ctx, q).Scan(&p.Title, &p.BodyChars, &p.BodyMD5)
		return p, err
	}
	want, err := read(m.Src, `SELECT title, length(body), md5(body) FROM docs.pages WHERE id = 1`)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the title update applied without touching the body", 30*time.Second, func() (bool, error) {
		got, err := read(m.Tgt, `SELECT title, body_chars, md5(body) FROM public.pages WHERE id = 1`)
		return err == nil && cmp.Diff(want, got) == "", nil
	})
}

func TestRun_PermissionErrorPausesTheMappingUntilGranted(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	// The target is written by an ordinary role, as in production.
	var db string
	if err := m.Tgt.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	role := db + "_writer"
	if _, err := m.Tgt.Exec(ctx, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN PASSWORD 'writer-pw';
		GRANT CREATE ON DATABASE %[2]s TO %[1]s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[1]s`, role, db)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(m.TgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "writer-pw")
	r := start(t, parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: u.String()})))

	if _, err := m.Tgt.Exec(ctx, `REVOKE INSERT, UPDATE ON public.customers FROM `+role); err != nil {
		t.Fatal(err)
	}
	w := &shop.Workload{Src: m.Src, Seed: 21}
	if err := w.History(ctx, 30); err != nil {
		t.Fatal(err)
	}
	paused := map[string]string{"mapping": "shop.customers"}
	testenv.WaitFor(t, "shop.customers paused by the permission error", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", paused)
		return v == 1, nil
	})
	if v, _ := metricValue(t, r.Reg, "tandem_apply_errors_total", map[string]string{"reason": "permission"}); v < 1 {
		t.Errorf("tandem_apply_errors_total{reason=permission} = %v, want >= 1", v)
	}
	if _, err := m.Tgt.Exec(ctx, `GRANT INSERT, UPDATE ON public.customers TO `+role); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	testenv.WaitFor(t, "shop.customers resumed", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", paused)
		return v == 0, nil
	})
	r.Stop(t)
	if _, err := m.Tgt.Exec(ctx, fmt.Sprintf(`DROP OWNED BY %[1]s; DROP ROLE %[1]s`, role)); err != nil {
		t.Errorf("drop role: %v", err)
	}
}
