package chaos

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
)

// soakFor is how long BenchmarkSoak writes: 10 minutes in `make bench`.
var soakFor = flag.Duration("chaos.soak", 10*time.Minute, "how long BenchmarkSoak writes")

// soakRate is the soak's steady writer, transactions a second per source.
const soakRate = 150

// BenchmarkSoak runs `tandem run` for -chaos.soak (10 minutes) under a
// steady writer, a PostgreSQL and a MariaDB source side by side, and
// reports the process's resident memory at the start (streaming, before
// the writer), the middle and the end, the replication lag it reports
// (the largest sample, every 5 s, and the last), and the final exact
// comparison. Not a speed figure: a bound on growth over time.
func BenchmarkSoak(b *testing.B) {
	for _, kind := range sources {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				soak(b, kind)
			}
		})
	}
}

func soak(b *testing.B, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), *soakFor+5*time.Minute)
	defer cancel()
	f := openFlow(ctx, b, kind)
	f.rate = soakRate
	td := f.newTandem(b, nil, "")
	p := td.start("run")
	td.waitStreaming(p, 1)
	addr := td.addr(p)
	pid := p.p.Cmd.Process.Pid
	rssStart := rssMiB(b, pid)
	w := f.startWriter(ctx)
	start := time.Now()
	var rssMid float64
	var lagMax, lagLast float64
	poll.Every(ctx, 5*time.Second, func() bool {
		if err := td.alive(); err != nil {
			b.Fatal(err)
		}
		if lag, err := tandemtest.Metric(addr, "tandem_replication_lag_seconds"); err == nil {
			lagMax, lagLast = max(lagMax, lag), lag
		}
		if rssMid == 0 && time.Since(start) >= *soakFor/2 {
			rssMid = rssMiB(b, pid)
		}
		return time.Since(start) < *soakFor
	})
	rssEnd := rssMiB(b, pid)
	converged, rows := f.finish(b, ctx, w, td, false)
	b.ReportMetric(rssStart, "rss-start-MiB")
	b.ReportMetric(rssMid, "rss-mid-MiB")
	b.ReportMetric(rssEnd, "rss-end-MiB")
	b.ReportMetric(lagMax, "lag-max-s")
	b.Logf("soak %s: %s at %d transactions/s, %d operations; RSS %.0f MiB at start, %.0f MiB in the middle, %.0f MiB at the end; "+
		"replication lag at most %.3f s, %.3f s at the end; converged %s after the writer stopped; %d rows compared, equal; rows lost: 0",
		kind, soakFor.String(), soakRate, f.written(), rssStart, rssMid, rssEnd, lagMax, lagLast, converged.Round(time.Millisecond), rows)
}

// rssMiB is the resident memory of process pid (VmRSS), in MiB.
func rssMiB(b *testing.B, pid int) float64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kib / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
