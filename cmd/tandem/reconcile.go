package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/reconcile"
)

// reconcileFlags are `tandem reconcile`'s flags.
type reconcileFlags struct {
	once, repair bool
	format       string // text or json
	output       string // --output: the file every drifted row is written to, as JSON lines; "": none
}

// newReconcileCmd builds `tandem reconcile`.
func newReconcileCmd(g *globals) *cobra.Command {
	f := reconcileFlags{format: "text"}
	cmd := &cobra.Command{
		Use:   "reconcile -c tandem.yaml [--once] [--repair] [--format text|json] [--output FILE]",
		Short: "compare the source, mapped, with the target and report drift",
		Long: `Compare the source, mapped, with the target (and run reconcile.checks).

With --once it prints the report (per mapping the drifted rows per kind and
per column, what each rule absorbed, and the first drifted rows as diffs)
and exits 1 on drift, 0 without; a source row the mapping fails on is drift
(unmapped). It exits 1 too when it cannot compare (a server unreachable),
with the error on stderr and no report on stdout. --output FILE also writes every drifted row, with both values,
as JSON lines. --repair first re-syncs the drifted rows from the source,
then compares again. Without --once it compares every reconcile.interval,
serving /metrics, until SIGINT or SIGTERM.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.format != "text" && f.format != "json" {
				return fmt.Errorf("--format %q: want text or json", f.format)
			}
			if f.output != "" && !f.once {
				return fmt.Errorf("--output %s: only with --once", f.output)
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
	fs.BoolVar(&f.repair, "repair", false, "re-sync the drifted rows from the side that owns their cohort (the source, or with cutover the target for cohorts switched to it), then compare again")
	fs.StringVar(&f.format, "format", "text", "the report `format`: text or json")
	fs.StringVar(&f.output, "output", "", "with --once, write every drifted row (kind, table, key, columns, want, got...) to `FILE` as JSON lines")
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
	if f.output != "" {
		if err := writeDrifted(f.output, res); err != nil {
			fmt.Fprintf(stderr, "tandem reconcile: %v\n", err)
			return exitFailed
		}
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
		fmt.Fprintf(w, "mapping %s: %d rows checked", m.Label(), m.Checked)
		if m.Summarised > 0 {
			fmt.Fprintf(w, " (%d by chunk summaries)", m.Summarised)
		}
		fmt.Fprintf(w, "; drift: %d missing, %d extra, %d mismatch", m.Missing, m.Extra, m.Mismatch)
		if m.RoundTrip > 0 {
			fmt.Fprintf(w, ", %d not given back by the inverse", m.RoundTrip)
		}
		if m.Unmapped > 0 {
			fmt.Fprintf(w, ", %d unmapped (source rows the mapping fails on)", m.Unmapped)
		}
		fmt.Fprintf(w, "; not drift: %d in flight, %d suspended", m.InFlight, m.Suspended)
		if n, ok := res.Repaired[m.Label()]; ok {
			fmt.Fprintf(w, "; repaired %d rows before this comparison", n)
		}
		fmt.Fprintln(w)
		printCounts(w, m)
		for _, d := range m.Samples {
			printDrift(w, d)
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

// printCounts writes a mapping's drifted rows per column, most first, and
// what each of its rules absorbed.
func printCounts(w io.Writer, m reconcile.MappingReport) {
	if len(m.Columns) > 0 {
		cols := slices.Collect(maps.Keys(m.Columns))
		slices.SortFunc(cols, func(a, b string) int {
			return cmp.Or(m.Columns[b]-m.Columns[a], strings.Compare(a, b))
		})
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = fmt.Sprintf("%s %d", c, m.Columns[c])
		}
		fmt.Fprintf(w, "  drifted rows per column: %s\n", strings.Join(parts, ", "))
	}
	if len(m.Rules) > 0 {
		names := slices.Sorted(maps.Keys(m.Rules))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %d", n, m.Rules[n])
		}
		fmt.Fprintf(w, "  differences absorbed by rules: %s\n", strings.Join(parts, ", "))
	}
}

// printDrift writes one drifted row: its kind, table and key, and a diff
// of its values (for an unmapped row, the error and its dead letter).
func printDrift(w io.Writer, d reconcile.Drift) {
	fmt.Fprintf(w, "  %s %s %s", d.Kind, d.Table, showKey(d.Key))
	if len(d.Columns) > 0 {
		fmt.Fprintf(w, " columns %s", strings.Join(d.Columns, ", "))
	}
	fmt.Fprintln(w)
	if d.Kind == reconcile.KindUnmapped {
		dl := "unknown"
		if d.DeadLetter != nil && *d.DeadLetter {
			dl = "yes (tandem dlq list)"
		} else if d.DeadLetter != nil {
			dl = "none (dropped, or the row failed in the backfill)"
		}
		fmt.Fprintf(w, "    error: %s\n    dead letter: %s\n", d.Error, dl)
		return
	}
	for _, line := range strings.Split(strings.TrimRight(gocmp.Diff(d.Want, d.Got), "\n"), "\n") {
		fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(line, "\u00a0", " "))
	}
}

// writeDrifted writes every drifted row of res to path as JSON lines, each
// a reconcile.Drift and its mapping, mapping by mapping in key order.
func writeDrifted(path string, res *reconcile.Result) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("--output: %w", cerr)
		}
	}()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, m := range res.Report.Mappings {
		for _, d := range m.Drifted {
			line := struct {
				Mapping   string `json:"mapping"`
				Direction string `json:"direction"`
				reconcile.Drift
			}{m.Mapping, m.Direction, d}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("--output: drifted row %s %v of mapping %s: %w", d.Table, d.Key, m.Mapping, err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return nil
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
		if m.Columns == nil {
			m.Columns = map[string]int{}
		}
		if m.Samples == nil {
			m.Samples = []reconcile.Drift{} // [], not null, as columns is {}
		}
		out.Mappings = append(out.Mappings, mapping{MappingReport: m, Repaired: res.Repaired[m.Label()]})
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
