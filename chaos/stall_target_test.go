package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// TestStall_TargetPathNinetySecondsIsDetectedThenConverges hangs the path
// between tandem and its target for 90 s under the writer, with the
// default target.write_timeout (30 s), so that what it shows is what users
// get. Two ways, one per source:
//
//   - stall (PostgreSQL source): every open connection stops forwarding
//     and stays open (a NAT or firewall that lost their state); new ones
//     go through. Apply must cancel the write left unanswered, say so
//     naming the target's host:port, count the failure, and write again
//     through a new connection while the old ones stay stalled.
//   - blackhole (MariaDB source): the open connections stall and new ones
//     are held open unanswered, for the whole 90 s. The mapping must show
//     paused, /readyz fail and a log line name the target within a minute,
//     tandem_replication_lag_seconds grow with the stall, and apply resume
//     by itself once the path is back.
//
// Either way the target then converges exactly.
func TestStall_TargetPathNinetySecondsIsDetectedThenConverges(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind      string
		blackhole bool
	}{{postgres, false}, {mariadb, true}} {
		name := c.kind + "/stall"
		if c.blackhole {
			name = c.kind + "/blackhole"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testTargetStall(t, c.kind, c.blackhole)
		})
	}
}

// detectWithin bounds how long after a hang begins it must show, in the
// scenarios that keep tandem's default timeouts (target.write_timeout,
// source.stream_timeout: 30 s): one timeout, and 15 s for the checks on a
// loaded machine. A hang that takes two timeouts to show (60 s) fails here
// every time rather than by chance at the minute.
const detectWithin = 30*time.Second + 15*time.Second

func testTargetStall(t *testing.T, kind string, blackhole bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, kind)
	_, proxy := f.throughProxy(t, false, true)
	td := f.newTandem(t, nil, "")
	p, w, addr := td.runUnderWriter(ctx)
	errorsBefore, err := tandemtest.Metric(addr, "tandem_apply_errors_total")
	if err != nil {
		t.Fatal(err)
	}

	injected := hang(t, proxy, "target", blackhole)
	at := time.Now()
	const (
		logLine   = "a log line naming the target"
		paused    = "tandem_mapping_paused"
		notReady  = "/readyz failing"
		errorsInc = "tandem_apply_errors_total counting it"
	)
	seen := td.watch(at, detectWithin,
		sign{logLine, func() (bool, error) {
			return p.loggedAll("(target.write_timeout)", proxy.Addr()) > 0, nil
		}, true},
		sign{paused, func() (bool, error) {
			v, err := tandemtest.Metric(addr, "tandem_mapping_paused")
			return v > 0, err
		}, blackhole},
		sign{notReady, func() (bool, error) {
			code, _ := tandemtest.Readyz(addr)
			return code == http.StatusServiceUnavailable, nil
		}, blackhole},
		sign{errorsInc, func() (bool, error) {
			v, err := tandemtest.Metric(addr, "tandem_apply_errors_total")
			return v > errorsBefore, err
		}, true},
	)
	measured := []any{}
	for _, s := range []string{logLine, paused, notReady, errorsInc} {
		measured = append(measured, s+" after", shown(seen, s))
	}

	if !blackhole {
		// The stalled connections stay so; apply must not wait on them.
		base := td.applied(ctx)
		applying := since(t, "apply to write again through a new connection while the old ones stay stalled", at, stallFor-time.Since(at), func() (bool, error) {
			n, err := tandemtest.AppliedOffsets(ctx, f.tgt)
			return n > base, err
		})
		measured = append(measured, "applying again (old connections still stalled) after", applying.Round(time.Millisecond))
	}
	if err := poll.Sleep(ctx, stallFor-time.Since(at)-time.Second); err != nil {
		t.Fatal(err)
	}
	lag := maxLag(t, addr)
	if blackhole && lag < (stallFor/2).Seconds() {
		t.Errorf("tandem_replication_lag_seconds at most %.1f s near the end of a %s hang of the target, want it grown with the hang (over %s)", lag, stallFor, stallFor/2)
	}
	if err := poll.Sleep(ctx, stallFor-time.Since(at)); err != nil {
		t.Fatal(err)
	}
	base := td.applied(ctx)
	proxy.Forward()
	proxy.Reset() // the stalled connections end
	up := time.Now()
	resumed := td.untilApplied(ctx, "apply to make progress once the target path is back", up, base)
	ready := td.readyAgain(addr, up, time.Minute)
	converged, rows := f.finish(t, ctx, w, td, false)
	if v, err := tandemtest.Metric(addr, "tandem_mapping_paused"); err != nil || v != 0 {
		t.Errorf("tandem_mapping_paused = %v (%v) after convergence, want 0", v, err)
	}
	measured = append(measured, "tandem_replication_lag_seconds near the end of the stall", fmt.Sprintf("%.1f", lag),
		"applying after the path came back in", resumed.Round(time.Millisecond), "ready again in", ready,
		"converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
	report(t, injected, measured...)
}

// hang stalls the path through proxy (path names it in the report), or
// with blackhole blackholes it, for stallFor, and says what it injected.
// Should the scenario end mid-fault, the fault ends before tandem is
// stopped, so that the failure reported is the scenario's, not a shutdown
// through a hung path.
func hang(t testing.TB, proxy *testenv.FaultProxy, path string, blackhole bool) string {
	t.Cleanup(func() { proxy.Forward(); proxy.Reset() })
	if blackhole {
		proxy.Blackhole()
		return fmt.Sprintf("the %s path blackholed for %s (open connections stalled, new ones held open unanswered)", path, stallFor)
	}
	proxy.Stall()
	return fmt.Sprintf("every open connection of the %s path stalled for %s (new ones forwarded)", path, stallFor)
}

// shown is when sign name first held, for a report: "not seen" when the
// watch ended before it did.
func shown(seen map[string]time.Duration, name string) string {
	d, ok := seen[name]
	if !ok {
		return "not seen"
	}
	return d.Round(time.Millisecond).String()
}

// maxLag is the largest tandem_replication_lag_seconds addr serves.
func maxLag(t testing.TB, addr string) float64 {
	t.Helper()
	lags := apptest.Series(apptest.Scraped(addr), "tandem_replication_lag_seconds")
	if len(lags) == 0 {
		t.Fatalf("%s serves no tandem_replication_lag_seconds", addr)
	}
	all := make([]float64, 0, len(lags))
	for _, v := range lags {
		all = append(all, v)
	}
	return slices.Max(all)
}
