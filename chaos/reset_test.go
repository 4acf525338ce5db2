package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestReset_SourceTargetAndBrokerConnectionsLoseNothing runs `tandem run`
// with a fault proxy on each of its paths (the source, the target, an
// external broker that advertises its proxy) and resets every open
// connection of one path at a time (a TCP reset on both sides, as a
// middlebox that drops its state sends), twice per path in a seeded random
// order, under the writer. After each reset apply must make progress again;
// after a source reset capture must stream again. The target then
// converges.
func TestReset_SourceTargetAndBrokerConnectionsLoseNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testResets(t, kind)
		})
	}
}

func testResets(t *testing.T, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, kind)
	srcProxy, tgtProxy := f.throughProxy(t, true, true)
	b := newBroker(t, true)
	td := f.newTandem(t, b.Addrs(), "")
	p := td.start("run")
	td.waitStreaming(p, 1)
	w := f.startWriter(ctx)
	td.waitApplied(ctx, 50)

	type path struct {
		name  string
		proxy *testenv.FaultProxy
	}
	var order []path
	for range 2 {
		order = append(order, path{"source", srcProxy}, path{"target", tgtProxy}, path{"broker", b.proxy})
	}
	rng := rngFor(t)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	slowest := map[string]time.Duration{}
	for i, path := range order {
		streams := p.logged(f.streaming)
		base := td.applied(ctx)
		open := path.proxy.Open()
		path.proxy.Reset()
		at := time.Now()
		if path.name == "source" {
			took := since(t, "capture to stream again after a reset of the source path", at, time.Minute, func() (bool, error) {
				return p.logged(f.streaming) > streams, td.alive()
			})
			slowest["streaming again after a source reset"] = max(slowest["streaming again after a source reset"], took)
		}
		took := td.untilApplied(ctx, "apply to make progress after a reset of the "+path.name+" path", at, base)
		key := "applying again after a " + path.name + " reset"
		slowest[key] = max(slowest[key], took)
		t.Logf("reset %d: %d connections of the %s path; applying again after %s", i+1, open, path.name, took.Round(time.Millisecond))
		if err := poll.Sleep(ctx, time.Duration(200+rng.IntN(1800))*time.Millisecond); err != nil { // a random moment
			t.Fatal(err)
		}
	}
	converged, rows := f.finish(t, ctx, w, td, false)
	measured := []any{}
	for _, k := range []string{"streaming again after a source reset", "applying again after a source reset", "applying again after a target reset", "applying again after a broker reset"} {
		measured = append(measured, k+" within", slowest[k].Round(time.Millisecond))
	}
	measured = append(measured, "converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
	report(t, fmt.Sprintf("%d connection resets, two per path (source, target, broker; seed %d)", len(order), *seedFlag), measured...)
}
