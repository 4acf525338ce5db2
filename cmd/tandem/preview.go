package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

// newPreviewCmd builds `tandem preview`.
func newPreviewCmd(g *globals) *cobra.Command {
	var table string
	var limit int
	cmd := &cobra.Command{
		Use:   "preview -c tandem.yaml --table schema.table [--limit N]",
		Short: "print what the mappings write for N source rows; writes nothing",
		Long: `Run the mappings of one source table on N of its rows and print the target
rows they would write and the inverse round trip. It writes nothing.

Exit 0 when every row maps and comes back equal, 1 when one does not.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if table == "" || limit <= 0 {
				return errors.New("want --table schema.table and a --limit above 0")
			}
			ctx, stop, cfg, err := g.prepare(cmd.Context(), cmd)
			if err != nil {
				return err
			}
			defer stop()
			return exitErrorOf(runPreview(ctx, cfg, table, limit, g.stdout, g.stderr))
		},
	}
	cmd.Flags().StringVar(&table, "table", "", "the source table (`schema.table`) to read rows of")
	cmd.Flags().IntVar(&limit, "limit", 10, "how many source rows to run the mappings on")
	return cmd
}

// runPreview runs the mappings of one source table on a few of its rows and
// prints what would be written and the inverse round trip; it writes
// nothing. It exits 1 when a row fails to map or does not come back equal.
func runPreview(ctx context.Context, cfg *config.Config, table string, limit int, stdout, stderr io.Writer) int {
	clean, err := app.Preview(ctx, cfg, table, limit, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tandem preview: %v\n", err)
		return exitUsage
	}
	if !clean {
		fmt.Fprintln(stdout, "\nsome rows failed to map or did not come back equal: see above")
		return exitFailed
	}
	return exitOK
}
