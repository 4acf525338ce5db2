package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/capture/backfill"
	mycapture "github.com/tandemcdc/tandem/capture/mysql"
	pgcapture "github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/sink"
)

// errBackfillFinished ends a backfill run once its copy is durable.
var errBackfillFinished = errors.New("backfill finished")

// encoder is the envelope encoder of the configured source.
func encoder(cfg *config.Config, version string) *change.Encoder {
	return &change.Encoder{Version: version, Connector: connectorName(cfg.Source.Kind), Name: cfg.Kafka.TopicPrefix,
		DB: dbName(cfg.Source.Kind, cfg.Source.DSN.Value())}
}

// backfillRole copies existing rows into the stream's topics.
type backfillRole struct {
	runner  *backfill.Runner
	emitter *captureRole // produces the chunks; its tracker is the backfill's
	close   func()
	log     *slog.Logger
}

// newBackfill prepares a backfill. The stream's start position must exist
// before any row is read (the package doc of capture/backfill says why):
// with the capture role in this process it was set up already; otherwise
// it must have been by a `tandem capture` process.
func newBackfill(ctx context.Context, cfg *config.Config, opts Options, tgt target, capturing, durableOnProduce bool,
	producer *kgo.Client, log *slog.Logger, reg prometheus.Registerer) (*backfillRole, error) {
	store, ok := tgt.(sink.BackfillStore)
	if !ok {
		return nil, fmt.Errorf("backfill: target kind %s cannot keep backfill progress", cfg.Target.Kind)
	}
	if !capturing {
		if err := streamStarted(ctx, cfg, tgt); err != nil {
			return nil, err
		}
	}
	tables, err := BackfillTables(cfg, opts.Backfill.Tables)
	if err != nil {
		return nil, err
	}
	reader, closer, err := BackfillReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	b := &backfillRole{close: closer, log: log}
	gatherer, _ := reg.(prometheus.Gatherer)
	b.emitter = &captureRole{prefix: cfg.Kafka.TopicPrefix, client: producer, log: log, enc: encoder(cfg, opts.Version)}
	b.runner = backfill.New(backfill.Config{
		Tables: tables, ChunkRows: cfg.Backfill.ChunkRows, Parallel: cfg.Backfill.Parallel,
		MaxRowsPerSecond: float64(cfg.Backfill.MaxRowsPerSecond), Restart: opts.Backfill.Restart, DurableOnProduce: durableOnProduce,
		ProgressEvery: opts.Backfill.LogEvery,
		Pause:         backfillPause(reader, gatherer),
	}, reader, store, func(ctx context.Context, bt change.Batch) error { return b.emitter.emit(ctx, bt) }, log, backfill.NewMetrics(reg))
	return b, nil
}

// The backfill pauses while the stream lags or the source is busy: the
// copy is the work that can wait.
const (
	pauseLagSeconds = 30 // tandem_replication_lag_seconds of any mapping
	pauseSourceLoad = 32 // PostgreSQL active sessions / MySQL Threads_running
)

// backfillPause says why the copy should wait now, or "".
func backfillPause(reader backfill.Reader, g prometheus.Gatherer) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if g != nil {
			if lag := maxGauge(g, "tandem_replication_lag_seconds"); lag > pauseLagSeconds {
				return fmt.Sprintf("replication lag %.0fs > %ds", lag, pauseLagSeconds), nil
			}
		}
		if lr, ok := reader.(backfill.LoadReader); ok {
			n, err := lr.Load(ctx)
			if err != nil {
				return "", err
			}
			if n > pauseSourceLoad {
				return fmt.Sprintf("source load: %d statements running > %d", n, pauseSourceLoad), nil
			}
		}
		return "", nil
	}
}

// maxGauge returns the largest value of a gauge family (0 when absent).
func maxGauge(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	out := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			out = max(out, m.GetGauge().GetValue())
		}
	}
	return out
}

// run copies, then reports the summary. watch, if set, runs beside the
// copy and has returned before done is called.
func (b *backfillRole) run(ctx context.Context, watch func(context.Context, *backfill.Runner), done func(backfill.Summary)) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	stopWatch := func() {}
	if watch != nil {
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watch(wctx, b.runner)
		}()
		stopWatch = sync.OnceFunc(func() { cancel(); <-watched })
	}
	defer stopWatch()
	b.emitter.fail = func(err error) { stop(err) } // a chunk that cannot be produced ends the run
	sum, err := b.runner.Run(ctx)
	stopWatch()
	if cause := context.Cause(ctx); err != nil && cause != nil {
		err = cause
	}
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	b.log.Info("backfill done", "tables", sum.Tables, "rows", sum.Rows, "took", sum.Took.Round(1e6).String(),
		"throttled", sum.Throttled.Round(1e6).String(), "skipped", len(sum.Skipped))
	if done != nil {
		done(sum)
	}
	return nil
}

// streamStarted checks that the stream's start position exists, for a
// backfill process without the capture role.
func streamStarted(ctx context.Context, cfg *config.Config, tgt target) error {
	if cfg.Source.Kind == config.KindMySQL {
		_, found, err := tgt.LoadPosition(ctx, positionKey(cfg))
		if err != nil {
			return fmt.Errorf("backfill: read the stream's saved position: %w", err)
		}
		if !found {
			return errors.New("backfill: the stream has no start position yet: start `tandem capture` (or `tandem run`) first, so that no change made during the copy is missed")
		}
		return nil
	}
	src, err := pgcapture.New(pgcapture.Config{DSN: cfg.Source.DSN.Value(), Slot: cfg.Source.Postgres.Slot,
		Publication: cfg.Source.Postgres.Publication, Tables: sourceTables(cfg)})
	if err != nil {
		return err
	}
	exists, err := src.SlotExists(ctx)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if !exists {
		return fmt.Errorf("backfill: replication slot %s does not exist yet: start `tandem capture` (or `tandem run`) first, so that no change made during the copy is missed", cfg.Source.Postgres.Slot)
	}
	return nil
}

// BackfillTables returns the source tables a backfill copies: names
// ("schema.table", from --table), or every configured table when empty.
func BackfillTables(cfg *config.Config, names []string) ([]change.Table, error) {
	tables := sourceTables(cfg)
	if len(names) == 0 {
		return tables, nil
	}
	var chosen []change.Table
	for _, name := range names {
		i := slices.IndexFunc(tables, func(t change.Table) bool { return t.String() == name })
		if i < 0 {
			return nil, fmt.Errorf("backfill --table %s: not one of source.tables", name)
		}
		chosen = append(chosen, tables[i])
	}
	return chosen, nil
}

// BackfillReader opens the configured source's table reader, the one a
// backfill copies with; close releases its connections. It reads only:
// opening it creates nothing in the source or the target.
func BackfillReader(ctx context.Context, cfg *config.Config) (backfill.Reader, func(), error) {
	switch cfg.Source.Kind {
	case config.KindPostgres:
		r, err := pgcapture.NewTableReader(ctx, cfg.Source.DSN.Value())
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	case config.KindMySQL:
		r, err := mycapture.NewTableReader(cfg.Source.DSN.Value())
		if err != nil {
			return nil, nil, err
		}
		return r, func() { r.Close() }, nil
	}
	return nil, nil, fmt.Errorf("backfill: source kind %q is not supported", cfg.Source.Kind)
}
