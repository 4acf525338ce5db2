package chaos

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestTargetDown_TwentySecondsPausesThenResumesLosingNothing puts a fault
// proxy between tandem and its target. At start the target's port accepts
// and at once closes each connection (a server starting up, a proxy with no
// backend): `tandem run` waits, says so once, and streams as soon as the
// target can be reached, instead of exiting 2 like a config error. Then,
// under the writer, the target goes down for 20 s (new connections
// refused, open ones reset): the mapping must show paused or /readyz fail,
// and once the target is back, apply resumes by itself and the target
// converges.
func TestTargetDown_TwentySecondsPausesThenResumesLosingNothing(t *testing.T) {
	t.Parallel()
	for _, kind := range sources {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testTargetDown(t, kind)
		})
	}
}

func testTargetDown(t *testing.T, kind string) {
	const outage = 20 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, kind)
	_, proxy := f.throughProxy(t, false, true)
	proxy.Refuse()
	td := f.newTandem(t, nil, "")
	p := td.start("run")
	testenv.WaitFor(t, "three checks of the unreachable target", time.Minute, func() (bool, error) {
		return proxy.Refused() >= 3, td.alive()
	})
	const waiting = `level=WARN msg="waiting to start: cannot reach a database`
	td.waitLogged(p, waiting, 1, 30*time.Second)
	refused := proxy.Refused()
	proxy.Forward()
	td.waitStreaming(p, 1)
	if n := p.logged(waiting); n != 1 {
		t.Errorf("%d lines for %d failed checks of one cause, want 1:\n%s", n, refused, td.output())
	}
	if p.logged("works again") == 0 {
		t.Errorf("no line says the wait ended:\n%s", td.output())
	}

	w := f.startWriter(ctx)
	td.waitApplied(ctx, 50)
	addr := td.addr(p)
	proxy.Refuse()
	proxy.Reset()
	down := time.Now()
	var sign string
	detected := since(t, "the mapping paused or /readyz failing", down, outage, func() (bool, error) {
		paused, err := tandemtest.Metric(addr, "tandem_mapping_paused")
		if err != nil {
			return false, err
		}
		if paused > 0 {
			sign = "tandem_mapping_paused"
		} else if code, _ := tandemtest.Readyz(addr); code != http.StatusOK {
			sign = "/readyz"
		}
		return sign != "", td.alive()
	})
	if err := poll.Sleep(ctx, outage-time.Since(down)); err != nil { // the rest of the outage
		t.Fatal(err)
	}
	base := td.applied(ctx)
	proxy.Forward()
	up := time.Now()
	resumed := td.untilApplied(ctx, "apply to resume", up, base)
	converged, rows := f.finish(t, ctx, w, td, false)
	report(t, "target unreachable at start, then down 20 s under load (refused and reset through a proxy)",
		"detected ("+sign+") after", detected.Round(time.Millisecond), "apply resumed after", resumed.Round(time.Millisecond),
		"converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
}
