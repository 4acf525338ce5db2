package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// A SIGTERM while a batch waits on the target gives the batch
// shutdown_timeout to commit, then gives it up and exits 0 (the batch is
// rolled back, to be applied on the next start).
func TestRun_SIGTERMDrainsWithinShutdownTimeoutThenExits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, slot := tandemtest.OpenShop(ctx, t)
	const grace = 2 * time.Second
	cfgPath := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(shop.Config(shop.ConfigOptions{Slot: slot})+"shutdown_timeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &testenv.SyncBuffer{}
	p := tandemtest.Start(t, cfgPath, []string{"TANDEM_SOURCE_DSN=" + m.SrcDSN, "TANDEM_TARGET_DSN=" + m.TgtDSN}, out)
	defer func() { _ = p.Cmd.Process.Kill() }()
	testenv.WaitFor(t, "replication started", 30*time.Second, func() (bool, error) {
		return strings.Contains(out.String(), "streaming from replication slot"), nil
	})

	// Hold the target's customers table so the next batch waits in the target.
	lock, err := m.Tgt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(context.Background()) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE public.customers IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.customers (name, email) VALUES ('held', 'held@example.com')`); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a batch waiting on the lock", 30*time.Second, func() (bool, error) {
		var n int
		err := m.Tgt.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
		return n > 0, err
	})

	sent := time.Now()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.Cmd.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(sent)
		if err != nil {
			t.Errorf("tandem after SIGTERM: %v, want exit 0\n%s", err, out.String())
		}
		if took < grace {
			t.Errorf("tandem exited %v after SIGTERM, before shutdown_timeout (%v): it did not wait for the batch in hand\n%s", took, grace, out.String())
		}
		if !strings.Contains(out.String(), "shutdown_timeout passed") {
			t.Errorf("no warning that shutdown_timeout passed:\n%s", out.String())
		}
	case <-time.After(grace + 15*time.Second):
		t.Fatalf("tandem still running %v after SIGTERM with shutdown_timeout %v\n%s", grace+15*time.Second, grace, out.String())
	}
}
