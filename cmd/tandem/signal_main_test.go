package main

import (
	"context"
	"errors"
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

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestBackfill_HangupIsIgnoredAndInterruptExits130SayingWhereTheNextRunResumes
// sends a backfill process SIGHUP, which it logs and survives, then
// SIGINT: it exits 130 (not 0, the copy is not done), logging the rows
// copied and the tables left, and the next run resumes after exactly those
// rows.
func TestBackfill_HangupIsIgnoredAndInterruptExits130SayingWhereTheNextRunResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, slot := tandemtest.OpenShop(ctx, t)
	w := &shop.Workload{Src: m.Src, Seed: 92}
	if err := w.History(ctx, 500); err != nil { // 500 customers + 1500 orders
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "tandem.yaml")
	writeCfg := func(rate int) {
		cfg := shop.Config(shop.ConfigOptions{Slot: slot}) + fmt.Sprintf("backfill:\n  chunk_rows: 50\n  parallel: 1\n  max_rows_per_second: %d\n", rate)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(500)
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
	exited := make(chan error, 1)
	go func() { exited <- first.Wait() }()
	testenv.WaitFor(t, "the first rows copied", 30*time.Second, func() (bool, error) { return durable() >= 100, nil })
	if err := first.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "SIGHUP logged", 10*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("tandem exited on SIGHUP: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "SIGHUP received and ignored"), nil
	})
	if err := first.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := <-exited; !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("interrupted backfill ended with %v, want exit status 130\n%s", err, out.String())
	}
	stopped := regexp.MustCompile(`backfill interrupted; the next run resumes after the rows copied"? rows_copied=(\d+) tables_left="?\[([^\]]*)\]`).FindStringSubmatch(out.String())
	if stopped == nil {
		t.Fatalf("no log line says where the backfill stopped:\n%s", out.String())
	}
	copied, _ := strconv.ParseInt(stopped[1], 10, 64)
	if copied == 0 || copied >= 2000 || copied != durable() {
		t.Errorf("the interrupted run says it stopped after %d rows; the target holds the progress of %d of 2000", copied, durable())
	}
	if stopped[2] == "" {
		t.Errorf("the interrupted run names no table left to copy:\n%s", out.String())
	}

	writeCfg(0) // the rest unthrottled
	out2 := &testenv.SyncBuffer{}
	second := exec.CommandContext(ctx, tandemtest.Binary(), "backfill", "-c", cfgPath)
	second.Env, second.Stdout, second.Stderr = env, out2, out2
	if err := second.Run(); err != nil {
		t.Fatalf("second backfill: %v\n%s", err, out2.String())
	}
	got := regexp.MustCompile(`backfill done: (\d+) rows of 2 tables.*; (\d+) rows copied by this run`).FindStringSubmatch(out2.String())
	if got == nil {
		t.Fatalf("the second run did not finish the copy:\n%s", out2.String())
	}
	if diff := cmp.Diff([]string{"2000", strconv.FormatInt(2000-copied, 10)}, got[1:]); diff != "" {
		t.Errorf("the second run did not resume after the %d rows the first said it copied (-want +got):\n%s\n%s", copied, diff, out2.String())
	}
}
