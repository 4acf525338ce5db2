package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/config"
)

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
