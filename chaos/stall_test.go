package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
)

// stallFor is how long a stalled path stays stalled.
const stallFor = 90 * time.Second

// TestStall_PostgresReplicationPathNinetySecondsIsDetectedThenConverges
// stalls every open connection between tandem and its PostgreSQL source
// (a NAT or firewall that lost their state: the sockets stay open and
// nothing is forwarded, either way) for 90 s under the writer. Capture
// must notice the silent replication stream (no answer to its status
// update within its silence timeout), log it naming the slot, reopen the
// stream through a new connection and go on; the target converges.
func TestStall_PostgresReplicationPathNinetySecondsIsDetectedThenConverges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, postgres)
	srcProxy, _ := f.throughProxy(t, true, false)
	td := f.newTandem(t, nil, "")
	p := td.start("run")
	td.waitStreaming(p, 1)
	w := f.startWriter(ctx)
	td.waitApplied(ctx, 50)

	srcProxy.Stall()
	at := time.Now()
	detected := since(t, "the hung replication stream to be noticed", at, time.Minute, func() (bool, error) {
		return p.logged("the connection seems hung") > 0, td.alive()
	})
	back := since(t, "capture to stream again", at, time.Minute, func() (bool, error) {
		return p.logged(f.streaming) > 1, td.alive()
	})
	base := td.applied(ctx)
	applying := td.untilApplied(ctx, "apply to make progress again", at, base)
	if err := poll.Sleep(ctx, stallFor-time.Since(at)); err != nil {
		t.Fatal(err)
	}
	srcProxy.Reset() // the stalled connections end
	converged, rows := f.finish(t, ctx, w, td, false)
	report(t, "every open connection of the source path stalled for 90 s",
		"detected after", detected.Round(time.Millisecond), "streaming again after", back.Round(time.Millisecond),
		"applying again after", applying.Round(time.Millisecond), "converged after the writer stopped in", converged.Round(time.Millisecond),
		"operations written", f.written(), "rows compared", rows)
}
