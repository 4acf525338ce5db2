package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestBackfill_KillNineMidwayAndRunAgainResumesAndConverges kills the real
// binary in the middle of a backfill: the second run goes on from the last
// applied chunk, and with the stream the target ends equal to the source.
func TestBackfill_KillNineMidwayAndRunAgainResumesAndConverges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m, slot := tandemtest.OpenShop(ctx, t)
	w := &shop.Workload{Src: m.Src, Seed: 91}
	if err := w.History(ctx, 1500); err != nil { // 1500 customers + 4500 orders
		t.Fatal(err)
	}
	cfg := shop.Config(shop.ConfigOptions{Slot: slot}) + "backfill:\n  chunk_rows: 100\n  parallel: 2\n  max_rows_per_second: 1500\n"
	cfgPath := filepath.Join(t.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "TANDEM_SOURCE_DSN="+m.SrcDSN, "TANDEM_TARGET_DSN="+m.TgtDSN)
	durable := func() int64 {
		var n int64
		if err := m.Tgt.QueryRow(ctx, `SELECT coalesce(sum(rows), 0) FROM tandem.backfills`).Scan(&n); err != nil {
			return 0 // not created yet
		}
		return n
	}

	out := &testenv.SyncBuffer{}
	first := exec.Command(tandemtest.Binary(), "backfill", "-c", cfgPath)
	first.Env, first.Stdout, first.Stderr = env, out, out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "1000 rows copied and applied", time.Minute, func() (bool, error) { return durable() >= 1000, nil })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	killedAt := durable()
	if killedAt >= 6000 {
		t.Fatalf("the backfill finished (%d rows) before it was killed: the test proved nothing", killedAt)
	}

	out2 := &testenv.SyncBuffer{}
	second := exec.CommandContext(ctx, tandemtest.Binary(), "backfill", "-c", cfgPath)
	second.Env, second.Stdout, second.Stderr = env, out2, out2
	if err := second.Run(); err != nil {
		t.Fatalf("second backfill: %v\n%s", err, out2.String())
	}
	// The second run copies what the first had not saved, not everything
	// again: the rows of the chunks it wrote are the rows left after the
	// progress it logs resuming after.
	resumedAfter := int64(0)
	for _, m := range regexp.MustCompile(`backfill: resuming.* rows=(\d+)`).FindAllStringSubmatch(out2.String(), -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		resumedAfter += n
	}
	if resumedAfter == 0 || !strings.Contains(out2.String(), "backfill done: 6000 rows of 2 tables") ||
		!strings.Contains(out2.String(), fmt.Sprintf("; %d rows copied by this run", 6000-resumedAfter)) {
		t.Errorf("the second run did not resume to 6000 rows, copying the %d the first had not saved:\n%s", 6000-resumedAfter, out2.String())
	}

	// Run again, every table is done and nothing copied; with --restart
	// the saved progress is forgotten and every row copied again.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "; 2 tables already done; 0 rows copied by this run\n"},
		{[]string{"--restart"}, "; 0 tables already done; 6000 rows copied by this run\n"},
	} {
		again := exec.CommandContext(ctx, tandemtest.Binary(), append([]string{"backfill", "-c", cfgPath}, tc.args...)...)
		again.Env = env
		got, err := again.Output()
		if err != nil || !strings.Contains(string(got), tc.want) {
			t.Errorf("tandem backfill %s: %v; stdout %q, want it to end %q", strings.Join(tc.args, " "), err, got, tc.want)
		}
	}

	p := tandemtest.Start(t, cfgPath, env[len(os.Environ()):], &testenv.SyncBuffer{})
	defer func() {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		_ = p.Cmd.Wait()
	}()
	if _, err := m.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatalf("%v\n--- first run ---\n%s\n--- second run ---\n%s", err, out.String(), out2.String())
	}
	if strings.Contains(out.String()+out2.String(), testenv.Password) {
		t.Error("the DSN password appears in tandem's output")
	}
}
