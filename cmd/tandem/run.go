package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/internal/repeat"
)

// newStreamCmds builds `tandem run`, `tandem capture` and `tandem apply`:
// the streaming roles, together or one per process.
func newStreamCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newStreamCmd(g, "run", "capture, apply and HTTP (/metrics, /healthz, /readyz) in one process",
			`Run everything in one process: capture (source -> Kafka), apply (Kafka ->
transform -> target), periodic reconcile and HTTP (/metrics, /healthz,
/readyz). With no kafka.brokers it uses an embedded broker. It refuses to
start while `+"`tandem check`"+` fails, and waits while the only failure
is a database it cannot reach.`,
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
// (a missing table, a missing privilege), before anything is created or
// written: exit 2, the problems printed. While the only failures are
// databases that cannot be reached (down, restarting, a network fault), it
// waits for them instead, checking again with backoff and logging each
// distinct cause once with a count: exit 2 is for what a person must fix,
// and a supervisor does not restart a role that exits with it.
func (g *globals) refuseWhenCheckFails(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
	waiting := repeat.New(g.log, "waiting to start: cannot reach a database; checking again", repeat.WithLevel(slog.LevelWarn))
	backoff := poll.NewBackoff()
	backoff.MaxInterval = 10 * time.Second
	var problems []preflight.Problem
	for {
		var err error
		if problems, err = app.Check(ctx, cfg); err != nil {
			return g.fail(cmd, exitUsage, err)
		}
		// Brokers that cannot be reached are waited for by the roles
		// themselves, with /readyz and a metric saying so (app.Run).
		problems = slices.DeleteFunc(problems, func(p preflight.Problem) bool { return p.Unreachable && p.Object == app.BrokersObject })
		if !preflight.OnlyUnreachable(problems) {
			break
		}
		// One cause per set of unreachable servers, whatever each attempt
		// got from them (refused, reset, EOF, a timeout).
		var objects, whats []string
		for _, p := range problems {
			if p.Unreachable {
				objects, whats = append(objects, p.Object), append(whats, p.Object+": "+p.What)
			}
		}
		waiting.FailOf(strings.Join(objects, ", "), errors.New(strings.Join(whats, "; ")))
		if err := poll.Sleep(ctx, backoff.NextBackOff()); err != nil {
			return exitError(exitOK) // stopped while waiting: nothing started
		}
	}
	waiting.OK()
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
