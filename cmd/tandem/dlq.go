package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/sink"
)

// maxImageBytes bounds how much of a row image `dlq list` prints.
const maxImageBytes = 400

// newDLQCmd builds `tandem dlq` and its verbs list, replay and drop.
func newDLQCmd(g *globals) *cobra.Command {
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "the dead letters kept in the target: list, replay, drop",
		Long: `A change that cannot be transformed or written is dead-lettered: kept in the
target with its error and original record while the rest of the stream goes
on. List them, replay them once the mapping is fixed, or drop the ones no
replay can re-sync.`,
		Args: cobra.ArbitraryArgs,
		// Only its verbs run: "tandem dlq [flags]" is no way to call it.
		DisableFlagsInUseLine: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("want `tandem dlq list`, `tandem dlq replay` or `tandem dlq drop`")
		},
	}
	dlq.AddCommand(newDLQListCmd(g), newDLQReplayCmd(g), newDLQDropCmd(g))
	return dlq
}

// dlqVerb builds the dlq verb use; run runs it with the config loaded.
func dlqVerb(g *globals, use, short, long string, run func(context.Context, *config.Config) int) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  noArgs,
		RunE: g.withConfig(func(ctx context.Context, cmd *cobra.Command, cfg *config.Config) error {
			return exitErrorOf(run(ctx, cfg))
		}),
	}
}

// newDLQListCmd builds `tandem dlq list`.
func newDLQListCmd(g *globals) *cobra.Command {
	var mapping string
	var limit int
	cmd := dlqVerb(g, "list -c tandem.yaml [--mapping M] [--limit N]", "show the dead letters kept in the target",
		`Show the dead letters kept in the target, oldest first: when, mapping, reason,
the source row and position, the Kafka coordinates, the error and the change.`,
		func(ctx context.Context, cfg *config.Config) int {
			return runDLQList(ctx, cfg, mapping, limit, g.stdout, g.stderr)
		})
	cmd.Flags().StringVar(&mapping, "mapping", "", "only this `mapping`'s dead letters")
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many dead letters (0: all)")
	return cmd
}

// newDLQReplayCmd builds `tandem dlq replay`.
func newDLQReplayCmd(g *globals) *cobra.Command {
	var mapping string
	cmd := dlqVerb(g, "replay -c tandem.yaml [--mapping M]", "re-sync the rows of dead letters with the fixed mapping",
		`Re-sync the rows of the dead letters from the source with the current
mapping, and remove the dead letters re-synced. Exit 0 when every dead
letter is gone, 1 when some still fail (each printed with its error).`,
		func(ctx context.Context, cfg *config.Config) int {
			return runDLQReplay(ctx, cfg, mapping, g.log, g.stdout, g.stderr)
		})
	cmd.Flags().StringVar(&mapping, "mapping", "", "only this `mapping`'s dead letters")
	return cmd
}

// newDLQDropCmd builds `tandem dlq drop`.
func newDLQDropCmd(g *globals) *cobra.Command {
	var mapping string
	var f dropFlags
	cmd := dlqVerb(g, "drop -c tandem.yaml [--mapping M] (--topic T --partition P --offset O | --all)",
		"remove dead letters without re-syncing their rows",
		`Remove dead letters without re-syncing their rows: one, named by its Kafka
coordinates as `+"`tandem dlq list`"+` shows them, or --all (of --mapping).`,
		func(ctx context.Context, cfg *config.Config) int {
			return runDLQDrop(ctx, cfg, mapping, f, g.stdout, g.stderr)
		})
	fs := cmd.Flags()
	fs.StringVar(&mapping, "mapping", "", "only this `mapping`'s dead letters")
	fs.StringVar(&f.topic, "topic", "", "the dead letter's Kafka `topic`, as tandem dlq list shows it")
	fs.IntVar(&f.partition, "partition", -1, "its partition")
	fs.Int64Var(&f.offset, "offset", -1, "its offset")
	fs.BoolVar(&f.all, "all", false, "every dead letter (of --mapping)")
	return cmd
}

// runDLQList prints the dead letters kept in the target, oldest first.
func runDLQList(ctx context.Context, cfg *config.Config, mapping string, limit int, stdout, stderr io.Writer) int {
	store, closeStore, err := app.ListDeadLetters(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tandem dlq list: %v\n", err)
		return exitFailed
	}
	defer closeStore()
	total, err := store.CountDeadLetters(ctx, mapping)
	if se := (*sink.Error)(nil); errors.As(err, &se) && se.Reason == "table_missing" {
		total, err = 0, nil // tandem never kept anything in this target
	}
	if err == nil && total > 0 {
		var dls []sink.StoredDeadLetter
		if dls, err = store.DeadLetters(ctx, mapping, limit); err == nil {
			printDeadLetters(stdout, dls, total)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "tandem dlq list: %v\n", err)
		return exitFailed
	}
	if total == 0 {
		fmt.Fprintf(stdout, "no dead letters%s\n", ofMapping(mapping))
	}
	return exitOK
}

func ofMapping(mapping string) string {
	if mapping == "" {
		return ""
	}
	return " of mapping " + mapping
}

// printDeadLetters prints dls, the first of total, each as a block:
//
//	2024-05-01 12:00:00 UTC  shop.orders  transform
//	  source  shop.orders id=2 at 0/16B3F28, committed 2024-05-01 11:59:59.870 UTC
//	  kafka   shop.shop.orders partition 1 offset 7
//	  error   mapping shop.orders: to[0].columns.status: ...
//	  change  u  before {...}  after {...}
func printDeadLetters(w io.Writer, dls []sink.StoredDeadLetter, total int) {
	if total == 1 {
		fmt.Fprintln(w, "1 dead letter:")
	} else {
		fmt.Fprintf(w, "%d dead letters, oldest first:\n", total)
	}
	for _, d := range dls {
		fmt.Fprintf(w, "\n%s  %s  %s\n", d.Stored.UTC().Format("2006-01-02 15:04:05 UTC"), d.Mapping, d.Reason)
		ev, err := change.Decode(d.Key, d.Value)
		if err == nil {
			key := string(d.Key)
			if len(ev.Key) > 0 {
				key = resync.KeyString(ev.Key, ev.KeyRow())
			}
			fmt.Fprintf(w, "  source  %s %s at %s, committed %s\n", ev.Table, key, ev.Pos, ev.Commit.UTC().Format("2006-01-02 15:04:05.000 UTC"))
		}
		fmt.Fprintf(w, "  kafka   %s partition %d offset %d\n", d.Topic, d.Partition, d.Offset)
		fmt.Fprintf(w, "  error   %s\n", d.Error)
		if err != nil {
			fmt.Fprintf(w, "  record  %s (does not decode)\n", shorten(strconv.Quote(string(d.Value))))
			continue
		}
		fmt.Fprintf(w, "  change  %s%s\n", ev.Op, images(d.Value))
	}
	if more := total - len(dls); more > 0 {
		fmt.Fprintf(w, "\n… and %d more (--limit 0 shows all)\n", more)
	}
}

// images renders a change record's before and after images, as the
// envelope holds them (columns in table order), compact; null ones left out.
func images(value []byte) string {
	var env struct{ Before, After json.RawMessage }
	if err := json.Unmarshal(value, &env); err != nil {
		return ""
	}
	out := ""
	for _, img := range []struct {
		name string
		raw  json.RawMessage
	}{{"before", env.Before}, {"after", env.After}} {
		if len(img.raw) == 0 || string(img.raw) == "null" {
			continue
		}
		var b bytes.Buffer
		if err := json.Compact(&b, img.raw); err != nil {
			continue
		}
		out += "  " + img.name + " " + shorten(b.String())
	}
	return out
}

// shorten cuts s to about maxImageBytes, on a rune boundary.
func shorten(s string) string {
	if len(s) <= maxImageBytes {
		return s
	}
	cut := maxImageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
}

// runDLQReplay re-syncs the rows of the dead letters with the current
// mapping and prints what still fails: exit 0 when every dead letter is
// gone, 1 when some remain.
func runDLQReplay(ctx context.Context, cfg *config.Config, mapping string, _ *slog.Logger, stdout, stderr io.Writer) int {
	rep, err := app.ReplayDeadLetters(ctx, cfg, mapping)
	if errors.Is(err, app.ErrUnknownMapping) {
		fmt.Fprintf(stderr, "tandem dlq replay: %v\n", err)
		return exitUsage
	}
	if rep != nil {
		printReplay(stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tandem dlq replay: %v\n", err)
		return exitFailed
	}
	if len(rep.Failures) > 0 {
		return exitFailed
	}
	return exitOK
}

// printReplay prints each failure, then the summary.
func printReplay(w io.Writer, rep *resync.Report) {
	if rep.Rows == 0 && len(rep.Failures) == 0 {
		fmt.Fprintln(w, "no dead letters to replay")
		return
	}
	for _, f := range rep.Failures {
		what := f.Mapping
		if f.Key != "" {
			what += " " + f.Key
		}
		fmt.Fprintf(w, "still failing: %s (%s kept): %v\n", what, plural(len(f.DeadLetters), "dead letter"), f.Err)
	}
	fmt.Fprintf(w, "re-synced %s, removed %s, %d still failing (%s kept)\n",
		plural(rep.Rows, "row"), plural(rep.Removed, "dead letter"), len(rep.Failures), plural(rep.Kept(), "dead letter"))
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// dropFlags select the dead letters `tandem dlq drop` removes: one by its
// Kafka coordinates, or all of them.
type dropFlags struct {
	topic     string
	partition int
	offset    int64
	all       bool
}

// runDLQDrop removes dead letters without re-syncing their rows and names
// each one removed: exit 0, or 1 when the one named is not there, 2 for a
// selection that is neither one dead letter nor --all.
func runDLQDrop(ctx context.Context, cfg *config.Config, mapping string, f dropFlags, stdout, stderr io.Writer) int {
	one := f.topic != "" || f.partition >= 0 || f.offset >= 0
	if one == f.all || (one && (f.topic == "" || f.partition < 0 || f.offset < 0)) {
		fmt.Fprintln(stderr, "tandem dlq drop: name one dead letter (--topic, --partition and --offset, as `tandem dlq list` shows them) or --all")
		return exitUsage
	}
	dropped, err := app.DropDeadLetters(ctx, cfg, mapping, func(id sink.DeadLetterID) bool {
		return f.all || id.Topic == f.topic && id.Partition == int32(f.partition) && id.Offset == f.offset
	})
	if errors.Is(err, app.ErrUnknownMapping) {
		fmt.Fprintf(stderr, "tandem dlq drop: %v\n", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "tandem dlq drop: %v\n", err)
		return exitFailed
	}
	for _, id := range dropped {
		fmt.Fprintf(stdout, "dropped %s  %s partition %d offset %d\n", id.Mapping, id.Topic, id.Partition, id.Offset)
	}
	switch {
	case len(dropped) > 0:
		fmt.Fprintf(stdout, "dropped %s; their rows were not re-synced\n", plural(len(dropped), "dead letter"))
	case f.all:
		fmt.Fprintf(stdout, "no dead letters%s to drop\n", ofMapping(mapping))
	default:
		fmt.Fprintf(stderr, "tandem dlq drop: no dead letter%s at %s partition %d offset %d\n", ofMapping(mapping), f.topic, f.partition, f.offset)
		return exitFailed
	}
	return exitOK
}
