// Package apptest runs tandem's roles in-process (internal/app) for tests and
// benchmarks: start it from a config, wait until it is ready, read its
// metrics, stop it. Only _test.go files import it.
package apptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// ParseConfig parses a tandem.yaml with an empty environment, failing tb on error.
func ParseConfig(tb testing.TB, yaml string) *config.Config {
	tb.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		tb.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// Running is a app.Run in a goroutine.
type Running struct {
	Reg  *prometheus.Registry // the pipeline's metrics
	Addr string               // its HTTP address

	cancel context.CancelFunc
	exited chan struct{}
	err    error // Run's result, set before exited closes
}

// Start runs the roles of cfg, logging at level to tb, and returns once the
// pipeline is ready (/readyz answers 200: capture streams and every mapping
// has its partitions). It is stopped when tb ends.
func Start(tb testing.TB, cfg *config.Config, roles app.Roles, level slog.Level) *Running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Reg: prometheus.NewRegistry(), cancel: cancel, exited: make(chan struct{})}
	ready := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(LogWriter{tb}, &slog.HandlerOptions{Level: level}))
	go func() {
		defer close(r.exited)
		r.err = app.Run(ctx, cfg, app.Options{
			Roles: roles, Logger: log, Registry: r.Reg,
			Ready: func(addr string) { ready <- addr },
		})
	}()
	tb.Cleanup(func() { r.Stop(tb) })
	select {
	case r.Addr = <-ready:
	case <-r.exited:
		tb.Fatalf("pipeline stopped before it was ready: %v", r.err)
	case <-time.After(30 * time.Second):
		tb.Fatal("pipeline not ready after 30s")
	}
	client := &http.Client{Timeout: time.Second}
	testenv.WaitFor(tb, "the pipeline's /readyz to answer 200", 30*time.Second, func() (bool, error) {
		if err := r.Failed(); err != nil {
			return false, err
		}
		resp, err := client.Get("http://" + r.Addr + "/readyz")
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return r
}

// Failed returns Run's error once it has stopped, or nil while it runs.
func (r *Running) Failed() error {
	select {
	case <-r.exited:
		if r.err == nil {
			return errors.New("pipeline stopped")
		}
		return fmt.Errorf("pipeline stopped: %w", r.err)
	default:
		return nil
	}
}

// Stop cancels Run and waits for it; Run must return nil. Later calls do nothing.
func (r *Running) Stop(tb testing.TB) {
	tb.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case <-r.exited:
		if r.err != nil {
			tb.Errorf("pipeline: %v", r.err)
		}
	case <-time.After(30 * time.Second):
		tb.Error("pipeline did not stop within 30s of cancel")
	}
}

// LogWriter sends log lines to tb.Log.
type LogWriter struct{ TB testing.TB }

// Write implements io.Writer.
func (w LogWriter) Write(p []byte) (int, error) {
	w.TB.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Metric sums the counter or gauge samples of one metric family whose
// labels include labels (nil: all); ok is false when none match.
func Metric(g prometheus.Gatherer, name string, labels map[string]string) (sum float64, ok bool) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum, ok = sum+m.Counter.GetValue(), true
			case m.Gauge != nil:
				sum, ok = sum+m.Gauge.GetValue(), true
			}
		}
	}
	return sum, ok
}

// Series returns every counter or gauge sample of one metric family,
// keyed by its labels as "k=v,k=v" in name order ("" for none).
func Series(g prometheus.Gatherer, name string) map[string]float64 {
	out := map[string]float64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			slices.Sort(labels)
			switch key := strings.Join(labels, ","); {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

// Scraped is a running tandem's /metrics, read over HTTP as Prometheus
// would, as a Gatherer for Metric.
type Scraped string

// Gather implements prometheus.Gatherer: GET http://<addr>/metrics, parsed.
func (addr Scraped) Gather() ([]*dto.MetricFamily, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + string(addr) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	byName, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	return out, nil
}
