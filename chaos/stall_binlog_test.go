package chaos

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
)

// TestStall_MariaDBBinlogPathNinetySecondsIsDetectedThenConverges hangs
// the path between tandem and its MariaDB source for 90 s under the
// writer (which writes to the server directly), with the default
// source.stream_timeout (30 s), so that what it shows is what users get.
// Two ways:
//
//   - stall: every open connection (the binlog stream, the lease, the
//     SQL ones) stops forwarding and stays open; new ones go through.
//     Capture must take the silent binlog stream for hung within a minute,
//     say so naming the server, reopen it through a new connection and
//     stream again while the old ones stay stalled.
//   - blackhole: the open connections stall and new ones are held open
//     unanswered, for the whole 90 s. Within a minute a log line must name
//     the server, tandem_capture_streaming drop to 0 and /readyz fail;
//     capture streams again by itself once the path is back.
//
// Either way the target then converges exactly.
func TestStall_MariaDBBinlogPathNinetySecondsIsDetectedThenConverges(t *testing.T) {
	t.Parallel()
	for _, blackhole := range []bool{false, true} {
		name := "stall"
		if blackhole {
			name = "blackhole"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testBinlogStall(t, blackhole)
		})
	}
}

func testBinlogStall(t *testing.T, blackhole bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := openFlow(ctx, t, mariadb)
	srcProxy, _ := f.throughProxy(t, true, false)
	td := f.newTandem(t, nil, "")
	p, w, addr := td.runUnderWriter(ctx)

	injected := hang(t, srcProxy, "binlog", blackhole)
	at := time.Now()
	const (
		logLine      = "a log line naming the server"
		notStreaming = "tandem_capture_streaming 0"
		notReady     = "/readyz failing"
	)
	seen := td.watch(at, detectWithin,
		sign{logLine, func() (bool, error) { return p.loggedAll("seems hung", srcProxy.Addr()) > 0, nil }, true},
		sign{notStreaming, func() (bool, error) {
			v, err := tandemtest.Metric(addr, "tandem_capture_streaming")
			return v == 0, err
		}, blackhole},
		sign{notReady, func() (bool, error) {
			code, _ := tandemtest.Readyz(addr)
			return code == http.StatusServiceUnavailable, nil
		}, blackhole},
	)
	measured := []any{}
	for _, s := range []string{logLine, notStreaming, notReady} {
		measured = append(measured, s+" after", shown(seen, s))
	}
	if !blackhole {
		// The stalled connections stay so; capture must not wait on them.
		back := since(t, "capture to stream again through a new connection while the old ones stay stalled", at, stallFor-time.Since(at), func() (bool, error) {
			return p.logged(f.streaming) > 1, td.alive()
		})
		base := td.applied(ctx)
		applying := since(t, "apply to make progress again while the old connections stay stalled", at, stallFor-time.Since(at), func() (bool, error) {
			n, err := tandemtest.AppliedOffsets(ctx, f.tgt)
			return n > base, err
		})
		measured = append(measured, "streaming again after", back.Round(time.Millisecond), "applying again after", applying.Round(time.Millisecond))
	}
	if err := poll.Sleep(ctx, stallFor-time.Since(at)); err != nil {
		t.Fatal(err)
	}
	streams := p.logged(f.streaming)
	srcProxy.Forward()
	srcProxy.Reset() // the stalled connections end
	up := time.Now()
	if blackhole {
		back := since(t, "capture to stream again once the binlog path is back", up, time.Minute, func() (bool, error) {
			return p.logged(f.streaming) > streams, td.alive()
		})
		ready := td.readyAgain(addr, up, time.Minute)
		measured = append(measured, "streaming after the path came back in", back.Round(time.Millisecond), "ready again in", ready)
	}
	converged, rows := f.finish(t, ctx, w, td, false)
	measured = append(measured, "converged after the writer stopped in", converged.Round(time.Millisecond), "operations written", f.written(), "rows compared", rows)
	report(t, injected, measured...)
}
