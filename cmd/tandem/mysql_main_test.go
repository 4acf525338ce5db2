package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestRun_MariaDBKillNineAndRestartLosesAndDoublesNothing is the crash test
// of the binlog path: the position lives in the target, saved only once the
// changes before it are applied, so a kill at any moment replays, never skips.
func TestRun_MariaDBKillNineAndRestartLosesAndDoublesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srcDSN, tgtDSN, src, tgt, srcDB := openCart(ctx, t)
	cfgPath := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(cart.Config(cart.ConfigOptions{SourceDB: srcDB, ServerID: 4343})), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"TANDEM_SOURCE_DSN=" + srcDSN, "TANDEM_TARGET_DSN=" + tgtDSN}
	out := &testenv.SyncBuffer{}
	applied := func() (int64, error) {
		var n int64
		err := tgt.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM tandem.kafka_offsets`).Scan(&n)
		if err != nil && strings.Contains(err.Error(), "does not exist") {
			return 0, nil
		}
		return n, err
	}
	waitMoreApplied := func(more int64) {
		t.Helper()
		base := must(applied())
		testenv.WaitFor(t, fmt.Sprintf("%d more records applied", more), 60*time.Second, func() (bool, error) {
			n, err := applied()
			return n >= base+more || (base > 0 && n < base), err // a fresh embedded broker restarts offsets at 0
		})
	}

	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	errc := make(chan error, 2)
	workloads := []*cart.Workload{{DB: src, Seed: 100}, {DB: src, Seed: 101, Base: 1_000_000}}
	written := func() int64 { return workloads[0].Ops.Load() + workloads[1].Ops.Load() }
	kills := []func(p *process) (afterKill func()){
		func(p *process) func() {
			testenv.WaitFor(t, "binlog streaming started", 30*time.Second, func() (bool, error) {
				return strings.Contains(p.out.String(), "streaming the binlog"), nil
			})
			for _, w := range workloads {
				go func() { errc <- w.Run(wctx, 0, 150) }()
			}
			testenv.WaitFor(t, "the first writes", 30*time.Second, func() (bool, error) { return written() >= 20, nil })
			return nil
		},
		func(p *process) func() { waitMoreApplied(50); return nil },
		// Apply stalled (a target table locked) while capture goes on. One
		// table: every cart change writes carts_v2, and a lock of two
		// tables, taken one after the other, can deadlock with a batch
		// that writes them in the other order (seen in CI).
		func(p *process) func() {
			waitMoreApplied(50)
			lock, err := tgt.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lock.Exec(ctx, `LOCK TABLE carts_v2 IN ACCESS EXCLUSIVE MODE`); err != nil {
				t.Fatal(err)
			}
			base := written()
			testenv.WaitFor(t, "writes while apply is stalled", 60*time.Second, func() (bool, error) { return written() >= base+300, nil })
			return func() { _ = lock.Rollback(context.Background()) }
		},
		func(p *process) func() { waitMoreApplied(200); return nil },
	}
	for i, waitPoint := range kills {
		p := startTandem(t, cfgPath, env, out)
		afterKill := waitPoint(p)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = p.cmd.Wait()
		if afterKill != nil {
			afterKill()
		}
		t.Logf("kill %d done; %d operations written", i+1, written())
	}

	p := startTandem(t, cfgPath, env, out)
	waitMoreApplied(50)
	stopWriters()
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	var want, got *cart.Rows
	read := cart.PostgresReader(tgt)
	if _, err := poll.Until(ctx, 50*time.Millisecond, 90*time.Second, func() (bool, error) {
		var err error
		if want, err = cart.Expected(ctx, src); err != nil {
			return false, err
		}
		if got, err = read(ctx); err != nil {
			return false, err
		}
		return cmp.Equal(want, got), nil
	}); err != nil {
		t.Fatalf("target did not converge: %v (-want +got):\n%s\n--- tandem output ---\n%s", err, cmp.Diff(want, got), out.String())
	}
	if len(got.Carts) < 100 {
		t.Errorf("only %d carts: the test proved little", len(got.Carts))
	}
	// The saved position caught up with the source's last transaction.
	testenv.WaitFor(t, "the saved binlog position to reach the last write", 30*time.Second, func() (bool, error) {
		var gtid, saved string
		if err := src.QueryRowContext(ctx, `SELECT @@GLOBAL.gtid_binlog_pos`).Scan(&gtid); err != nil {
			return false, err
		}
		err := tgt.QueryRow(ctx, `SELECT position FROM tandem.source_positions WHERE source = 'mysql:cart'`).Scan(&saved)
		return strings.HasSuffix(saved, "gtid="+gtid), err
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("tandem after SIGTERM: %v (want exit 0)\n%s", err, out.String())
	}
	if strings.Contains(out.String(), testenv.Password) {
		t.Errorf("the DSN password appears in tandem's output")
	}
}

// openCart creates the cart migration's tables in a fresh MariaDB database
// (the source) and a fresh PostgreSQL one (the target), and returns both,
// connections to each, closed when t ends, and the source database's name.
func openCart(ctx context.Context, t *testing.T) (srcDSN, tgtDSN string, src *sql.DB, tgt *pgx.Conn, srcDB string) {
	t.Helper()
	srcDSN, tgtDSN = testenv.NewMariaDBDatabase(t), testenv.NewDatabase(t)
	src, err := mysqlurl.Open(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.ExecContext(ctx, cart.SourceDDL); err != nil {
		t.Fatal(err)
	}
	tgt, err = pgx.Connect(ctx, tgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close(context.Background()) })
	for _, stmt := range cart.TargetDDL("postgres") {
		if _, err := tgt.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := mysqlurl.Parse(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	return srcDSN, tgtDSN, src, tgt, cfg.DBName
}
