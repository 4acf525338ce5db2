package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// newCheckCmd builds `tandem check`.
func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check -c tandem.yaml",
		Short: "preflight: config, connections, source settings, tables, columns",
		Long: `Preflight: the config, the connections, the source settings (binlog_format=ROW,
binlog_row_image=FULL, wal_level=logical...), that the tables and target
columns exist, that the expressions compile, and each mapping's inverse round
trip on a sample of source rows. Every problem is listed with its fix.

Exit 0 when nothing fails (warnings allowed), 1 when something does.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			problems, err := app.Check(ctx, cfg)
			if err != nil {
				return g.fail(cmd, exitUsage, err)
			}
			preflight.Print(g.stdout, problems)
			if preflight.HasFailures(problems) {
				return exitError(exitFailed)
			}
			return nil
		}),
	}
}
