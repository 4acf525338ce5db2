package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/backfill/progress"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

// estimateSample is how long `tandem backfill --estimate` reads each table.
const estimateSample = 3 * time.Second

// backfillFlags are `tandem backfill`'s flags.
type backfillFlags struct {
	tables            []string
	restart, estimate bool
	format            string // of --estimate: text or json
}

// newBackfillCmd builds `tandem backfill`.
func newBackfillCmd(g *globals) *cobra.Command {
	f := backfillFlags{format: "text"}
	cmd := &cobra.Command{
		Use:   "backfill -c tandem.yaml [--table schema.table]... [--restart] [--estimate [--format text|json]]",
		Short: "copy the source tables' rows into the target, beside the stream",
		Long: `Copy the rows the source tables hold now into the target, beside the
stream, chunked, throttled and resumable; exit once the copy is in the
target. With the embedded broker (no kafka.brokers) it streams and applies
too; with kafka.brokers set, run it beside ` + "`tandem capture`" + ` and ` + "`tandem apply`" + `.

A live display when stdout is a terminal, log lines otherwise.
--estimate reads each table for a few seconds, then tries its copy for a
few seconds into temporary copies of the target tables that no other
session sees, and projects the copy's duration, writing nothing visible.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			if f.format != "text" && f.format != "json" {
				return fmt.Errorf("--format %q: want text or json", f.format)
			}
			if err := g.refuseWhenCheckFails(ctx, cmd, cfg); err != nil {
				return err
			}
			if f.estimate {
				if err := printEstimate(ctx, cfg, f, g.stdout, g.log); err != nil {
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
	fs.BoolVar(&f.estimate, "estimate", false, "sample each table's reads and a trial copy, and project the copy's duration, writing nothing visible")
	fs.StringVar(&f.format, "format", "text", "the --estimate `format`: text or json")
	completeWords(cmd, "format", "text", "json")
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
// It reads the source and writes only into temporary copies of the target
// tables: no slot, no Kafka, nothing visible in the target.
func printEstimate(ctx context.Context, cfg *config.Config, f backfillFlags, stdout io.Writer, log *slog.Logger) error {
	rep, err := app.EstimateBackfill(ctx, cfg, f.tables, estimateSample, nil)
	if err != nil {
		return err
	}
	limit := float64(cfg.Backfill.MaxRowsPerSecond)
	if f.format == "json" {
		return writeEstimateJSON(stdout, rep, limit)
	}
	return progress.PrintEstimate(stdout, rep, limit)
}

// estimateJSON is --estimate --format json: projected_seconds is what the
// copy as configured takes (under backfill.max_rows_per_second),
// unthrottled_seconds the same without the limit; null when unknown.
type estimateJSON struct {
	Tables             []tableEstimateJSON `json:"tables"`
	Rows               int64               `json:"rows"`
	Parallel           int                 `json:"parallel"`
	MaxRowsPerSecond   float64             `json:"max_rows_per_second"`
	ProjectedSeconds   *float64            `json:"projected_seconds"`
	UnthrottledSeconds *float64            `json:"unthrottled_seconds"`
}

type tableEstimateJSON struct {
	Table              string   `json:"table"`
	Rows               int64    `json:"rows"`
	Exact              bool     `json:"exact"`
	AtLeast            bool     `json:"at_least"`
	ReadRowsPerSecond  float64  `json:"read_rows_per_second"`
	TrialRowsPerSecond float64  `json:"trial_rows_per_second"`
	TrialRows          int64    `json:"trial_rows"`
	Ranges             int      `json:"ranges"`
	ProjectedSeconds   *float64 `json:"projected_seconds"`
	UnthrottledSeconds *float64 `json:"unthrottled_seconds"`
}

func writeEstimateJSON(w io.Writer, rep *backfill.EstimateReport, limit float64) error {
	secs := func(d time.Duration) *float64 {
		if d < 0 {
			return nil
		}
		s := d.Seconds()
		return &s
	}
	out := estimateJSON{Tables: []tableEstimateJSON{}, Rows: rep.Rows, Parallel: rep.Parallel, MaxRowsPerSecond: limit,
		ProjectedSeconds: secs(rep.Limited), UnthrottledSeconds: secs(rep.Projected)}
	for _, t := range rep.Tables {
		read := t.RowsPerSecond
		if math.IsInf(read, 0) {
			read = 0 // faster than the clock could tell
		}
		out.Tables = append(out.Tables, tableEstimateJSON{Table: t.Table.String(), Rows: t.Rows, Exact: t.Exact, AtLeast: t.AtLeast,
			ReadRowsPerSecond: read, TrialRowsPerSecond: t.Trial.RowsPerSecond, TrialRows: t.Trial.Rows, Ranges: t.Trial.Ranges,
			ProjectedSeconds: secs(t.Limited), UnthrottledSeconds: secs(t.Projected)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
