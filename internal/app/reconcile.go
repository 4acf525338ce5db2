package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// ReconcileResult is one reconcile pass: the row comparison and the
// consistency checks.
type ReconcileResult struct {
	Report *reconcile.Report
	Checks []reconcile.CheckResult
	// Repaired counts the drifted rows a repair re-synced, by mapping.
	Repaired map[string]int
}

// Drift reports whether anything differs.
func (r *ReconcileResult) Drift() bool {
	for _, c := range r.Checks {
		if c.Differs() {
			return true
		}
	}
	return r.Report.Drift() > 0
}

// ReconcileOptions tune a reconcile pass.
type ReconcileOptions struct {
	Repair  bool                 // re-sync drifted rows, then compare again
	Metrics *reconcile.Metrics   // nil: unregistered
	Lag     func() time.Duration // the pipeline's replication lag, when it runs in this process
	Logger  *slog.Logger         //
	Settle  time.Duration        // 0: reconcile's default
}

// reconcileEnv is what a reconciler reads and writes with.
type reconcileEnv struct {
	rec      *reconcile.Reconciler
	src      connect.Reader
	mappings []*transform.Mapping
	srcQ     reconcile.Querier
	tgtQ     reconcile.Querier
	closers  []func()
}

func (e *reconcileEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// openReconcile connects a reconciler to the configured source and target.
func openReconcile(ctx context.Context, cfg *config.Config, opts ReconcileOptions) (*reconcileEnv, error) {
	env := &reconcileEnv{}
	ok := false
	defer func() {
		if !ok {
			env.close()
		}
	}()
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, func() { reader.Close() })
	env.src = reader
	tgt, err := connect.OpenTargetReadOnly(ctx, cfg)
	if err != nil {
		return nil, err
	}
	env.closers = append(env.closers, func() { tgt.Close() })
	if env.mappings, err = CompileMappings(cfg, transform.WithLookup(tgt)); err != nil {
		return nil, err
	}
	var closeQ func()
	if env.srcQ, closeQ, err = connect.OpenQuerier(ctx, cfg.Source.Kind, cfg.Source.DSN.Value()); err != nil {
		return nil, fmt.Errorf("reconcile: connect to the source: %w", err)
	}
	env.closers = append(env.closers, closeQ)
	if env.tgtQ, closeQ, err = connect.OpenQuerier(ctx, cfg.Target.Kind, cfg.Target.DSN.Value()); err != nil {
		return nil, fmt.Errorf("reconcile: connect to the target: %w", err)
	}
	env.closers = append(env.closers, closeQ)
	mappingTol, columnTol := map[string][]string{}, map[string]map[string][]string{}
	for _, m := range cfg.Mappings {
		mappingTol[m.Name] = m.Tolerate
		for _, ct := range m.TolerateColumns {
			if columnTol[m.Name] == nil {
				columnTol[m.Name] = map[string][]string{}
			}
			columnTol[m.Name][ct.Column] = ct.Rules
		}
	}
	env.rec = reconcile.New(reconcile.Config{
		ChunkRows: cfg.Reconcile.ChunkRows, MaxRowsPerSecond: max(0, float64(cfg.Reconcile.MaxRowsPerSecond)),
		Tolerate: cfg.Reconcile.Tolerate, MappingTolerate: mappingTol, ColumnTolerate: columnTol,
		Lag: opts.Lag, Settle: cmp.Or(opts.Settle, cfg.Reconcile.Settle),
	}, reconcileSource(env.src), tgt, env.mappings, opts.Metrics, opts.Logger)
	ok = true
	return env, nil
}

// Reconcile compares the source, mapped, with the target once, runs the
// consistency checks, and with Repair re-syncs the drifted rows and
// compares again.
func Reconcile(ctx context.Context, cfg *config.Config, opts ReconcileOptions) (*ReconcileResult, error) {
	env, err := openReconcile(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer env.close()
	res, err := env.pass(ctx, cfg)
	if err != nil || !opts.Repair || res.Report.Drift() == 0 {
		return res, err
	}
	repaired, err := env.repair(ctx, cfg, res.Report)
	if err != nil {
		return res, err
	}
	if res, err = env.pass(ctx, cfg); err != nil {
		return nil, err
	}
	res.Repaired = repaired
	return res, nil
}

// pass is one sweep and the checks.
func (e *reconcileEnv) pass(ctx context.Context, cfg *config.Config) (*ReconcileResult, error) {
	rep, err := e.rec.Sweep(ctx)
	if err != nil {
		return nil, err
	}
	checks := make([]reconcile.Check, len(cfg.Reconcile.Checks))
	for i, c := range cfg.Reconcile.Checks {
		checks[i] = reconcile.Check{Name: c.Name, Source: c.Source, Target: c.Target}
	}
	return &ReconcileResult{Report: rep, Checks: e.rec.RunChecks(ctx, checks, e.srcQ, e.tgtQ)}, nil
}

// repair re-syncs each drifted row: a missing or mismatched row from its
// source row, read under a shared lock (internal/resync), so it converges
// with the live stream; an extra row is deleted, and the pass after the
// repair finds it again if a source row produced it meanwhile.
func (e *reconcileEnv) repair(ctx context.Context, cfg *config.Config, rep *reconcile.Report) (map[string]int, error) {
	tgt, err := connect.OpenTarget(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer tgt.Close()
	out := map[string]int{}
	for i, mr := range rep.Mappings {
		m := e.mappings[i]
		var rows []resync.Row
		var extras []change.Write
		for _, d := range mr.Drifted {
			if d.Kind == reconcile.KindRoundTrip {
				continue // the mapping's inverse loses it: re-syncing cannot help
			}
			if d.SourceKey != nil {
				rows = append(rows, resync.Row{Key: d.SourceKey})
				continue
			}
			for _, o := range m.Outputs() {
				if o.Table == d.Table {
					extras = append(extras, change.Write{Table: d.Table, Op: change.WriteDelete, Key: o.Key, Row: d.Key})
					break
				}
			}
		}
		results, err := resync.Rows(ctx, e.src, m, tgt, rows, nil)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, r := range results {
			if r.Err != nil {
				errs = append(errs, r.Err)
				continue
			}
			out[m.Name]++
		}
		if len(extras) > 0 {
			if err := tgt.Apply(ctx, sink.Batch{Writes: extras}, sink.Checkpoint{}); err != nil {
				errs = append(errs, fmt.Errorf("delete extra rows of mapping %s: %w", m.Name, err))
			} else {
				out[m.Name] += len(extras)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return out, fmt.Errorf("repair mapping %s: %w", m.Name, err)
		}
	}
	return out, nil
}

// reconcileSource is the reconciler's source: one that summarises chunks
// on its server when its reader can (reconcile.ChunkHasher, PostgreSQL).
func reconcileSource(r connect.Reader) reconcile.Source {
	if h, ok := r.(reconcile.ChunkHasher); ok {
		return hashingSource{r, h}
	}
	return r
}

// hashingSource is a source whose reader summarises chunks.
type hashingSource struct {
	reconcile.Source
	reconcile.ChunkHasher
}

// maxLag returns the largest lag of the appliers.
func maxLag(appliers []*apply.Applier) func() time.Duration {
	return func() time.Duration {
		var lag time.Duration
		for _, a := range appliers {
			lag = max(lag, a.Lag())
		}
		return lag
	}
}

// applied is a batch of source rows the stream has just applied, for
// event-driven re-verification.
type applied struct {
	mapping string
	keys    []change.Row
}

// verifyPerBatch bounds the rows of one applied batch re-verified: a
// sample, so re-verification reads the source at a small fraction of the
// stream's rate.
const verifyPerBatch = 100

// verifyQueue holds applied batches until the reconciler re-verifies them;
// when it is full, batches are dropped (the next sweep still sees every
// row), so the stream never waits for reconcile.
type verifyQueue chan applied

func (q verifyQueue) add(mapping string, keys []change.Row) {
	if q == nil || len(keys) == 0 {
		return
	}
	if len(keys) > verifyPerBatch { // a sample, spread over the batch
		sample := make([]change.Row, verifyPerBatch)
		for i := range sample {
			sample[i] = keys[i*len(keys)/verifyPerBatch]
		}
		keys = sample
	}
	select {
	case q <- applied{mapping, keys}:
	default:
	}
}

// runReconcile sweeps every interval, the first time at once when now is
// set, until ctx ends; beside it, what verify brings is re-verified (its
// own connections, so a sweep's settling does not hold it back, nor it a
// sweep). A failed pass is logged and tried again at the next interval:
// tandem_reconcile_last_success goes stale, which the alert watches.
func runReconcile(ctx context.Context, cfg *config.Config, opts ReconcileOptions, now bool, verify verifyQueue) {
	log := opts.Logger
	if verify != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			runVerify(ctx, cfg, opts, verify)
		}()
	}
	t := time.NewTicker(cfg.Reconcile.Interval)
	defer t.Stop()
	env := &lazyReconcile{cfg: cfg, opts: opts}
	defer env.close()
	for {
		if !now {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		now = false
		e := env.get(ctx)
		if e == nil {
			continue
		}
		start := time.Now()
		res, err := e.pass(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			env.fail("reconcile", err)
		case res.Drift():
			var first []string
			for _, mr := range res.Report.Mappings {
				for _, d := range mr.Samples {
					if len(first) < 5 {
						first = append(first, fmt.Sprintf("%s %s %v %v", d.Kind, d.Table, d.Key, d.Columns))
					}
				}
			}
			log.Warn("reconcile found drift", "rows", res.Report.Drift(), "first", first, "took", time.Since(start).Round(time.Millisecond))
		default:
			log.Info("reconcile: no drift", "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// runVerify re-verifies applied rows as they come, until ctx ends.
func runVerify(ctx context.Context, cfg *config.Config, opts ReconcileOptions, verify verifyQueue) {
	env := &lazyReconcile{cfg: cfg, opts: opts}
	defer env.close()
	for {
		var batch applied
		select {
		case <-ctx.Done():
			return
		case batch = <-verify:
		}
		e := env.get(ctx)
		if e == nil {
			continue
		}
		drift, err := e.rec.Verify(ctx, batch.mapping, batch.keys)
		if err != nil {
			env.fail("re-verifying applied rows", err)
			continue
		}
		for _, d := range drift {
			opts.Logger.Warn("reconcile: a row the stream just applied differs from its source", "mapping", batch.mapping,
				"kind", d.Kind, "table", d.Table, "key", d.Key, "columns", d.Columns)
		}
	}
}

// lazyReconcile opens a reconciler's connections when first needed, and
// again after a failure.
type lazyReconcile struct {
	cfg  *config.Config
	opts ReconcileOptions
	env  *reconcileEnv
}

func (l *lazyReconcile) get(ctx context.Context) *reconcileEnv {
	if l.env == nil {
		env, err := openReconcile(ctx, l.cfg, l.opts)
		if err != nil {
			if ctx.Err() == nil {
				l.opts.Logger.Warn("reconcile cannot start; trying again later", "err", err)
			}
			return nil
		}
		l.env = env
	}
	return l.env
}

func (l *lazyReconcile) fail(what string, err error) {
	if !errors.Is(err, context.Canceled) {
		l.opts.Logger.Warn(what+" failed; trying again later", "err", err)
	}
	l.close()
}

func (l *lazyReconcile) close() {
	if l.env != nil {
		l.env.close()
		l.env = nil
	}
}

// ServeReconcile compares every reconcile.interval, the first time at once,
// serving /metrics on http.listen, until ctx ends: `tandem reconcile`
// beside a capture and apply run elsewhere.
func ServeReconcile(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rm := reconcile.NewMetrics(reg)
	for _, m := range cfg.Mappings {
		rm.Init(m.Name)
		rm.Interval.WithLabelValues(m.Name).Set(cfg.Reconcile.Interval.Seconds())
	}
	srv, addr, err := serveHTTP(cfg.HTTP.Listen, reg, &readiness{}, nil, Roles{})
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("http listening", "addr", addr, "metrics", "http://"+addr+"/metrics")
	runReconcile(ctx, cfg, ReconcileOptions{Metrics: rm, Logger: log}, true, nil)
	return nil
}
