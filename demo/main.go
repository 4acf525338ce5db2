// Command demo runs a real migration on throwaway local databases: it starts
// two PostgreSQL servers (the old shop and the new one) on loopback under
// .work/, creates the old and new schemas, starts `tandem run` with the
// embedded Kafka broker, writes history and a live workload of inserts,
// updates (primary key changes included) and deletes to the old schema, and
// prints what tandem captured and applied and a row-by-row comparison of
// the new schema with what the old rows should become.
//
// Run it with `make demo` (which builds bin/tandem first).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func main() {
	seconds := flag.Int("seconds", 6, "how long the live workload runs")
	rate := flag.Int("rate", 150, "operations per second per writer (3 writers)")
	keep := flag.Bool("keep", false, "leave servers and tandem running until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, time.Duration(*seconds)*time.Second, *rate, *keep); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

func run(ctx context.Context, workload time.Duration, rate int, keep bool) error {
	d := &demo{}
	defer d.close()
	if err := d.setUp(ctx); err != nil {
		return err
	}
	step("tandem check -c %s", rel(d.root, d.cfgPath))
	if err := d.tandem(ctx, &prefixed{p: "    "}, &prefixed{p: "    "}, "check"); err != nil {
		return fmt.Errorf("tandem check: %w", err)
	}
	step("writing history before tandem exists: 1000 customers with 3 orders each")
	w := &shop.Workload{Src: d.m.Src, Seed: uint64(time.Now().UnixNano())}
	if err := w.History(ctx, 1000); err != nil {
		return err
	}
	step("live workload for %s: 3 writers, %d ops/s each (inserts, updates, key changes, deletes), from now on", workload, rate)
	wctx, cancel := context.WithTimeout(ctx, workload)
	defer cancel()
	errc := make(chan error, 3)
	for i := range 3 {
		go func() {
			wk := &shop.Workload{Src: d.m.Src, Seed: w.Seed + uint64(i) + 1}
			err := wk.Run(wctx, 0, rate)
			w.Ops.Add(wk.Ops.Load())
			errc <- err
		}()
	}
	step("tandem backfill -c %s   (copies the history in chunks while the writers run; log: %s)", rel(d.root, d.cfgPath), rel(d.root, d.logPath))
	if err := d.tandem(ctx, &prefixed{p: "    "}, d.logFile, "backfill"); err != nil {
		return fmt.Errorf("tandem backfill: %w (see %s)", err, d.logPath)
	}
	step("tandem run -c %s   (the stream goes on from where the backfill's slot began; embedded Kafka broker)", rel(d.root, d.cfgPath))
	if err := d.startRun(ctx); err != nil {
		return err
	}
	if err := d.watch(errc); err != nil {
		return err
	}
	if err := d.verify(ctx, w.Ops.Load()); err != nil {
		return err
	}
	if keep {
		fmt.Println("\n-keep: servers and tandem keep running; Ctrl-C stops everything.")
		select {
		case <-ctx.Done():
		case err := <-d.exited:
			return fmt.Errorf("tandem exited: %v", err)
		}
	}
	step("stopping tandem and the servers")
	return nil
}

// demo is one run of the demo: the servers, the migration, the config and
// log files, the `tandem run` process, and what to close at the end.
type demo struct {
	root, bin, cfgPath, logPath string
	logFile                     *os.File
	env                         []string // the environment of tandem: the DSNs
	m                           *shop.Migration
	listen                      string // tandem's HTTP address
	exited                      chan error
	closers                     []func()
}

// close stops and closes what the demo started, last first.
func (d *demo) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// setUp starts the two servers, creates both schemas, and writes the
// config under .work/demo.
func (d *demo) setUp(ctx context.Context) error {
	var err error
	if d.root, err = testenv.ModuleRoot(); err != nil {
		return err
	}
	d.bin = filepath.Join(d.root, "bin", "tandem")
	if _, err := os.Stat(d.bin); err != nil {
		return fmt.Errorf("%s not built: run `make demo`", d.bin)
	}
	work := filepath.Join(d.root, ".work", "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	step("starting two throwaway PostgreSQL 15 servers on loopback (old shop, new shop)")
	var dsns [2]string
	var names [2]string
	for i := range dsns {
		srv, err := testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{})
		if err != nil {
			return err
		}
		d.closers = append(d.closers, func() { srv.Stop() })
		if dsns[i], err = srv.CreateDatabase(ctx, "shop"); err != nil {
			return err
		}
		names[i] = srv.String()
	}
	fmt.Printf("    old: %s\n    new: %s\n", names[0], names[1])
	step("creating the old schema (shop.customers, shop.orders with payment columns) and the new one (customers, orders, payments)")
	if d.m, err = shop.Open(ctx, dsns[0], dsns[1], true); err != nil {
		return err
	}
	d.closers = append(d.closers, d.m.Close)
	if d.listen, err = freeAddr(); err != nil {
		return err
	}
	d.cfgPath = filepath.Join(work, "tandem.yaml")
	if err := os.WriteFile(d.cfgPath, []byte(shop.Config(shop.ConfigOptions{Listen: d.listen})), 0o644); err != nil {
		return err
	}
	d.logPath = filepath.Join(work, "tandem.log")
	if d.logFile, err = os.Create(d.logPath); err != nil {
		return err
	}
	d.closers = append(d.closers, func() { d.logFile.Close() })
	d.env = append(os.Environ(), "TANDEM_SOURCE_DSN="+dsns[0], "TANDEM_TARGET_DSN="+dsns[1])
	return nil
}

// tandem runs `tandem <verb> -c tandem.yaml` to its end.
func (d *demo) tandem(ctx context.Context, stdout, stderr io.Writer, verb ...string) error {
	cmd := exec.CommandContext(ctx, d.bin, append(verb, "-c", d.cfgPath)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = d.env, stdout, stderr
	return cmd.Run()
}

// startRun starts `tandem run` and waits until it is ready; close stops it
// with SIGTERM (SIGKILL after 15 s).
func (d *demo) startRun(ctx context.Context) error {
	cmd := exec.Command(d.bin, "run", "-c", d.cfgPath)
	cmd.Env, cmd.Stdout, cmd.Stderr = d.env, d.logFile, d.logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- cmd.Wait() }()
	d.closers = append(d.closers, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	if err := waitReady(ctx, "http://"+d.listen+"/readyz", d.exited); err != nil {
		return fmt.Errorf("%w (see %s)", err, d.logPath)
	}
	fmt.Printf("    ready; metrics at %s\n", d.metricsURL())
	return nil
}

func (d *demo) metricsURL() string { return "http://" + d.listen + "/metrics" }

// watch prints what tandem captured and applied every second until the
// three writers (errc) are done.
func (d *demo) watch(errc <-chan error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for running := 3; running > 0; {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
			running--
		case <-tick.C:
			s := scrape(d.metricsURL())
			fmt.Printf("    captured %6.0f  applied %6.0f  replication lag %.3fs\n", s.captured, s.applied, s.lag)
		case err := <-d.exited:
			return fmt.Errorf("tandem exited: %v (see %s)", err, d.logPath)
		}
	}
	return nil
}

// verify waits until the new schema holds what the old one does, row by
// row, has tandem reconcile say the same, and prints the summary.
func (d *demo) verify(ctx context.Context, ops int64) error {
	step("waiting for the new schema to catch up")
	start := time.Now()
	got, err := d.m.WaitConverged(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	step("tandem reconcile --once -c %s   (the same comparison by tandem: source rows through the mappings vs the target)", rel(d.root, d.cfgPath))
	if err := d.tandem(ctx, &prefixed{p: "    "}, d.logFile, "reconcile", "--once"); err != nil {
		return fmt.Errorf("tandem reconcile --once: %w (see %s)", err, d.logPath)
	}
	s := scrape(d.metricsURL())
	fmt.Printf(`
Summary
  source operations written   %d (history, copied by backfill, + live, streamed)
  changes captured            %.0f  (tandem_capture_events_total)
  target row writes applied   %.0f  (tandem_apply_rows_total: one order feeds orders and payments)
  replication lag now         %.3fs (tandem_replication_lag_seconds); caught up %s after the workload stopped
  comparison, row by row      customers %d, orders %d, payments %d rows: 0 differences
  metrics                     %s
`, ops, s.captured, s.applied, s.lag, time.Since(start).Round(time.Millisecond),
		len(got.Customers), len(got.Orders), len(got.Payments), d.metricsURL())
	return nil
}

// prefixed writes to stdout with p at the start of every line, whatever
// pieces the lines come in.
type prefixed struct {
	p   string
	mid bool // the last write ended inside a line
}

func (w *prefixed) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if !w.mid {
			fmt.Print(w.p)
		}
		fmt.Print(line)
		w.mid = !strings.HasSuffix(line, "\n")
	}
	return len(b), nil
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitReady(ctx context.Context, url string, exited <-chan error) error {
	_, err := poll.Until(ctx, 100*time.Millisecond, 60*time.Second, func() (bool, error) {
		select {
		case err := <-exited:
			return false, fmt.Errorf("tandem exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(url)
		if err != nil {
			return false, nil // not listening yet
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if errors.Is(err, poll.ErrTimeout) {
		return errors.New("tandem not ready within 60s")
	}
	return err
}

type stats struct{ captured, applied, lag float64 }

// scrape reads the summary figures from tandem's /metrics.
func scrape(url string) stats {
	var s stats
	resp, err := http.Get(url)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return s
	}
	s.captured = sum(mfs["tandem_capture_events_total"])
	s.applied = sum(mfs["tandem_apply_rows_total"])
	if lags := values(mfs["tandem_replication_lag_seconds"]); len(lags) > 0 {
		s.lag = slices.Max(lags)
	}
	return s
}

func values(mf *dto.MetricFamily) []float64 {
	var out []float64
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			out = append(out, m.Counter.GetValue())
		case m.Gauge != nil:
			out = append(out, m.Gauge.GetValue())
		}
	}
	return out
}

func sum(mf *dto.MetricFamily) float64 {
	total := 0.0
	for _, v := range values(mf) {
		if !math.IsNaN(v) {
			total += v
		}
	}
	return total
}
