package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/reconcile"
)

// reconcileFlags are `tandem reconcile`'s flags.
type reconcileFlags struct {
	once, repair bool
	format       string // text or json
}

// newReconcileCmd builds `tandem reconcile`.
func newReconcileCmd(g *globals) *cobra.Command {
	f := reconcileFlags{format: "text"}
	cmd := &cobra.Command{
		Use:   "reconcile -c tandem.yaml [--once] [--repair] [--format text|json]",
		Short: "compare the source, mapped, with the target and report drift",
		Long: `Compare the source, mapped, with the target (and run reconcile.checks).

With --once it prints the report (the first drifted rows of each mapping as
diffs) and exits 1 on drift, 0 without; --repair first re-syncs the drifted
rows from the source, then compares again. Without --once it compares every
reconcile.interval, serving /metrics, until SIGINT or SIGTERM.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.format != "text" && f.format != "json" {
				return fmt.Errorf("--format %q: want text or json", f.format)
			}
			ctx, stop, cfg, err := g.prepare(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer stop()
			return exitErrorOf(runReconcile(ctx, cfg, f, g.log, g.stdout, g.stderr))
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&f.once, "once", false, "compare once, print the report and exit: 1 on drift, 0 without")
	fs.BoolVar(&f.repair, "repair", false, "re-sync the drifted rows from the source, then compare again")
	fs.StringVar(&f.format, "format", "text", "the report `format`: text or json")
	completeWords(cmd, "format", "text", "json")
	return cmd
}

// runReconcile compares once and reports (--once), or keeps comparing
// every reconcile.interval with /metrics served.
func runReconcile(ctx context.Context, cfg *config.Config, f reconcileFlags, log *slog.Logger, stdout, stderr io.Writer) int {
	if !f.once {
		if err := app.ServeReconcile(ctx, cfg, log); err != nil {
			fmt.Fprintf(stderr, "tandem reconcile: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Repair: f.repair, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "tandem reconcile: %v\n", err)
		return exitFailed
	}
	if f.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(jsonReport(res)); err != nil {
			fmt.Fprintf(stderr, "tandem reconcile: %v\n", err)
			return exitFailed
		}
	} else {
		printReport(stdout, res)
	}
	if res.Drift() {
		return exitFailed
	}
	return exitOK
}

// printReport writes a reconcile result for people: per mapping its counts
// and the first drifted rows as go-cmp diffs, then the consistency checks.
func printReport(w io.Writer, res *reconcile.Result) {
	for _, m := range res.Report.Mappings {
		fmt.Fprintf(w, "mapping %s: %d rows checked", m.Mapping, m.Checked)
		if m.Summarised > 0 {
			fmt.Fprintf(w, " (%d by chunk summaries)", m.Summarised)
		}
		fmt.Fprintf(w, "; drift: %d missing, %d extra, %d mismatch", m.Missing, m.Extra, m.Mismatch)
		if m.RoundTrip > 0 {
			fmt.Fprintf(w, ", %d not given back by the inverse", m.RoundTrip)
		}
		fmt.Fprintf(w, "; not drift: %d in flight, %d suspended", m.InFlight, m.Suspended)
		if n, ok := res.Repaired[m.Mapping]; ok {
			fmt.Fprintf(w, "; repaired %d rows before this comparison", n)
		}
		fmt.Fprintln(w)
		for _, d := range m.Samples {
			fmt.Fprintf(w, "  %s %s %s", d.Kind, d.Table, showKey(d.Key))
			if len(d.Columns) > 0 {
				fmt.Fprintf(w, " columns %s", strings.Join(d.Columns, ", "))
			}
			fmt.Fprintln(w)
			for _, line := range strings.Split(strings.TrimRight(cmp.Diff(d.Want, d.Got), "\n"), "\n") {
				fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(line, "\u00a0", " "))
			}
		}
		if more := m.Drift() - len(m.Samples); more > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", more)
		}
	}
	for _, c := range res.Checks {
		switch {
		case c.Err != nil:
			fmt.Fprintf(w, "check %s: FAILED: %v\n", c.Name, c.Err)
		case c.Differs():
			fmt.Fprintf(w, "check %s: DIFFERS: source %v, target %v\n", c.Name, c.Source, c.Target)
		default:
			fmt.Fprintf(w, "check %s: ok (%v)\n", c.Name, c.Source)
		}
	}
	if res.Drift() {
		legend := "the diffs read -mapped source +target"
		for _, m := range res.Report.Mappings {
			if m.RoundTrip > 0 {
				legend += "; for round_trip, -source +what the inverse gives back"
				break
			}
		}
		fmt.Fprintf(w, "drift found (%s)\n", legend)
	} else {
		fmt.Fprintln(w, "no drift")
	}
}

func showKey(k map[string]any) string {
	names := make([]string, 0, len(k))
	for n := range k {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%v", n, k[n])
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// jsonReport is the --format json shape.
func jsonReport(res *reconcile.Result) any {
	type check struct {
		Name    string  `json:"name"`
		Source  float64 `json:"source"`
		Target  float64 `json:"target"`
		Differs bool    `json:"differs"`
		Error   string  `json:"error,omitempty"`
	}
	type mapping struct {
		reconcile.MappingReport
		Repaired int `json:"repaired"`
	}
	out := struct {
		Drift    bool      `json:"drift"`
		Mappings []mapping `json:"mappings"`
		Checks   []check   `json:"checks"`
	}{Drift: res.Drift(), Mappings: []mapping{}, Checks: []check{}}
	for _, m := range res.Report.Mappings {
		out.Mappings = append(out.Mappings, mapping{MappingReport: m, Repaired: res.Repaired[m.Mapping]})
	}
	for _, c := range res.Checks {
		jc := check{Name: c.Name, Source: c.Source, Target: c.Target, Differs: c.Differs()}
		if c.Err != nil {
			jc.Error = c.Err.Error()
		}
		out.Checks = append(out.Checks, jc)
	}
	return out
}
