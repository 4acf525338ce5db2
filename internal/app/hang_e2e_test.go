package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestRun_AHungTargetPausesTheMappingAndFailsReadiness puts a path that
// hangs between a streaming pipeline and its target (open connections and
// new ones held, nothing forwarded) while a writer keeps writing: within
// target.write_timeout the write in flight is cancelled, the mapping shows
// paused, /readyz fails naming it, and the log names the target's address.
// Once the path forwards again and the stalled connections are reset, the
// target converges exactly with the source.
func TestRun_AHungTargetPausesTheMappingAndFailsReadiness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m := newMigration(t)
	tgt, err := url.Parse(m.TgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewFaultProxy(t, tgt.Host)
	tgt.Host = proxy.Addr()
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: tgt.String()}))
	const writeTimeout = 2 * time.Second
	cfg.Target.WriteTimeout = writeTimeout
	logs := &testenv.SyncBuffer{}
	r := apptest.StartLogged(t, cfg, app.Roles{Capture: true, Apply: true}, slog.LevelInfo, logs)

	w := &shop.Workload{Src: m.Src, Seed: 20}
	if err := w.History(ctx, 50); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, m, time.Minute)

	writing, stopWriting := context.WithCancel(ctx)
	written := make(chan error, 1)
	go func() { written <- (&shop.Workload{Src: m.Src, Seed: 21}).Run(writing, 0, 200) }()
	proxy.Blackhole()
	hung := time.Now()
	client := &http.Client{Timeout: time.Second}
	var readyz string
	testenv.WaitFor(t, "a paused mapping and /readyz failing", writeTimeout+20*time.Second, func() (bool, error) {
		if v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", nil); v < 1 {
			return false, r.Failed()
		}
		resp, err := client.Get("http://" + r.Addr + "/readyz")
		if err != nil {
			return false, nil
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		readyz = string(body)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(readyz, "paused"), nil
	})
	t.Logf("the hang showed after %s; /readyz: %s", time.Since(hung).Round(time.Millisecond), strings.TrimSpace(readyz))
	if line := logLine(logs.String(), "mapping paused"); !strings.Contains(line, proxy.Addr()) || !strings.Contains(line, "did not answer within 2s") {
		t.Errorf("the pause's log line does not name the target %s and the bound:\n%s", proxy.Addr(), logs.String())
	}
	if strings.Contains(logs.String(), testenv.Password) {
		t.Error("the log holds the target's password")
	}

	proxy.Forward()
	proxy.Reset()
	stopWriting()
	if err := <-written; err != nil && writing.Err() == nil {
		t.Fatal(err)
	}
	got := waitConverged(t, m, time.Minute)
	if got.Count() < 50 {
		t.Errorf("only %d rows in the target: too few to prove anything", got.Count())
	}
	testenv.WaitFor(t, "every mapping resumed and ready", 30*time.Second, func() (bool, error) {
		v, _ := metricValue(t, r.Reg, "tandem_mapping_paused", nil)
		resp, err := client.Get("http://" + r.Addr + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return v == 0 && resp.StatusCode == http.StatusOK, nil
	})
}

// logLine returns the first line of logs holding s ("" when none).
func logLine(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}
