package app_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestRun_SecondTandemOnTheSameSlotStopsWithAClearError(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}))
	start(t, cfg)
	w := &shop.Workload{Src: m.Src, Seed: 21}
	if err := w.History(ctx, 10); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)

	runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := app.Run(runCtx, cfg, app.Options{Roles: app.Roles{Capture: true, Apply: true},
		Logger: slog.New(slog.NewTextHandler(apptest.LogWriter{TB: t}, nil))})
	if !errors.Is(err, capture.ErrSourceTaken) {
		t.Fatalf("second Run = %v, want capture.ErrSourceTaken", err)
	}
	if !strings.Contains(err.Error(), "another tandem is running this migration") {
		t.Errorf("error does not say why: %v", err)
	}
	// The first tandem goes on.
	if err := w.Run(ctx, w.Ops.Load()+50, 0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
}

func TestRun_QuietCapturedTablesDoNotPinWAL(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	slot := slotFor(t, m)
	start(t, parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})))
	// Busy tables tandem does not capture, in the same database and in another.
	other := testenv.NewDatabase(t)
	for _, dsn := range []string{m.SrcDSN, other} {
		if err := testenv.Postgres(t).Exec(ctx, dbOfDSN(t, dsn), `CREATE TABLE busy (id serial PRIMARY KEY, pad text);
INSERT INTO busy (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000)`); err != nil {
			t.Fatal(err)
		}
	}
	var written string
	if err := m.Src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&written); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the slot to move past WAL of tables it does not capture", 45*time.Second, func() (bool, error) {
		var past bool
		err := m.Src.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, slot, written).Scan(&past)
		return past, err
	})
}

func TestRun_PostgresSchemaChangeStopsOnlyTheMappingThatReadsTheColumn(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	r := start(t, parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})))
	w := &shop.Workload{Src: m.Src, Seed: 31}
	if err := w.History(ctx, 20); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	paused := func(mapping string) float64 {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", map[string]string{"mapping": mapping})
		return v
	}
	// A column no mapping reads comes and goes freely.
	if _, err := m.Src.Exec(ctx, `ALTER TABLE shop.customers ADD COLUMN nickname text; UPDATE shop.customers SET nickname = 'n' WHERE id IN (SELECT id FROM shop.customers LIMIT 3)`); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, w.Ops.Load()+30, 0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
	// A read column retyped (text -> bytea): that mapping stops.
	if _, err := m.Src.Exec(ctx, `ALTER TABLE shop.customers ALTER COLUMN email TYPE bytea USING convert_to(email, 'UTF8');
UPDATE shop.customers SET name = name || '!' WHERE id = (SELECT min(id) FROM shop.customers)`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "shop.customers to stop", 30*time.Second, func() (bool, error) { return paused("shop.customers") == 1, nil })
	// A read column dropped: orders stops too, never writing NULL card
	// numbers. (A status the workload never writes: it ships orders too.)
	if _, err := m.Src.Exec(ctx, `ALTER TABLE shop.orders DROP COLUMN card_last4;
UPDATE shop.orders SET status = 'after the drop' WHERE id = (SELECT min(id) FROM shop.orders)`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "shop.orders to stop", 30*time.Second, func() (bool, error) { return paused("shop.orders") == 1, nil })
	if v, _ := metricValue(t, r.Reg, "tandem_apply_errors_total", map[string]string{"reason": "schema_changed"}); v != 2 {
		t.Errorf("tandem_apply_errors_total{reason=schema_changed} = %v, want 2", v)
	}
	var applied int
	if err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM public.orders WHERE status = 'after the drop'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 0 {
		t.Errorf("the stopped orders mapping applied the change after the drop")
	}
}

// dbOfDSN returns the database a PostgreSQL URL names.
func dbOfDSN(t *testing.T, dsn string) string {
	t.Helper()
	rest := dsn[strings.LastIndexByte(dsn, '/')+1:]
	db, _, _ := strings.Cut(rest, "?")
	return db
}

func TestRun_PostgresSourceServerCrashMidStreamLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	srcDSN, err := srv.CreateDatabase(ctx, "shop_src")
	if err != nil {
		t.Fatal(err)
	}
	m, err := shop.Open(ctx, srcDSN, testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	start(t, parseConfig(t, shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})))
	w := &shop.Workload{Src: m.Src, Seed: 41}
	if err := w.History(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx, 150, 0); err != nil {
		t.Fatal(err)
	}
	// A power-loss-like crash (immediate stop) and restart of the source:
	// capture reconnects with backoff and resumes from the slot.
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	m.Src.Reset() // drop the pool's dead connections
	if err := w.Run(ctx, w.Ops.Load()+150, 0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)
}
