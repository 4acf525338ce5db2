package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// TestRun_WaitsForUnreachableBrokersInsteadOfExiting starts the roles
// while their Kafka broker cannot be reached (its port closes every
// connection): Run waits, /readyz failing with what it waits for,
// tandem_waiting_for_brokers at 1 and one log line for the one cause, and
// streams once the broker can be reached, converging exactly.
func TestRun_WaitsForUnreachableBrokersInsteadOfExiting(t *testing.T) {
	m := newMigration(t)
	cluster := externalKafka(t)
	proxy := testenv.NewFaultProxy(t, cluster.ListenAddrs()[0])
	proxy.Refuse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN,
		Brokers: []string{proxy.Addr()}, Listen: listen}))
	logs := &testenv.SyncBuffer{}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan error, 1)
	go func() {
		exited <- app.Run(ctx, cfg, app.Options{Roles: app.Roles{Capture: true, Apply: true}, Registry: reg,
			Logger: slog.New(slog.NewTextHandler(io.MultiWriter(logs, apptest.LogWriter{TB: t}), nil))})
	}()
	running := func() error {
		select {
		case err := <-exited:
			return fmt.Errorf("Run ended while the broker was unreachable: %v", err)
		default:
			return nil
		}
	}
	client := &http.Client{Timeout: time.Second}
	readyz := func() (int, string) {
		resp, err := client.Get("http://" + listen + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	testenv.WaitFor(t, "three refused checks, not ready, waiting", time.Minute, func() (bool, error) {
		code, body := readyz()
		v, _ := metricValue(t, reg, "tandem_waiting_for_brokers", nil)
		return proxy.Refused() >= 3 && code == http.StatusServiceUnavailable && strings.Contains(body, "waiting to start") && v == 1, running()
	})
	if n := strings.Count(logs.String(), "waiting to start: cannot reach the kafka brokers"); n != 1 {
		t.Errorf("%d log lines for %d refused checks of one cause, want 1:\n%s", n, proxy.Refused(), logs.String())
	}
	if !strings.Contains(logLine(logs.String(), "waiting to start"), proxy.Addr()) {
		t.Errorf("the wait's log line does not name the broker %s:\n%s", proxy.Addr(), logs.String())
	}

	proxy.Forward()
	testenv.WaitFor(t, "ready once the broker can be reached", time.Minute, func() (bool, error) {
		code, _ := readyz()
		return code == http.StatusOK, running()
	})
	if v, _ := metricValue(t, reg, "tandem_waiting_for_brokers", nil); v != 0 {
		t.Errorf("tandem_waiting_for_brokers = %v once started, want 0", v)
	}
	w := &shop.Workload{Src: m.Src, Seed: 30}
	if err := w.History(ctx, 40); err != nil {
		t.Fatal(err)
	}
	if got := waitConverged(t, m, time.Minute); got.Count() < 40 {
		t.Errorf("only %d rows in the target", got.Count())
	}
	cancel()
	if err := <-exited; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
}
