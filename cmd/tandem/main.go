// Command tandem streams changes from a live source database into a new
// schema: capture (PostgreSQL WAL or MySQL binlog) -> Kafka -> transform (CEL mappings) ->
// idempotent upserts into the target. See README.md and `tandem help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/backfill/progress"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
)

// estimateSample is how long `tandem backfill --estimate` reads each table.
const estimateSample = 3 * time.Second

// Exit codes (CONTRACT.md).
const (
	exitOK     = 0
	exitFailed = 1 // drift found or check failed
	exitUsage  = 2 // usage or config error
)

// version is set at release build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `tandem: zero-downtime data migrations by change data capture.

Usage: tandem <verb> -c tandem.yaml [flags]

Verbs:
  run        capture, apply and HTTP (/metrics, /healthz, /readyz) in one process
  capture    only source -> Kafka (needs kafka.brokers)
  apply      only Kafka -> transform -> target (needs kafka.brokers)
  backfill   copy the rows the source tables hold now into the target, beside the
             stream, chunked and resumable; exits once the copy is in the target
             (with kafka.brokers set, run it beside capture and apply)
             [--table schema.table]... [--restart] [--estimate]; a live display
             when stdout is a terminal, log lines otherwise; --estimate reads each
             table for a few seconds and projects the copy's duration, writing nothing
  check      preflight: config, connections, source settings, tables, columns,
             and each mapping's inverse round trip on a sample of source rows
  preview    --table schema.table [--limit N]: run the mappings on N source rows and
             print the target rows and the inverse round trip; writes nothing
  reconcile  [--once] [--repair] [--format text|json]: compare the source, mapped, with
             the target (and run reconcile.checks); --once reports and exits 1 on
             drift, 0 without; --repair re-syncs drifted rows and compares again;
             without --once it compares every reconcile.interval, serving /metrics
  dlq list   [--mapping M] [--limit N]: show the dead letters kept in the target
  dlq replay [--mapping M]: re-sync the rows of dead letters with the fixed mapping
  dlq drop   [--mapping M] (--topic T --partition P --offset O | --all): remove dead letters without re-syncing
  slot drop  remove the migration's replication slot and publication when done
  version    version and build info

Flags:
  -c, --config FILE     config file (default tandem.yaml)
  --log-format text|json
  --log-level debug|info|warn|error

Exit codes: 0 ok, 1 check failed, 2 usage or config error.
`

func main() {
	app.TuneRuntime()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	verb, rest := args[0], args[1:]
	if verb == "slot" {
		if len(rest) == 0 || rest[0] != "drop" {
			fmt.Fprintf(stderr, "tandem slot: want `tandem slot drop -c tandem.yaml`\n")
			return exitUsage
		}
		verb, rest = "slot drop", rest[1:]
	}
	if verb == "dlq" {
		if len(rest) == 0 || (rest[0] != "list" && rest[0] != "replay" && rest[0] != "drop") {
			fmt.Fprintf(stderr, "tandem dlq: want `tandem dlq list`, `tandem dlq replay` or `tandem dlq drop`\n")
			return exitUsage
		}
		verb, rest = "dlq "+rest[0], rest[1:]
	}
	fs := flag.NewFlagSet("tandem "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "tandem.yaml", "config file")
	fs.StringVar(cfgPath, "c", "tandem.yaml", "config file (shorthand)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	var tables stringList
	restart, estimate := false, false
	if verb == "backfill" {
		fs.BoolVar(&estimate, "estimate", false, "sample each table's read rate and project the copy's duration, without writing")
		fs.Var(&tables, "table", "copy only this source table (schema.table); repeatable")
		fs.BoolVar(&restart, "restart", false, "forget saved progress and copy every table again")
	}
	var previewTable, dlqMapping string
	var drop dropFlags
	limit := 0
	once, repair, format := false, false, "text"
	switch verb {
	case "reconcile":
		fs.BoolVar(&once, "once", false, "compare once, print the report and exit: 1 on drift, 0 without")
		fs.BoolVar(&repair, "repair", false, "re-sync the drifted rows from the source, then compare again")
		fs.StringVar(&format, "format", "text", "report format: text or json")
	case "preview":
		fs.StringVar(&previewTable, "table", "", "the source table (schema.table) to read rows of")
		fs.IntVar(&limit, "limit", 10, "how many source rows to run the mappings on")
	case "dlq list":
		fs.StringVar(&dlqMapping, "mapping", "", "only this mapping's dead letters")
		fs.IntVar(&limit, "limit", 100, "show at most this many dead letters (0: all)")
	case "dlq replay":
		fs.StringVar(&dlqMapping, "mapping", "", "only this mapping's dead letters")
	case "dlq drop":
		fs.StringVar(&dlqMapping, "mapping", "", "only this mapping's dead letters")
		fs.StringVar(&drop.topic, "topic", "", "the dead letter's Kafka topic, as `dlq list` shows it")
		fs.IntVar(&drop.partition, "partition", -1, "its partition")
		fs.Int64Var(&drop.offset, "offset", -1, "its offset")
		fs.BoolVar(&drop.all, "all", false, "every dead letter (of --mapping)")
	}
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if verb == "reconcile" && format != "text" && format != "json" {
		fmt.Fprintf(stderr, "tandem reconcile: --format %q: want text or json\n", format)
		return exitUsage
	}
	if verb == "preview" && (previewTable == "" || limit <= 0) {
		fmt.Fprintf(stderr, "tandem preview: want --table schema.table and a --limit above 0\n")
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tandem %s: unexpected argument %q\n", verb, fs.Arg(0))
		return exitUsage
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "tandem: %v\n", err)
		return exitUsage
	}
	switch verb {
	case "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "run", "capture", "apply", "check", "slot drop", "backfill", "preview", "dlq list", "dlq replay", "dlq drop", "reconcile":
	default:
		fmt.Fprintf(stderr, "tandem: unknown verb %q\n\n%s", verb, usage)
		return exitUsage
	}

	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "tandem %s: %v\n", verb, err)
		return exitUsage
	}
	if _, err := app.CompileMappings(cfg); err != nil {
		fmt.Fprintf(stderr, "tandem %s: %v\n", verb, err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if verb == "slot drop" {
		dropped, err := connect.DropSlot(ctx, cfg)
		for _, d := range dropped {
			fmt.Fprintf(stdout, "dropped %s\n", d)
		}
		if err != nil {
			fmt.Fprintf(stderr, "tandem slot drop: %v\n", err)
			return exitFailed
		}
		if len(dropped) == 0 {
			fmt.Fprintln(stdout, "nothing to drop: no slot or publication of this migration on the source")
		}
		return exitOK
	}
	switch verb {
	case "reconcile":
		return runReconcile(ctx, cfg, reconcileFlags{once: once, repair: repair, format: format}, log, stdout, stderr)
	case "preview":
		return runPreview(ctx, cfg, previewTable, limit, stdout, stderr)
	case "dlq list":
		return runDLQList(ctx, cfg, dlqMapping, limit, stdout, stderr)
	case "dlq replay":
		return runDLQReplay(ctx, cfg, dlqMapping, log, stdout, stderr)
	case "dlq drop":
		return runDLQDrop(ctx, cfg, dlqMapping, drop, stdout, stderr)
	}
	if verb == "check" {
		problems, err := app.Check(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "tandem check: %v\n", err)
			return exitUsage
		}
		app.PrintProblems(stdout, problems)
		if app.HasFailures(problems) {
			return exitFailed
		}
		return exitOK
	}

	// Refuse to start on what check calls fatal (a missing table, an
	// unreachable database), before anything is created or written.
	problems, err := app.Check(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tandem %s: %v\n", verb, err)
		return exitUsage
	}
	if app.HasFailures(problems) {
		fmt.Fprintf(stderr, "tandem %s: refusing to start, `tandem check -c %s` fails:\n", verb, *cfgPath)
		app.PrintProblems(stderr, problems)
		return exitUsage
	}
	if verb == "backfill" && estimate {
		if err := printEstimate(ctx, cfg, tables, stdout); err != nil {
			fmt.Fprintf(stderr, "tandem backfill --estimate: %v\n", err)
			return exitFailed
		}
		return exitOK
	}
	roles := app.Roles{Capture: verb != "apply", Apply: verb != "capture"}
	opts := app.Options{Roles: roles, Logger: log, Version: version}
	if verb == "backfill" {
		// The copy goes straight to the target. With the embedded broker
		// the stream lives in this process, so it streams and applies too
		// (the target must see the stream's deletes while it copies); with
		// an external cluster it only copies, beside a running `tandem
		// capture` and `apply`.
		embedded := len(cfg.Kafka.Brokers) == 0
		opts.Roles = app.Roles{Capture: embedded, Apply: embedded}
		opts.Backfill = &app.BackfillOptions{Tables: tables, Restart: restart, Done: func(s backfill.Summary) {
			fmt.Fprintf(stdout, "backfill done: %d rows of %d tables in %s (throttled %s); %d tables already done\n",
				s.Rows, s.Tables, s.Took.Round(time.Millisecond), s.Throttled.Round(time.Millisecond), len(s.Skipped))
		}}
		if isTerminal(stdout) {
			// A live display instead of periodic progress log lines; other
			// log lines scroll above it when stderr is the same terminal.
			display := progress.NewDisplay(stdout)
			opts.Backfill.Watch = func(ctx context.Context, r *backfill.Runner) { display.Watch(ctx, 250*time.Millisecond, r.Progress) }
			opts.Backfill.LogEvery = -1
			if isTerminal(stderr) {
				opts.Logger, _ = newLogger(display.Above(stderr), *logFormat, *logLevel)
			}
		}
	}
	err = app.Run(ctx, cfg, opts)
	if errors.Is(err, app.ErrEmbeddedNeedsRun) {
		fmt.Fprintf(stderr, "tandem %s: %s: %v\n", verb, cfg.File, err)
		return exitUsage
	}
	if err != nil {
		log.Error("tandem stopped", "err", err)
		return exitFailed
	}
	return exitOK
}

// printEstimate samples the copy of each table and prints the projection.
// It only reads the source: no slot, no Kafka, nothing in the target.
func printEstimate(ctx context.Context, cfg *config.Config, names []string, stdout io.Writer) error {
	tables, err := app.BackfillTables(cfg, names)
	if err != nil {
		return err
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return err
	}
	defer reader.Close()
	limit := float64(cfg.Backfill.MaxRowsPerSecond)
	rep, err := backfill.Estimate(ctx, reader, backfill.EstimateConfig{Tables: tables, ChunkRows: cfg.Backfill.ChunkRows,
		SampleFor: estimateSample, MaxRowsPerSecond: limit, Parallel: cfg.Backfill.Parallel})
	if err != nil {
		return err
	}
	return progress.PrintEstimate(stdout, rep, limit)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

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

func versionString() string {
	s := "tandem " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		s += " (" + bi.GoVersion
		for _, kv := range bi.Settings {
			if kv.Key == "vcs.revision" {
				s += ", " + kv.Value
			}
		}
		s += ")"
	}
	return s
}
