package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// failover is two `tandem capture` and one `tandem apply` of one
// migration, beside a Kafka broker in the test process.
type failover struct {
	cfgPath string
	env     []string
	out     map[string]*testenv.SyncBuffer // by name: active, standby, apply
	procs   map[string]*exec.Cmd
}

// newBroker starts an external Kafka broker (kfake) for the processes.
func newBroker(t *testing.T) []string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// start runs `tandem <role>` as name; it is stopped with SIGTERM (or
// already dead) when t ends.
func (f *failover) start(t *testing.T, name, role string) {
	t.Helper()
	out := &testenv.SyncBuffer{}
	cmd := exec.Command(tandemtest.Binary(), role, "-c", f.cfgPath)
	cmd.Env = append(os.Environ(), f.env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.out[name], f.procs[name] = out, cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("--- %s (tandem %s) output ---\n%s", name, role, out.String())
		}
	})
}

// waitLog waits until name's output contains s.
func (f *failover) waitLog(t *testing.T, name, s string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%s to log %q", name, s), 30*time.Second, func() (bool, error) {
		return strings.Contains(f.out[name].String(), s), nil
	})
}

// addr is where name serves /metrics and /readyz.
func (f *failover) addr(t *testing.T, name string) string {
	t.Helper()
	f.waitLog(t, name, `msg="http listening"`)
	return tandemtest.HTTPAddr(f.out[name].String())
}

// killActiveAndTakeOver checks that the standby neither reads nor
// produces while the active capture streams, kills the active one with
// SIGKILL, and returns how long the standby took to capture its first
// change after the kill (the writer keeps writing).
func (f *failover) killActiveAndTakeOver(t *testing.T) time.Duration {
	t.Helper()
	standby := f.addr(t, "standby")
	for _, m := range []string{"tandem_capture_events_total", "tandem_capture_streaming"} {
		if v, err := tandemtest.Metric(standby, m); err != nil || v != 0 {
			t.Fatalf("standby %s = %v (%v) while the active capture streams, want 0", m, v, err)
		}
	}
	if v, err := tandemtest.Metric(standby, "tandem_capture_standby"); err != nil || v != 1 {
		t.Errorf("standby tandem_capture_standby = %v (%v) while the active capture streams, want 1", v, err)
	}
	if code, _ := tandemtest.Readyz(standby); code != http.StatusOK { // standing by is its job: a rolling update may go on
		t.Errorf("standby /readyz = %d, want 200", code)
	}
	if err := f.procs["active"].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if _, err := poll.Until(context.Background(), 10*time.Millisecond, 30*time.Second, func() (bool, error) {
		v, err := tandemtest.Metric(standby, "tandem_capture_events_total")
		return v > 0, err
	}); err != nil {
		t.Fatalf("the standby captured nothing after the active capture was killed: %v", err)
	}
	took := time.Since(killed)
	f.waitLog(t, "standby", "took over the source")
	if code, _ := tandemtest.Readyz(standby); code != http.StatusOK {
		t.Errorf("standby /readyz after the takeover = %d, want 200", code)
	}
	for m, want := range map[string]float64{"tandem_capture_standby": 0, "tandem_capture_streaming": 1} {
		if v, err := tandemtest.Metric(standby, m); err != nil || v != want {
			t.Errorf("%s of the capture that took over = %v (%v), want %v", m, v, err, want)
		}
	}
	return took
}

func newFailover(t *testing.T, yaml string, env []string) *failover {
	t.Helper()
	f := &failover{cfgPath: filepath.Join(t.TempDir(), "tandem.yaml"), env: env,
		out: map[string]*testenv.SyncBuffer{}, procs: map[string]*exec.Cmd{}}
	if err := os.WriteFile(f.cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCapture_StandbyTakesOverWhenTheActiveIsKilledPostgres: the slot is
// the fence; the standby takes it once the killed capture's walsender
// releases it, and replays from the slot's confirmed position.
func TestCapture_StandbyTakesOverWhenTheActiveIsKilledPostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srcDSN := testenv.NewDatabase(t)
	m, err := shop.Open(ctx, srcDSN, testenv.NewDatabase(t), true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	slot := tandemtest.SlotName(srcDSN)
	t.Cleanup(func() { tandemtest.DropInactiveSlot(srcDSN, slot) })
	f := newFailover(t, shop.Config(shop.ConfigOptions{Brokers: newBroker(t), Slot: slot}),
		[]string{"TANDEM_SOURCE_DSN=" + m.SrcDSN, "TANDEM_TARGET_DSN=" + m.TgtDSN})

	f.start(t, "active", "capture")
	f.waitLog(t, "active", "streaming from replication slot")
	f.start(t, "standby", "capture")
	f.waitLog(t, "standby", "waiting as its standby")
	f.start(t, "apply", "apply")

	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	w := &shop.Workload{Src: m.Src, Seed: 19}
	errc := make(chan error, 1)
	go func() { errc <- w.Run(wctx, 0, 200) }()
	tandemtest.WaitApplied(t, ctx, m.Tgt, 50, time.Minute)

	took := f.killActiveAndTakeOver(t)
	t.Logf("PostgreSQL: the standby captured its first change %s after the active capture was killed", took.Round(time.Millisecond))
	tandemtest.WaitApplied(t, ctx, m.Tgt, 50, time.Minute)
	// Enough rows for the comparison to prove something (applied records
	// include updates and deletes).
	testenv.WaitFor(t, "the source to hold 120 rows", 60*time.Second, func() (bool, error) {
		var n int64
		err := m.Src.QueryRow(ctx, `SELECT (SELECT count(*) FROM shop.customers) + (SELECT count(*) FROM shop.orders)`).Scan(&n)
		return n >= 120, err
	})
	stopWriter()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got, err := m.WaitConverged(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Count() < 100 {
		t.Errorf("only %d target rows: the test proved little", got.Count())
	}
}

// TestCapture_StandbyTakesOverWhenTheActiveIsKilledMariaDB: a binlog has
// no slot; the capture lease (a named lock on the source server) is the
// fence, released by the server when the killed capture's session ends.
func TestCapture_StandbyTakesOverWhenTheActiveIsKilledMariaDB(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srcDSN, tgtDSN, src, tgt, srcDB := tandemtest.OpenCart(ctx, t)
	f := newFailover(t, cart.Config(cart.ConfigOptions{SourceDB: srcDB, ServerID: 4319, Brokers: newBroker(t)}),
		[]string{"TANDEM_SOURCE_DSN=" + srcDSN, "TANDEM_TARGET_DSN=" + tgtDSN})
	waitMoreApplied := func(more int64) { t.Helper(); tandemtest.WaitApplied(t, ctx, tgt, more, 30*time.Second) }

	f.start(t, "active", "capture")
	f.waitLog(t, "active", "streaming the binlog")
	f.start(t, "standby", "capture")
	f.waitLog(t, "standby", "waiting as its standby")
	f.start(t, "apply", "apply")

	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	w := &cart.Workload{DB: src, Seed: 19}
	errc := make(chan error, 1)
	go func() { errc <- w.Run(wctx, 0, 200) }()
	waitMoreApplied(50)

	took := f.killActiveAndTakeOver(t)
	t.Logf("MariaDB: the standby captured its first change %s after the active capture was killed", took.Round(time.Millisecond))
	waitMoreApplied(50)
	stopWriter()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var want, got *cart.Rows
	read := cart.PostgresReader(tgt)
	if _, err := poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		var err error
		if want, err = cart.Expected(ctx, src); err != nil {
			return false, err
		}
		if got, err = read(ctx); err != nil {
			return false, err
		}
		return cmp.Equal(want, got), nil
	}); err != nil {
		t.Fatalf("target did not converge: %v (-want +got):\n%s", err, cmp.Diff(want, got))
	}
}
