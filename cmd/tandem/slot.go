package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
)

// newSlotCmd builds `tandem slot` and its one verb, `tandem slot drop`.
func newSlotCmd(g *globals) *cobra.Command {
	slot := &cobra.Command{
		Use:   "slot",
		Short: "the migration's replication slot and publication (PostgreSQL)",
		Args:  cobra.ArbitraryArgs,
		// Only its verb runs: "tandem slot [flags]" is no way to call it.
		DisableFlagsInUseLine: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("want `tandem slot drop -c tandem.yaml`")
		},
	}
	slot.AddCommand(&cobra.Command{
		Use:   "drop -c tandem.yaml",
		Short: "remove the migration's replication slot and publication when done",
		Long: `Remove the migration's replication slot and publication from a PostgreSQL
source once the migration is done: an abandoned slot retains WAL on the
source. It refuses, changing nothing, while a client streams from the slot.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			dropped, err := connect.DropSlot(ctx, cfg)
			for _, d := range dropped {
				fmt.Fprintf(g.stdout, "dropped %s\n", d)
			}
			if err != nil {
				return g.fail(cmd, exitFailed, err)
			}
			if len(dropped) == 0 {
				fmt.Fprintln(g.stdout, "nothing to drop: no slot or publication of this migration on the source")
			}
			return nil
		}),
	})
	return slot
}
