package pipeline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/pipeline"
	"github.com/tandemcdc/tandem/internal/shop"
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

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// running is a pipeline.Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	addr   string
}

func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), reg: prometheus.NewRegistry()}
	ready := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() {
		r.done <- pipeline.Run(ctx, cfg, pipeline.Options{
			Roles: pipeline.Roles{Capture: true, Apply: true}, Logger: log, Registry: r.reg,
			Ready: func(addr string) { ready <- addr },
		})
	}()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		cancel()
		t.Fatalf("pipeline stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("pipeline not ready after 30s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("pipeline: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("pipeline did not stop within 30s of cancel")
	}
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

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
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}))
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
	err := pipeline.Run(context.Background(), cfg, pipeline.Options{Roles: pipeline.Roles{Capture: true}})
	if !errors.Is(err, pipeline.ErrEmbeddedNeedsRun) {
		t.Fatalf("Run(capture only, embedded broker) = %v, want ErrEmbeddedNeedsRun", err)
	}
}
