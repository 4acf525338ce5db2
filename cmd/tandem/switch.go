package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

// newSwitchCmd builds `tandem switch`.
func newSwitchCmd(g *globals) *cobra.Command {
	var cohorts string
	var all, back bool
	cmd := &cobra.Command{
		Use:   "switch -c tandem.yaml (--cohort A[,B...] | --all) [--back]",
		Short: "move cohorts' writes to the new schema (or back): gates, fence, drain, flip",
		Long: `Move cohorts' write path to the new schema, or with --back to the old one.

It checks its gates first (both streams running with their lag under
cutover.max_lag_seconds, no dead letters, a reconcile without drift) and
refuses with the reasons and exit 1 when one fails, changing nothing. Then it
fences the cohorts' writes on the side that owns them (they wait, at most
cutover.fence_timeout), drains the stream out of that side, and flips the
owners in both databases (<state_schema>.cohorts), which lifts the fence.
It acts on the running migration (tandem run, or the capture and apply
roles) through the databases, and returns once the switch is done or undone.`,
		Args: noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			var list []string
			for _, c := range strings.Split(cohorts, ",") {
				if c = strings.TrimSpace(c); c != "" {
					list = append(list, c)
				}
			}
			if all == (len(list) > 0) {
				return g.fail(cmd, exitUsage, errors.New("want --cohort A[,B...] or --all"))
			}
			res, err := app.Switch(ctx, cfg, app.SwitchOptions{Cohorts: list, All: all, Back: back, Logger: g.log,
				Phase: killAt(os.Getenv("TANDEM_TEST_SWITCH_KILL_AT"))})
			if err != nil {
				return g.fail(cmd, exitFailed, err)
			}
			to := "new"
			if back {
				to = "old"
			}
			if len(res.Already) > 0 {
				fmt.Fprintf(g.stdout, "already owned by the %s schema: %s\n", to, strings.Join(res.Already, ", "))
			}
			if len(res.Cohorts) > 0 {
				fmt.Fprintf(g.stdout, "switched to the %s schema: %s (writes fenced %s)\n", to, strings.Join(res.Cohorts, ", "), res.Fenced.Round(1e6))
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&cohorts, "cohort", "", "the `cohorts` to move, comma-separated")
	fs.BoolVar(&all, "all", false, "move every cohort")
	fs.BoolVar(&back, "back", false, "move them back to the old schema")
	return cmd
}

// killAt returns a switch's phase hook that kills tandem with SIGKILL as
// phase begins ("": none). Tests prove with it that a switch killed at any
// phase is finished or undone by the next one; it is no user setting.
func killAt(phase string) func(string) {
	if phase == "" {
		return nil
	}
	return func(p string) {
		if p == phase {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
