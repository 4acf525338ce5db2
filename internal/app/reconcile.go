package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/transform"
)

// ReconcileOptions tune a reconcile pass.
type ReconcileOptions struct {
	Repair  bool                 // re-sync drifted rows, then compare again
	Metrics *reconcile.Metrics   // nil: unregistered
	Lag     func() time.Duration // the pipeline's replication lag, when it runs in this process
	Logger  *slog.Logger         //
	Settle  time.Duration        // 0: reconcile's default
}

// reconcileEnv is a reconcile session with what a repair needs besides:
// the source reader and the compiled mappings.
type reconcileEnv struct {
	*reconcile.Session
	src      connect.Reader
	mappings []*transform.Mapping
}

// openReconcile connects a reconciler to the configured source and target.
func openReconcile(ctx context.Context, cfg *config.Config, opts ReconcileOptions) (_ *reconcileEnv, err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { reader.Close() })
	tgt, err := connect.OpenTargetReadOnly(ctx, cfg)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { tgt.Close() })
	mappings, err := CompileMappings(cfg, mappingOptions(cfg, tgt)...)
	if err != nil {
		return nil, err
	}
	s := &reconcile.Session{Closer: closeAll, Checks: make([]reconcile.Check, len(cfg.Reconcile.Checks))}
	for i, c := range cfg.Reconcile.Checks {
		s.Checks[i] = reconcile.Check{Name: c.Name, Source: c.Source, Target: c.Target}
	}
	var closeQ func()
	if s.Source, closeQ, err = connect.OpenQuerier(ctx, cfg.Source.Kind, cfg.Source.DSN.Value()); err != nil {
		return nil, fmt.Errorf("reconcile: connect to the source: %w", err)
	}
	closers = append(closers, closeQ)
	if s.Target, closeQ, err = connect.OpenQuerier(ctx, cfg.Target.Kind, cfg.Target.DSN.Value()); err != nil {
		return nil, fmt.Errorf("reconcile: connect to the target: %w", err)
	}
	closers = append(closers, closeQ)
	rcfg, err := reconcileConfig(cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Cutover != nil {
		rcfg.Owners = tgt.(connect.Side).Cohorts
	}
	rcfg.Drift = tgt
	s.Reconciler = reconcile.New(rcfg, reconcileSource(reader), tgt, mappings, opts.Metrics, opts.Logger)
	return &reconcileEnv{Session: s, src: reader, mappings: mappings}, nil
}

// reconcileConfig is the Reconciler's config of cfg's reconcile section
// and the mappings' tolerances and rules.
func reconcileConfig(cfg *config.Config, opts ReconcileOptions) (reconcile.Config, error) {
	mappingTol, columnTol := map[string][]config.Tolerance{}, map[string]map[string][]config.Tolerance{}
	rules := map[string][]*transform.Rule{}
	for i, m := range cfg.Mappings {
		var err error
		if rules[m.Name], err = transform.CompileRules(i, m); err != nil {
			return reconcile.Config{}, err
		}
		mappingTol[m.Name] = m.Tolerate
		for _, ct := range m.TolerateColumns {
			if columnTol[m.Name] == nil {
				columnTol[m.Name] = map[string][]config.Tolerance{}
			}
			columnTol[m.Name][ct.Column] = ct.Rules
		}
	}
	return reconcile.Config{
		ChunkRows: cfg.Reconcile.ChunkRows, MaxRowsPerSecond: max(0, float64(cfg.Reconcile.MaxRowsPerSecond)),
		Tolerate: cfg.Reconcile.Tolerate, MappingTolerate: mappingTol, ColumnTolerate: columnTol,
		Lag: opts.Lag, Settle: cmp.Or(opts.Settle, cfg.Reconcile.Settle), Rules: rules,
	}, nil
}

// Reconcile compares the source, mapped, with the target once, runs the
// consistency checks, and with Repair re-syncs the drifted rows (see
// reconcile.Repair) and compares again.
func Reconcile(ctx context.Context, cfg *config.Config, opts ReconcileOptions) (*reconcile.Result, error) {
	env, err := openReconcile(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	res, err := env.Pass(ctx)
	if err != nil || !opts.Repair || res.Report.Drift() == 0 {
		return res, err
	}
	tgt, err := connect.OpenTarget(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer tgt.Close()
	var back *reconcile.Back
	if cfg.Cutover != nil {
		old, err := connect.OpenOld(ctx, cfg)
		if err != nil {
			return res, err
		}
		defer old.Close()
		back = &reconcile.Back{Sink: old, Current: tgt.Lookup}
	}
	repaired, err := reconcile.Repair(ctx, res.Report, env.mappings, env.src, owned(cfg, tgt, env.mappings), back)
	if err != nil {
		return res, err
	}
	if res, err = env.Pass(ctx); err != nil {
		return nil, err
	}
	res.Repaired = repaired
	return res, nil
}

// reconcileOpener opens reconcile sessions for the continuous loop.
func reconcileOpener(cfg *config.Config, opts ReconcileOptions) reconcile.Opener {
	return func(ctx context.Context) (*reconcile.Session, error) {
		env, err := openReconcile(ctx, cfg, opts)
		if err != nil {
			return nil, err
		}
		return env.Session, nil
	}
}

// reconcileSource is the reconciler's source: one that summarises chunks
// on its server when its reader can (reconcile.KindChunkHasher: MariaDB,
// MySQL and PostgreSQL).
func reconcileSource(r connect.Reader) reconcile.Source {
	if h, ok := r.(reconcile.KindChunkHasher); ok {
		return hashingSource{r, h}
	}
	return r
}

// hashingSource is a source whose reader summarises chunks.
type hashingSource struct {
	reconcile.Source
	reconcile.KindChunkHasher
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

// ServeReconcile compares every reconcile.interval, the first time at once,
// serving /metrics on http.listen, until ctx ends: `tandem reconcile`
// beside a capture and apply run elsewhere.
func ServeReconcile(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rm := reconcile.NewMetrics(reg)
	for _, m := range cfg.Mappings {
		rm.Init(m.Name)
		for _, r := range m.Rules {
			rm.InitRules(m.Name, []string{r.Name})
		}
		rm.Interval.WithLabelValues(m.Name).Set(cfg.Reconcile.Interval.Seconds())
	}
	srv, addr, err := listenHTTP(cfg.HTTP, reg, &readiness{}, Roles{}, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	log.Info("http listening", "addr", addr, "metrics", "http://"+addr+"/metrics")
	reconcile.Loop(ctx, reconcileOpener(cfg, ReconcileOptions{Metrics: rm, Logger: log}), cfg.Reconcile.Interval, true, nil, log)
	return nil
}
