package capturetest

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// busyStatements is how many statements LoadCountsBusyStatements keeps
// running.
const busyStatements = 3

// LoadCountsBusyStatements checks a LoadReader's Load, the source load a
// backfill pauses for: while busy keeps n statements running on the source
// (each waiting for a lock, until release is called), Load counts at least
// n of them. (The server is shared with other tests, so only the lower
// bound is certain.)
func LoadCountsBusyStatements(t *testing.T, r backfill.LoadReader, busy func(ctx context.Context, n int) (release func())) {
	t.Helper()
	ctx := t.Context()
	release := busy(ctx, busyStatements)
	defer release()
	testenv.WaitFor(t, "Load to count the statements kept running", 10*time.Second, func() (bool, error) {
		n, err := r.Load(ctx)
		return n >= busyStatements, err
	})
}
