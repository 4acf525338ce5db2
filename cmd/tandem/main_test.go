package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(tandemtest.Main(m)) }

func TestBadInput_ClearErrorExit2NothingWritten(t *testing.T) {
	ctx := context.Background()
	m, _ := tandemtest.OpenShop(ctx, t)
	good := shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})
	// A wrong password is a config error; an unreachable server is waited
	// for (chaos.TestTargetDown_TwentySecondsPausesThenResumesLosingNothing).
	wrongPassword := strings.Replace(m.SrcDSN, testenv.Password, "not-the-password", 1)
	tests := []struct {
		name   string
		config string
		want   []string // substrings of stderr
	}{
		{"unknown key", strings.Replace(good, "  topic_prefix: shop", "  topic_prefix: shop\n  partitons: 3", 1),
			[]string{"tandem.yaml:11:3", "partitons", "unknown key"}},
		{"bad dsn", strings.Replace(good, fmt.Sprintf("%q", m.SrcDSN), fmt.Sprintf("%q", wrongPassword), 1),
			[]string{"source: cannot connect"}},
		{"malformed dsn", strings.Replace(good, fmt.Sprintf("%q", m.SrcDSN), `"postgres://tandem:`+testenv.Password+`@127.0.0.1:notaport/shop"`, 1),
			// What is wrong (the port), in which value (shown with its
			// password masked) and which key to fix.
			[]string{"source: ", "postgres://tandem:xxxxx@127.0.0.1:notaport/shop", "invalid port", "check source.dsn"}},
		{"missing source table", strings.Replace(good, "tables: [shop.customers, shop.orders]", "tables: [shop.customers, shop.orders, shop.refunds]", 1),
			[]string{"source table shop.refunds: does not exist"}},
		{"missing target table", strings.Replace(good, "table: public.payments", "table: public.payment", 1),
			[]string{"target table public.payment: does not exist"}},
		{"expression does not compile", strings.Replace(good, "int(decimal_round(decimal_mul(row.total, 100), 0))", "int(decimal_round(decimal_mul(row.total, 100), ))", 1),
			[]string{"tandem.yaml:", "mappings[1].to[0].columns.total_cents", "Syntax error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tandem.yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"run", "-c", path}, &stdout, &stderr)
			msg := strings.ReplaceAll(stderr.String(), path, "tandem.yaml")
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg+stdout.String(), testenv.Password) {
				t.Errorf("the DSN password appears in the output:\n%s", msg)
			}
			assertNothingWritten(t, ctx, m)
		})
	}
}

// assertNothingWritten checks that no slot, publication or tandem state exists.
func assertNothingWritten(t *testing.T, ctx context.Context, m *shop.Migration) {
	t.Helper()
	var slots, pubs, schemas, rows int
	if err := m.Src.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()), (SELECT count(*) FROM pg_publication)`).Scan(&slots, &pubs); err != nil {
		t.Fatal(err)
	}
	if err := m.Tgt.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'),
	(SELECT count(*) FROM public.customers) + (SELECT count(*) FROM public.orders) + (SELECT count(*) FROM public.payments)`).Scan(&schemas, &rows); err != nil {
		t.Fatal(err)
	}
	if slots+pubs+schemas+rows != 0 {
		t.Errorf("something was written: %d slots, %d publications in the source; %d tandem schemas, %d rows in the target", slots, pubs, schemas, rows)
	}
}

func TestCheck_ReportsEachProblemWithItsFixAndExits1(t *testing.T) {
	ctx := context.Background()
	// A server that is not set up for logical replication.
	srv, err := testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{Settings: map[string]string{"wal_level": "replica"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srcDSN, err := srv.CreateDatabase(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	m, err := shop.Open(ctx, srcDSN, testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Src.Exec(ctx, `ALTER TABLE shop.customers DROP CONSTRAINT customers_pkey`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tgt.Exec(ctx, `ALTER TABLE public.payments DROP CONSTRAINT payments_pkey; ALTER TABLE public.orders DROP COLUMN status`); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(path, []byte(shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"check", "-c", path}, &stdout, &stderr)
	if code != exitFailed {
		t.Errorf("exit code %d, want %d\n%s%s", code, exitFailed, stdout.String(), stderr.String())
	}
	want := []string{
		`FAIL  source: wal_level is "replica", logical replication needs "logical"`,
		`      fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL`,
		`FAIL  source table shop.customers: has no primary key, so its changes carry no key`,
		`      fix: ALTER TABLE "shop"."customers" ADD PRIMARY KEY (...);`,
		`FAIL  target column public.orders.status: does not exist`,
		`FAIL  target table public.payments: has no primary key or unique index on the mapping key (order_id), which upserts need`,
		`      fix: CREATE UNIQUE INDEX ON "public"."payments" ("order_id");`,
		`failed: 4 problem(s), 0 warning(s)`,
	}
	out := stdout.String()
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("check output lacks line %q; output:\n%s", w, out)
		}
	}
	assertNothingWritten(t, ctx, m)
}

func TestSlotDrop_RemovesSlotAndPublicationButNotWhileStreaming(t *testing.T) {
	ctx := context.Background()
	m, _ := tandemtest.OpenShop(ctx, t)
	var db string
	if err := m.Src.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	slot := strings.ToLower(db)
	if _, err := m.Src.Exec(ctx, `CREATE PUBLICATION `+slot+` FOR TABLE shop.orders`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(path, []byte(shop.Config(shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN})), 0o600); err != nil {
		t.Fatal(err)
	}
	drop := func() (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"slot", "drop", "-c", path}, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	exists := func() (slots, pubs int) {
		if err := m.Src.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1), (SELECT count(*) FROM pg_publication WHERE pubname = $1)`, slot).Scan(&slots, &pubs); err != nil {
			t.Fatal(err)
		}
		return slots, pubs
	}

	// While a client streams from the slot, drop refuses and changes nothing.
	recv := exec.Command(filepath.Join(testenv.BinDir(), "pg_recvlogical"), "-d", m.SrcDSN, "--slot", slot, "--start",
		"-o", "proto_version=1", "-o", "publication_names="+slot, "-f", "/dev/null")
	if err := recv.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "pg_recvlogical streaming", 30*time.Second, func() (bool, error) {
		var active bool
		err := m.Src.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		return active, err
	})
	code, _, stderr := drop()
	if code != exitFailed || !strings.Contains(stderr, "stop tandem's capture first") {
		t.Errorf("drop while streaming: exit %d, stderr %q; want exit 1 saying to stop the capture", code, stderr)
	}
	if s, p := exists(); s != 1 || p != 1 {
		t.Errorf("after a refused drop: %d slots, %d publications, want 1 and 1", s, p)
	}
	_ = recv.Process.Kill()
	_ = recv.Wait()
	testenv.WaitFor(t, "the slot released", 30*time.Second, func() (bool, error) {
		var active bool
		err := m.Src.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		return !active, err
	})

	code, stdout, stderr := drop()
	want := "dropped replication slot " + slot + "\ndropped publication " + slot + "\n"
	if code != exitOK || stdout != want {
		t.Errorf("drop: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, stdout, stderr, want)
	}
	if s, p := exists(); s != 0 || p != 0 {
		t.Errorf("after drop: %d slots, %d publications, want none", s, p)
	}
	if code, stdout, _ := drop(); code != exitOK || !strings.Contains(stdout, "nothing to drop") {
		t.Errorf("second drop: exit %d, stdout %q; want exit 0, nothing to drop", code, stdout)
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != exitOK || !strings.HasPrefix(stdout.String(), "tandem ") {
		t.Errorf("version: exit %d, %q", code, stdout.String())
	}
}

func TestCheck_TargetKeyFromANonKeyColumnNeedsFullBeforeImages(t *testing.T) {
	ctx := context.Background()
	m, slot := tandemtest.OpenShop(ctx, t)
	// payments keyed by a column a delete does not carry under REPLICA IDENTITY
	// DEFAULT.
	opts := shop.ConfigOptions{Slot: slot, SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}
	config := strings.Replace(shop.Config(opts), "order_id: row.id", "order_id: row.customer_id", 1)
	path := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func() (int, string) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"check", "-c", path}, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	code, out := check()
	want := `FAIL  source table shop.orders: a mapping computes its target key from customer_id, which its deletes do not carry (they carry id)
      fix: ALTER TABLE "shop"."orders" REPLICA IDENTITY FULL; or compute the target key from the primary key
failed: 1 problem(s), 0 warning(s)
`
	if code != exitFailed || out != want {
		t.Errorf("check: exit %d\n%s\nwant exit 1 and\n%s", code, out, want)
	}
	if _, err := m.Src.Exec(ctx, `ALTER TABLE shop.orders REPLICA IDENTITY FULL`); err != nil {
		t.Fatal(err)
	}
	if code, out := check(); code != exitOK {
		t.Errorf("check after REPLICA IDENTITY FULL: exit %d\n%s", code, out)
	}
}
