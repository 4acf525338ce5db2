package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/transform"
)

// errBackfillFinished ends a backfill run once its copy is written.
var errBackfillFinished = errors.New("backfill finished")

// newBackfill prepares a backfill. The stream's start position must exist
// before any row is read (package backfill's doc says why): with the
// capture role in this process it was set up already; otherwise it must
// have been by a `tandem capture` process. mappings are compiled with
// lookup() reading the target, as apply compiles them. lag is the stream's
// lag in this process, nil when it applies no mapping.
func newBackfill(ctx context.Context, cfg *config.Config, opts Options, tgt connect.Target, capturing bool, mappings []*transform.Mapping,
	dlq *kafka.DLQ, am *apply.Metrics, lag func() time.Duration, log *slog.Logger, reg prometheus.Registerer) (*backfill.Role, error) {
	if !capturing {
		if err := connect.StreamStarted(ctx, cfg, tgt); err != nil {
			return nil, err
		}
	}
	tables, err := BackfillTables(cfg, opts.Backfill.Tables)
	if err != nil {
		return nil, err
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if lag == nil && cfg.Backfill.MaxLagSeconds >= 0 {
		log.Warn("backfill: this process applies no mapping, so it cannot see the stream's lag and does not pause for it (backfill.max_lag_seconds); it still pauses for the source's load",
			"max_lag_seconds", cfg.Backfill.MaxLagSeconds)
	}
	r, err := backfill.NewRole(ctx, backfill.RoleConfig{
		Copy: backfill.Config{
			Tables: tables, ChunkRows: cfg.Backfill.ChunkRows, Parallel: cfg.Backfill.Parallel,
			MaxRowsPerSecond: float64(cfg.Backfill.MaxRowsPerSecond), Restart: opts.Backfill.Restart,
			ProgressEvery: opts.Backfill.LogEvery,
		},
		Reader: reader, Target: tgt, Mappings: mappings, ServerText: connect.ServerText(cfg),
		Encoder: connect.Encoder(cfg, opts.Version), TopicPrefix: cfg.Kafka.TopicPrefix, DLQ: dlq,
		Metrics: backfill.WriteMetrics{Rows: am.Rows, Errors: am.Errors, DLQ: am.DLQ},
		Lag:     lag, MaxLagSeconds: cfg.Backfill.MaxLagSeconds, MaxSourceLoad: cfg.Backfill.MaxSourceLoad,
		Log: log, Registerer: reg,
	})
	if err != nil {
		reader.Close()
		return nil, err
	}
	return r, nil
}

// BackfillTables returns the source tables a backfill copies: names
// ("schema.table", from --table), or every configured table when empty.
func BackfillTables(cfg *config.Config, names []string) ([]change.Table, error) {
	tables := connect.SourceTables(cfg)
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
