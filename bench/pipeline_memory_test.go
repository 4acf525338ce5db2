package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/testenv"
)

// The pipeline's memory: what a user runs (the tandem binary), not the
// capturer alone (pg_memory_test.go, mysql_memory_test.go). Each case
// starts the processes as children, commits one large transaction of each
// kind on the source (an INSERT ... SELECT, an UPDATE of every row, a
// DELETE of every row), waits until the target holds exactly the source's
// rows (count and md5 of the ordered rows on both sides), and reads each
// child's peak RSS (VmHWM, reset before each transaction) for it.

// pipelineMemBound is the most a tandem process may peak at (MiB) on any
// transaction, whatever its size: the bound issue 18 sets.
const pipelineMemBound = 256

// pipelineMemOps are the transactions of a case, in order: each leaves the
// table as the next needs it.
var pipelineMemOps = []struct {
	name string
	sql  string // $1: the row count, in the INSERT
}{
	{"insert", `INSERT INTO bench.items (id, name, qty, price)
SELECT g, 'item-' || g, g % 100, (g % 100000) / 100.0 FROM generate_series(1, $1::bigint) g`},
	{"update", `UPDATE bench.items SET qty = qty + 1, name = name || '-updated', updated_at = clock_timestamp()`},
	{"delete", `DELETE FROM bench.items`},
}

// BenchmarkPipelineMemory measures the peak RSS of `tandem run` (capture,
// embedded broker and apply in one process) and, separately, of `tandem
// apply` (beside a `tandem capture`, over a Kafka broker this process
// serves on loopback), over one transaction of 100,000 and of 1,000,000
// rows of each kind, PostgreSQL -> PostgreSQL. Beside each peak: the rows/s
// from the source's commit to the last row in the target, against a COPY
// of as many rows into the target's server in the same run. A peak above
// pipelineMemBound fails the benchmark.
func BenchmarkPipelineMemory(b *testing.B) {
	bin := buildTandem(b)
	for _, mode := range []string{"run", "apply"} {
		for _, rows := range []int{100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s_%dk_rows", mode, rows/1000), func(b *testing.B) {
				var last pipelineMem
				for b.Loop() {
					last = measurePipelineMem(b, bin, mode, rows)
				}
				last.report(b)
			})
		}
	}
}

// pipelineMem is what one case measured.
type pipelineMem struct {
	mode string // run, or apply (with a separate capture)
	rows int
	ops  []pipelineMemOp
	copy float64 // COPY of rows rows into the target's server, rows/s
}

// pipelineMemOp is what one transaction of a case measured.
type pipelineMemOp struct {
	name    string
	rate    float64 // rows/s from the commit to the target converged
	peakKiB int64   // VmHWM of the measured process (run, or apply)
	// capKiB is VmHWM of the separate capture process (apply mode).
	capKiB int64
	// heap is the largest go_memstats_heap_inuse_bytes seen while waiting.
	heap float64
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func (m pipelineMem) report(b *testing.B) {
	for _, op := range m.ops {
		b.ReportMetric(mib(op.peakKiB), op.name+"_peak_rss_MiB")
		b.ReportMetric(op.rate, op.name+"_rows/s")
	}
	b.ReportMetric(m.copy, "copy_rows/s")
}

func (m pipelineMem) summary() string {
	what := "tandem run (capture, embedded broker, apply)"
	if m.mode == "apply" {
		what = "tandem apply (beside tandem capture, broker on loopback)"
	}
	lines := []string{fmt.Sprintf("%s, one transaction of %s rows each, PostgreSQL -> PostgreSQL (COPY of as many rows: %s rows/s):",
		what, thousands(float64(m.rows)), thousands(m.copy))}
	for _, op := range m.ops {
		line := fmt.Sprintf("  %-6s peak RSS %6.1f MiB (bound %d)  %9s rows/s (%.2fx COPY)  largest heap in use seen %.0f MiB",
			op.name, mib(op.peakKiB), pipelineMemBound, thousands(op.rate), op.rate/m.copy, op.heap/(1<<20))
		if m.mode == "apply" {
			line += fmt.Sprintf("; capture process peak %.1f MiB", mib(op.capKiB))
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// measurePipelineMem runs one case on fresh databases (and, in apply mode,
// a fresh broker), and fails b when a peak is above pipelineMemBound.
func measurePipelineMem(b *testing.B, bin, mode string, rows int) pipelineMem {
	m := pipelineMem{mode: mode, rows: rows}
	e := newEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(pipelineMemOps)+1)*pipelineMemWithin(rows))
	defer cancel()
	m.ops = runPipelineMem(ctx, b, e, bin, mode, rows, len(pipelineMemOps))
	m.copy = float64(rows) / e.copyN(ctx, b, rows).Seconds()
	logSummary(b, m.summary())
	for _, op := range m.ops {
		if mib(op.peakKiB) > pipelineMemBound {
			b.Errorf("tandem %s peaked at %.1f MiB on a %s of %d rows, above %d MiB", mode, mib(op.peakKiB), op.name, rows, pipelineMemBound)
		}
	}
	return m
}

// runPipelineMem starts tandem on e in mode, commits the first ops
// transactions of pipelineMemOps of rows rows one after the other, each
// once the target holds the previous one, and returns what each measured.
func runPipelineMem(ctx context.Context, tb testing.TB, e *env, bin, mode string, rows, ops int) []pipelineMemOp {
	tb.Helper()
	var brokers []string
	if mode == "apply" {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			tb.Fatal(err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
	}
	cfgPath := filepath.Join(tb.TempDir(), "tandem.yaml")
	if err := os.WriteFile(cfgPath, []byte(scaleOutConfig(e, brokers)), 0o600); err != nil {
		tb.Fatal(err)
	}
	var measured, capture *child
	if mode == "run" {
		measured = startChild(tb, bin, "run", cfgPath)
	} else {
		capture = startChild(tb, bin, "capture", cfgPath)
		measured = startChild(tb, bin, "apply", cfgPath)
	}
	if _, err := poll(time.Minute, func() (bool, error) {
		for _, c := range []*child{measured, capture} {
			if c == nil {
				continue
			}
			if ok, err := c.ready(); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		tb.Fatalf("tandem not ready: %v", err)
	}
	var out []pipelineMemOp
	applied := 0.0
	for _, op := range pipelineMemOps[:ops] {
		for _, c := range []*child{measured, capture} {
			if c != nil {
				c.resetPeak(tb)
			}
		}
		var args []any
		if strings.Contains(op.sql, "$1") {
			args = append(args, rows)
		}
		if _, err := e.src.Exec(ctx, op.sql, args...); err != nil {
			tb.Fatalf("%s of %d rows: %v", op.name, rows, err)
		}
		committed := time.Now()
		applied += float64(rows)
		r := pipelineMemOp{name: op.name}
		done := waitConverged(ctx, tb, e, measured, capture, applied, pipelineMemWithin(rows), &r.heap)
		r.rate = float64(rows) / done.Sub(committed).Seconds()
		r.peakKiB = measured.peak(tb)
		if capture != nil {
			r.capKiB = capture.peak(tb)
		}
		out = append(out, r)
	}
	for _, c := range []*child{measured, capture} {
		if c != nil {
			c.stop()
		}
	}
	if err := dropSlot(ctx, e.src, e.slot); err != nil {
		tb.Fatal(err)
	}
	return out
}

// waitConverged waits until the applying child has counted applied rows
// written in all (tandem_apply_rows_total) and then until the target holds
// exactly the source's rows, and returns when that was first seen. heap
// gets the largest heap in use the child reported meanwhile.
func waitConverged(ctx context.Context, tb testing.TB, e *env, applier, capture *child, applied float64, within time.Duration, heap *float64) time.Time {
	tb.Helper()
	var seen float64
	if _, err := poll(within, func() (bool, error) {
		for _, c := range []*child{applier, capture} {
			if c != nil && c.hasExited() {
				return false, fmt.Errorf("tandem %s exited: %v\n%s", c.name, c.err, c.out.String())
			}
		}
		m, err := applier.metrics()
		if err != nil {
			return false, nil // a scrape that failed is tried again
		}
		*heap = max(*heap, m["go_memstats_heap_inuse_bytes"])
		seen = m["tandem_apply_rows_total"]
		return seen >= applied, nil
	}); err != nil {
		tb.Fatalf("tandem applied %.0f rows, want %.0f: %v", seen, applied, err)
	}
	var src, tgt rowsDigest
	done, err := poll(within, func() (bool, error) {
		var err error
		if src, err = digest(ctx, e.src, "bench.items"); err != nil {
			return false, err
		}
		if tgt, err = digest(ctx, e.tgt, "public.items"); err != nil {
			return false, err
		}
		return cmp.Equal(src, tgt), nil
	})
	if err != nil {
		tb.Fatalf("target never held the source's rows: %v; digest of the rows (-source +target):\n%s", err, cmp.Diff(src, tgt))
	}
	return done
}

// pipelineMemWithin is how long a transaction of rows rows may take to
// reach the target before the run fails: at least deliverWithin, and
// room for 2,000 rows/s (the machine is shared).
func pipelineMemWithin(rows int) time.Duration {
	return max(deliverWithin, time.Duration(rows/2000)*time.Second)
}

// rowsDigest is a table's row count and the md5 of its rows in key order.
type rowsDigest struct {
	Rows int64
	MD5  string
}

// digest reads the rowsDigest of table's columns that bench.items and
// public.items share, the timestamp as epoch seconds (so the servers'
// time zones do not matter).
func digest(ctx context.Context, db *pgxpool.Pool, table string) (rowsDigest, error) {
	var d rowsDigest
	err := db.QueryRow(ctx, `SELECT count(*), coalesce(md5(string_agg(
	concat_ws('|', id, name, qty, price, extract(epoch FROM updated_at)), ',' ORDER BY id)), '')
FROM `+table).Scan(&d.Rows, &d.MD5)
	if err != nil {
		return d, fmt.Errorf("digest of %s: %w", table, err)
	}
	return d, nil
}

// startChild starts `tandem verb -c cfgPath` with the Go runtime's own
// defaults (GOGC and GOMEMLIMIT left to tandem).
func startChild(tb testing.TB, bin, verb, cfgPath string) *child {
	tb.Helper()
	c := &child{name: verb, out: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, verb, "-c", cfgPath)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	tb.Cleanup(c.stop)
	return c
}

// stop ends the child (SIGTERM, then SIGKILL after 30 s) and waits for it.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *child) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// resetPeak sets the child's VmHWM to its current RSS (Linux 4.0+).
func (c *child) resetPeak(tb testing.TB) {
	tb.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", c.cmd.Process.Pid), []byte("5"), 0); err != nil {
		tb.Fatalf("reset the peak RSS of tandem %s: %v", c.name, err)
	}
}

// peak is the child's VmHWM in KiB.
func (c *child) peak(tb testing.TB) int64 {
	tb.Helper()
	return procStatusOf(tb, strconv.Itoa(c.cmd.Process.Pid), "VmHWM")
}

// metrics scrapes the child's /metrics and sums each family over its
// labels.
func (c *child) metrics() (map[string]float64, error) {
	m := httpAddr.FindStringSubmatch(c.out.String())
	if m == nil {
		return nil, fmt.Errorf("tandem %s has not said where it listens", c.name)
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// labels may hold spaces: the value is the last field
			name = name[:i]
			rest = line[strings.LastIndexByte(line, ' ')+1:]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

// pipelineMemTestRows is the size of the transactions of the memory test
// that runs in `make test`: twice the control of the capture benchmarks,
// large enough that holding one whole would cross the bound.
const pipelineMemTestRows = 200_000

// TestPipelineMemory_ALargeTransactionStaysUnderTheBound runs the tandem
// binary (`tandem run`, the embedded broker: every buffer in one process)
// over one INSERT, one UPDATE and one DELETE of 200,000 rows and fails when its
// peak RSS on any of them is above pipelineMemBound, or when the target
// does not end up with exactly the source's rows. Memory does not depend
// on the machine's speed (what each stage may hold is bounded in bytes or
// records, and the Go runtime's soft limit bounds the rest), so the bound
// holds on a busy CI machine too; only the time taken does not.
func TestPipelineMemory_ALargeTransactionStaysUnderTheBound(t *testing.T) {
	bin := buildTandem(t)
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(pipelineMemOps)+1)*pipelineMemWithin(pipelineMemTestRows))
	defer cancel()
	ops := runPipelineMem(ctx, t, e, bin, "run", pipelineMemTestRows, len(pipelineMemOps))
	for _, op := range ops {
		t.Logf("%s of %d rows: peak RSS %.1f MiB, %.0f rows/s", op.name, pipelineMemTestRows, mib(op.peakKiB), op.rate)
		if mib(op.peakKiB) > pipelineMemBound {
			t.Errorf("tandem run peaked at %.1f MiB on a %s of %d rows, above %d MiB", mib(op.peakKiB), op.name, pipelineMemTestRows, pipelineMemBound)
		}
	}
}
