package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/backfill/probe"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/transform"
)

// EstimateBackfill projects the backfill of the tables names (--table;
// every source table when empty), each sampled for sampleFor: its reads,
// then a trial of its copy, mapped by its mappings, into session-temporary
// copies of the target tables they write (package probe). Nothing visible
// is written: no row of a target table, no state, no slot.
func EstimateBackfill(ctx context.Context, cfg *config.Config, names []string, sampleFor time.Duration, log *slog.Logger) (*backfill.EstimateReport, error) {
	tables, err := BackfillTables(cfg, names)
	if err != nil {
		return nil, err
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the source to sample: %w", err)
	}
	defer reader.Close()
	var idx []int
	for i, m := range cfg.Mappings {
		if slices.ContainsFunc(tables, func(t change.Table) bool { return t.String() == m.From }) {
			idx = append(idx, i)
		}
	}
	lookup, closeLookup, err := lookupsFor(ctx, cfg, idx)
	if err != nil {
		return nil, err
	}
	defer closeLookup()
	var mappings []*transform.Mapping
	var targets []string
	for _, i := range idx {
		tm, _, err := compileTyped(ctx, cfg, i, reader, lookup)
		if err != nil {
			return nil, fmt.Errorf("mapping %s: %w", cfg.Mappings[i].Name, err)
		}
		mappings = append(mappings, tm)
		for _, o := range tm.Outputs() {
			if !slices.Contains(targets, o.Table) {
				targets = append(targets, o.Table)
			}
		}
	}
	// As many connections as the copy writes chunks at once.
	conns := max(1, cfg.Backfill.Parallel) * 2
	var p backfill.WriteTarget
	switch cfg.Target.Kind {
	case config.KindPostgres:
		p, err = probe.OpenPostgres(ctx, cfg.Target.DSN.Value(), targets, conns)
	case config.KindMySQL:
		p, err = probe.OpenMySQL(ctx, cfg.Target.DSN.Value(), targets, conns)
	default:
		err = fmt.Errorf("target kind %q", cfg.Target.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("make temporary copies of the target tables to try the copy in: %w", err)
	}
	defer p.Close()
	return backfill.Estimate(ctx, reader, backfill.EstimateConfig{Tables: tables, ChunkRows: cfg.Backfill.ChunkRows, SampleFor: sampleFor,
		MaxRowsPerSecond: float64(cfg.Backfill.MaxRowsPerSecond), Parallel: cfg.Backfill.Parallel,
		Probe: p, Mappings: mappings, ServerText: connect.ServerText(cfg), Log: log})
}
