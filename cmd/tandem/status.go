package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

// newStatusCmd builds `tandem status`.
func newStatusCmd(g *globals) *cobra.Command {
	format := "text"
	cmd := &cobra.Command{
		Use:   "status -c tandem.yaml [--format text|json]",
		Short: "what runs, lag per stream, drift, cohort owners, dead letters and backfill progress",
		Long: `Show the migration's status as its databases hold it: each stream that
reported a heartbeat (forward and reverse, with its lag), the drifted rows
the last reconcile sweep found per mapping and kind (whichever process ran
it), each cohort's owner in both databases, the dead letters stored, and
the backfill's progress.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			if format != "text" && format != "json" {
				return g.fail(cmd, exitUsage, fmt.Errorf("--format %q: want text or json", format))
			}
			st, err := app.ReadStatus(ctx, cfg)
			if err != nil {
				return g.fail(cmd, exitFailed, err)
			}
			if format == "json" {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "STREAM\tLAG\tLAST HEARD\tRUNNING")
			for _, s := range st.Streams {
				fmt.Fprintf(w, "%s\t%.3fs\t%.1fs ago\t%v\n", s.Stream, s.LagSeconds, s.AgeSeconds, s.Running)
			}
			fmt.Fprintln(w, "\nDRIFT MAPPING\tKIND\tROWS\tSWEPT")
			for _, d := range st.Drift {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", d.Mapping, d.Kind, d.Rows, d.Swept.Format("2006-01-02T15:04:05Z07:00"))
			}
			fmt.Fprintln(w, "\nCOHORT\tOWNER\tOLD DB\tNEW DB\tVERSION\tCHANGED")
			for _, c := range st.Cohorts {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", c.Cohort, c.Owner, c.Old, c.New, c.Version, c.Changed.Format("2006-01-02T15:04:05Z07:00"))
			}
			fmt.Fprintln(w, "\nBACKFILL TABLE\tSTATE\tROWS")
			for _, b := range st.Backfill {
				fmt.Fprintf(w, "%s\t%s\t%d\n", b.Table, b.State, b.Rows)
			}
			fmt.Fprintf(w, "\ndead letters: %d in the target", st.DeadLetters["target"])
			if n, ok := st.DeadLetters["source"]; ok {
				fmt.Fprintf(w, ", %d in the source (reverse stream)", n)
			}
			fmt.Fprintln(w)
			return w.Flush()
		}),
	}
	cmd.Flags().StringVar(&format, "format", "text", "the output `format`: text or json")
	completeWords(cmd, "format", "text", "json")
	return cmd
}
