package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/backfill/progress"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
)

// estimateSample is how long `tandem backfill --estimate` reads each table.
const estimateSample = 3 * time.Second

// backfillFlags are `tandem backfill`'s flags.
type backfillFlags struct {
	tables            []string
	restart, estimate bool
}

// newBackfillCmd builds `tandem backfill`.
func newBackfillCmd(g *globals) *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:   "backfill -c tandem.yaml [--table schema.table]... [--restart] [--estimate]",
		Short: "copy the source tables' rows into the target, beside the stream",
		Long: `Copy the rows the source tables hold now into the target, beside the
stream, chunked, throttled and resumable; exit once the copy is in the
target. With the embedded broker (no kafka.brokers) it streams and applies
too; with kafka.brokers set, run it beside ` + "`tandem capture`" + ` and ` + "`tandem apply`" + `.

A live display when stdout is a terminal, log lines otherwise.
--estimate reads each table for a few seconds and projects the copy's
duration, writing nothing.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			if err := g.refuseWhenCheckFails(ctx, cmd, cfg); err != nil {
				return err
			}
			if f.estimate {
				if err := printEstimate(ctx, cfg, f.tables, g.stdout); err != nil {
					fmt.Fprintf(g.stderr, "%s --estimate: %v\n", cmd.CommandPath(), err)
					return exitError(exitFailed)
				}
				return nil
			}
			return g.runPipeline(ctx, cmd, cfg, g.backfillOptions(cfg, f))
		}),
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&f.tables, "table", nil, "copy only this source `schema.table`; repeatable")
	fs.BoolVar(&f.restart, "restart", false, "forget saved progress and copy every table again")
	fs.BoolVar(&f.estimate, "estimate", false, "sample each table's read rate and project the copy's duration, without writing")
	return cmd
}

// backfillOptions are the pipeline options of a backfill. The copy goes
// straight to the target. With the embedded broker the stream lives in
// this process, so it streams and applies too (the target must see the
// stream's deletes while it copies); with an external cluster it only
// copies, beside a running `tandem capture` and `apply`.
func (g *globals) backfillOptions(cfg *config.Config, f backfillFlags) app.Options {
	embedded := len(cfg.Kafka.Brokers) == 0
	opts := app.Options{Roles: app.Roles{Capture: embedded, Apply: embedded}, Logger: g.log, Version: version}
	opts.Backfill = &app.BackfillOptions{Tables: f.tables, Restart: f.restart, Done: func(s backfill.Summary) {
		fmt.Fprintf(g.stdout, "backfill done: %d rows of %d tables in %s (throttled %s); %d tables already done; %d rows copied by this run\n",
			s.Rows, s.Tables, s.Took.Round(time.Millisecond), s.Throttled.Round(time.Millisecond), len(s.Skipped), s.Copied)
	}}
	if isTerminal(g.stdout) {
		// A live display instead of periodic progress log lines; other
		// log lines scroll above it when stderr is the same terminal.
		display := progress.NewDisplay(g.stdout)
		opts.Backfill.Watch = func(ctx context.Context, r *backfill.Runner) { display.Watch(ctx, 250*time.Millisecond, r.Progress) }
		opts.Backfill.LogEvery = -1
		if isTerminal(g.stderr) {
			opts.Logger, _ = newLogger(display.Above(g.stderr), g.logFormat, g.logLevel)
		}
	}
	return opts
}

// printEstimate samples the copy of each table and prints the projection.
// It only reads the source: no slot, no Kafka, nothing in the target.
func printEstimate(ctx context.Context, cfg *config.Config, names []string, stdout io.Writer) error {
	tables, err := app.BackfillTables(cfg, names)
	if err != nil {
		return err
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open the source to sample: %w", err)
	}
	defer reader.Close()
	limit := float64(cfg.Backfill.MaxRowsPerSecond)
	rep, err := backfill.Estimate(ctx, reader, backfill.EstimateConfig{Tables: tables, ChunkRows: cfg.Backfill.ChunkRows,
		SampleFor: estimateSample, MaxRowsPerSecond: limit, Parallel: cfg.Backfill.Parallel})
	if err != nil {
		return fmt.Errorf("sample the source tables: %w", err)
	}
	return progress.PrintEstimate(stdout, rep, limit)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
