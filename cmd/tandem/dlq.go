package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/tandemcdc/tandem/internal/config"
)

// runDLQList prints the dead letters kept in the target.
func runDLQList(ctx context.Context, cfg *config.Config, mapping string, limit int, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tandem dlq list: not available in this build yet")
	return exitUsage
}

// runDLQReplay re-syncs the rows of the dead letters with the current mapping.
func runDLQReplay(ctx context.Context, cfg *config.Config, mapping string, log *slog.Logger, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tandem dlq replay: not available in this build yet")
	return exitUsage
}
