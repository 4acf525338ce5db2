package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tandemcdc/tandem/internal/config"
)

// runPreview runs the mappings of one source table on a few of its rows and
// prints what would be written and the inverse round trip; it writes nothing.
func runPreview(ctx context.Context, cfg *config.Config, table string, limit int, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "tandem preview: not available in this build yet")
	return exitUsage
}
