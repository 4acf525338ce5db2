// Command tandem streams changes from a live source database into a new
// schema: capture (PostgreSQL WAL or MySQL binlog) -> Kafka -> transform (CEL mappings) ->
// idempotent upserts into the target. See README.md and `tandem help`.
//
// The command line is built with cobra: this file holds the root command, the
// flags every verb takes and the mapping of errors to exit codes; each verb's
// flags and help live in the verb's own file (run.go for run, capture and
// apply; backfill.go, check.go, preview.go, reconcile.go, dlq.go, slot.go,
// version.go, completion.go).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

// Exit codes (CONTRACT.md).
const (
	exitOK     = 0
	exitFailed = 1 // drift found, a check failed, or the verb could not do its work
	exitUsage  = 2 // usage or config error
)

// version is set at release build time with -ldflags "-X main.version=...".
var version = "dev"

func init() {
	// The verbs are listed in the order of a migration, not alphabetically.
	cobra.EnableCommandSorting = false
}

func main() {
	app.TuneRuntime()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the tandem command line args (without the program name) and
// returns its exit code: 0 ok, 1 check failed or drift found, 2 usage or
// config error.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRootCmd(g)
	root.SetArgs(append([]string{}, longFlagsWithOneDash(root, args)...)) // never nil: cobra would read os.Args
	cmd, err := root.ExecuteContextC(context.Background())
	return exitCode(cmd, err, stderr)
}

// exitError ends tandem with an exit code; the verb printed its message.
type exitError int

// Error says which exit code e ends tandem with.
func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// exitCode maps the error a command ended with to tandem's exit code. An
// exitError carries its code; every other error comes from parsing the
// command line (an unknown flag or verb, a bad argument or flag value):
// printed with the command's name and a pointer to its help, exit 2.
func exitCode(cmd *cobra.Command, err error, stderr io.Writer) int {
	var e exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &e):
		return int(e)
	}
	name := "tandem"
	if cmd != nil {
		name = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", name, err, name)
	return exitUsage
}

// globals are the flags every verb takes, where tandem writes, and the
// logger the flags select (set before any verb runs).
type globals struct {
	configPath, logFormat, logLevel string
	stdout, stderr                  io.Writer
	log                             *slog.Logger
}

// fail prints err as cmd's error and returns the exitError for code.
func (g *globals) fail(cmd *cobra.Command, code int, err error) error {
	fmt.Fprintf(g.stderr, "%s: %v\n", cmd.CommandPath(), err)
	return exitError(code)
}

// withConfig is a verb's RunE that loads and compiles the config (prepare)
// and runs run under the verb's signal context.
func (g *globals) withConfig(run func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx, stop, cfg, err := g.prepare(cmd.Context(), cmd)
		if err != nil {
			return err
		}
		defer stop()
		return run(ctx, cmd, cfg)
	}
}

// prepare loads the config of a verb that needs one and compiles its
// mappings (exit 2 when either fails), and returns the context the verb
// runs in: ctx, cancelled on SIGINT or SIGTERM until stop is called
// (signalContext).
func (g *globals) prepare(ctx context.Context, cmd *cobra.Command) (context.Context, context.CancelFunc, *config.Config, error) {
	cfg, err := config.Load(g.configPath)
	if err != nil {
		return nil, nil, nil, g.fail(cmd, exitUsage, err)
	}
	if _, err := app.CompileMappings(cfg); err != nil {
		return nil, nil, nil, g.fail(cmd, exitUsage, err)
	}
	ctx, stop := g.signalContext(ctx)
	return ctx, stop, cfg, nil
}

// signalled is the cause of a verb's context when a signal ended it.
type signalled struct{ sig syscall.Signal }

// Error names the signal.
func (s signalled) Error() string { return "received " + s.sig.String() }

// exitCode is the exit code of a run that a signal ended before its work
// was done: 128 plus the signal's number, as a shell reports it (130 for
// SIGINT, 143 for SIGTERM).
func (s signalled) exitCode() int { return 128 + int(s.sig) }

// signalContext returns ctx cancelled on SIGINT or SIGTERM (its cause a
// signalled), until stop is called. SIGHUP is logged and otherwise
// ignored: tandem reads its config only at start, and a terminal hanging
// up or a supervisor's reload signal must not kill a migration in flight.
func (g *globals) signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				sig, _ := s.(syscall.Signal)
				if sig == syscall.SIGHUP {
					g.log.Info("SIGHUP received and ignored: tandem reads its config only at start; restart it to apply a changed config")
					continue
				}
				cancel(signalled{sig})
			}
		}
	}()
	return ctx, sync.OnceFunc(func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	})
}

const rootLong = `tandem: zero-downtime data migrations by change data capture.`

// newRootCmd builds the tandem command with every verb under it.
func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "tandem <verb> -c tandem.yaml [flags]",
		Short: "zero-downtime data migrations by change data capture",
		Long:  rootLong,
		// Parse errors and verb failures are printed, and mapped to exit
		// codes, by run.
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownVerb,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			var err error
			g.log, err = newLogger(g.stderr, g.logFormat, g.logLevel)
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			// No verb: the usage, as a usage error.
			_ = cmd.Help()
			return exitError(exitUsage)
		},
		CompletionOptions:          cobra.CompletionOptions{DisableDefaultCmd: true}, // completion.go's instead
		SuggestionsMinimumDistance: 2,
	}
	root.SetOut(g.stdout)
	root.SetErr(g.stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&g.configPath, "config", "c", "tandem.yaml", "read the config from `FILE`")
	pf.StringVar(&g.logFormat, "log-format", "text", "the log line `format`: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "the lowest `level` logged: debug, info, warn or error")
	_ = root.MarkPersistentFlagFilename("config", "yaml", "yml")
	completeWords(root, "log-format", "text", "json")
	completeWords(root, "log-level", "debug", "info", "warn", "error")

	root.AddCommand(newStreamCmds(g)...)
	root.AddCommand(newBackfillCmd(g), newCheckCmd(g), newPreviewCmd(g), newReconcileCmd(g),
		newDLQCmd(g), newSwitchCmd(g), newStatusCmd(g), newSlotCmd(g), newVersionCmd(g), newCompletionCmd())
	setRootUsage(root)
	return root
}

// unknownVerb refuses any argument to tandem itself: an argument there is
// a verb cobra does not know.
func unknownVerb(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	err := fmt.Errorf("unknown verb %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		err = fmt.Errorf("%w; did you mean %s?", err, strings.Join(s, " or "))
	}
	return err
}

// noArgs refuses arguments to a verb that takes only flags.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected argument %q", args[0])
	}
	return nil
}

// completeWords makes shell completion offer words as the values of cmd's
// flag name (a local or persistent flag of cmd).
func completeWords(cmd *cobra.Command, name string, words ...string) {
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
}

// newLogger returns the logger --log-format and --log-level select.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// exitErrorOf is the error a verb returns for the exit code a run function
// returned, its messages printed: nil for 0.
func exitErrorOf(code int) error {
	if code == exitOK {
		return nil
	}
	return exitError(code)
}
