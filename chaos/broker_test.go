package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
)

// TestBroker_ExternalBrokerRestartLosesNothing runs `tandem run` against
// an external broker (kafka.brokers) that keeps its data on disk, and
// restarts the broker on the same port under the writer: closed (every
// connection ends), down for 5 s, started again from its data. Capture and
// apply must reconnect by themselves, and the target converge.
func TestBroker_ExternalBrokerRestartLosesNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const down = 5 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			f := openFlow(ctx, t, kind)
			b := newBroker(t, false)
			td := f.newTandem(t, b.Addrs(), "")
			p := td.start("run")
			td.waitStreaming(p, 1)
			w := f.startWriter(ctx)
			td.waitApplied(ctx, 50)

			b.stop()
			stopped := time.Now()
			if err := poll.Sleep(ctx, down); err != nil {
				t.Fatal(err)
			}
			base := td.applied(ctx)
			b.start()
			started := time.Now()
			resumed := td.untilApplied(ctx, "apply to make progress after the broker restart", started, base)
			converged, rows := f.finish(t, ctx, w, td, false)
			report(t, "the external broker stopped for "+down.String()+" and restarted on the same port from its data",
				"broker down for", started.Sub(stopped).Round(time.Millisecond), "applying again after", resumed.Round(time.Millisecond),
				"converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
		})
	}
}
