package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// newStreamCmds builds `tandem run`, `tandem capture` and `tandem apply`:
// the streaming roles, together or one per process.
func newStreamCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newStreamCmd(g, "run", "capture, apply and HTTP (/metrics, /healthz, /readyz) in one process",
			`Run everything in one process: capture (source -> Kafka), apply (Kafka ->
transform -> target), periodic reconcile and HTTP (/metrics, /healthz,
/readyz). With no kafka.brokers it uses an embedded broker. It refuses to
start while `+"`tandem check`"+` fails.`,
			app.Roles{Capture: true, Apply: true}),
		newStreamCmd(g, "capture", "only source -> Kafka (needs kafka.brokers)",
			`Run only the capture role: read the source's changes and produce them to
Kafka. One capture is active per source; it needs kafka.brokers. It refuses
to start while `+"`tandem check`"+` fails.`,
			app.Roles{Capture: true}),
		newStreamCmd(g, "apply", "only Kafka -> transform -> target (needs kafka.brokers)",
			`Run only the apply role: consume Kafka, transform with the mappings and
write the target. More apply processes share the partitions; it needs
kafka.brokers. It refuses to start while `+"`tandem check`"+` fails.`,
			app.Roles{Apply: true}),
	}
}

// newStreamCmd builds the verb name, which runs roles until SIGINT or
// SIGTERM.
func newStreamCmd(g *globals, name, short, long string, roles app.Roles) *cobra.Command {
	return &cobra.Command{
		Use:   name + " -c tandem.yaml",
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			if err := g.refuseWhenCheckFails(ctx, cmd, cfg); err != nil {
				return err
			}
			return g.runPipeline(ctx, cmd, cfg, app.Options{Roles: roles, Logger: g.log, Version: version})
		}),
	}
}

// refuseWhenCheckFails refuses to start on what `tandem check` calls fatal
// (a missing table, an unreachable database), before anything is created
// or written: exit 2, the problems printed.
func (g *globals) refuseWhenCheckFails(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
	problems, err := app.Check(ctx, cfg)
	if err != nil {
		return g.fail(cmd, exitUsage, err)
	}
	if preflight.HasFailures(problems) {
		fmt.Fprintf(g.stderr, "%s: refusing to start, `tandem check -c %s` fails:\n", cmd.CommandPath(), g.configPath)
		preflight.Print(g.stderr, problems)
		return exitError(exitUsage)
	}
	return nil
}

// runPipeline runs the roles opts selects until they end: exit 2 when the
// config cannot run them this way, 1 when they stop on an error, 128 plus
// the signal's number (130 for SIGINT) when a signal stops a backfill
// before its copy is done.
func (g *globals) runPipeline(ctx context.Context, cmd *cobra.Command, cfg *config.Config, opts app.Options) error {
	err := app.Run(ctx, cfg, opts)
	if errors.Is(err, app.ErrEmbeddedNeedsRun) {
		fmt.Fprintf(g.stderr, "%s: %s: %v\n", cmd.CommandPath(), cfg.File, err)
		return exitError(exitUsage)
	}
	if errors.Is(err, app.ErrBackfillInterrupted) {
		var sig signalled
		if errors.As(context.Cause(ctx), &sig) {
			return exitError(sig.exitCode())
		}
	}
	if err != nil {
		g.log.Error("tandem stopped", "err", err)
		return exitError(exitFailed)
	}
	return nil
}
