package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
)

// The large-transaction benchmark measures the capturer's memory in a child
// process of its own (this test binary, run again): the peak RSS of the
// benchmark process itself holds whatever the benchmarks before it peaked
// at (the end-to-end run keeps 200,000 records in the embedded broker), so
// it would hide the capturer's; a fresh process's peak is the capturer's
// alone, above a baseline measured in the same process just before.

const (
	// largeTxRows is the size of the one large transaction.
	largeTxRows = 500_000
	// largeTxControlRows is a smaller transaction captured the same way:
	// memory is bounded when the large one's peak is not much above it.
	largeTxControlRows = 100_000
	// largeTxEnv carries the child's instructions (a largeTxSpec as JSON).
	largeTxEnv = "TANDEM_BENCH_LARGE_TX"
	// largeTxResult prefixes the child's one line of results on stdout.
	largeTxResult = "tandem-bench-large-tx: "
	// largeTxSamples is how many RSS samples the child keeps over a stream.
	largeTxSamples = 10
	// largeTxPace is the rate of the slow consumer that the large
	// transaction is captured for a second time: above what the pipeline
	// delivers end to end, below what the capturer reads, so events queue
	// up between the binlog reader and the consumer, as they do when the
	// pipeline's produce to Kafka pushes back.
	largeTxPace = 100_000
)

// largeTxSpec tells the child what to capture.
type largeTxSpec struct {
	DSN, DB  string
	From     string // the position to stream from (mysql.Position.String)
	Rows     int
	ServerID uint32
	Pace     int // rows/s the consumer takes at most; 0: as fast as they come
	// Slot and Publication name what a PostgreSQL child streams.
	Slot, Publication string
}

// largeTxRun is what the child measured.
type largeTxRun struct {
	Rows        int
	Seconds     float64 // from Stream to the last row
	FirstRow    float64 // seconds from Stream to the first batch
	Batches     int
	MaxBatch    int
	BaseRSS     int64   // VmRSS (KiB) just before streaming, after a GC
	PeakRSS     int64   // VmHWM (KiB) at the end: the peak over the stream
	RSS         []int64 // VmRSS (KiB) at each tenth of the rows
	HeapPeak    uint64  // the largest HeapInuse (bytes) seen at those points
	NumGC       uint32
	GCPauseSecs float64
}

func (r largeTxRun) rate() float64 { return float64(r.Rows) / r.Seconds }

// growth is the peak RSS above the baseline, in MiB.
func (r largeTxRun) growth() float64 { return float64(r.PeakRSS-r.BaseRSS) / 1024 }

// BenchmarkMySQLLargeTransaction commits one INSERT ... SELECT of 500,000
// rows on a MariaDB source and captures it with tandem's capturer (events
// emitted in batches of MaxBatch, the consumer counting them), in a child
// process whose peak RSS is then the capturer's. A 100,000-row transaction
// captured the same way is the control: memory is bounded when the large
// transaction's peak growth is not much above the control's, whatever the
// transaction's size. The limit beside the rate is mariadb-binlog decoding
// the large transaction.
//
// The large transaction is then captured again for a consumer that takes
// at most largeTxPace rows/s, as a pipeline whose Kafka produce pushes back
// does: its peak is reported (not failed) beside the others, since what
// bounds memory then is how far the binlog reader may run ahead.
//
// Each iteration logs its figures; the metrics are the last iteration's.
func BenchmarkMySQLLargeTransaction(b *testing.B) {
	var last largeTx
	for b.Loop() {
		last = measureLargeTx(b)
	}
	last.report(b)
}

// largeTx is what a large-transaction run measured.
type largeTx struct {
	// source names the source ("mysql"), log its change log ("binlog"),
	// and reader the server's own tool that decodes it ("mariadb-binlog").
	source, log, reader string
	large, control      largeTxRun
	paced               largeTxRun // the large transaction for a slow consumer
	readerRate          float64    // reader's rows/s over the large transaction
	logMiB              float64    // the large transaction's size in the log
}

func (l largeTx) report(b *testing.B) {
	b.ReportMetric(float64(l.large.PeakRSS)/1024, "peak_rss_MiB")
	b.ReportMetric(l.large.growth(), "rss_growth_MiB")
	b.ReportMetric(l.control.growth(), "control_rss_growth_MiB")
	b.ReportMetric(l.paced.growth(), "paced_rss_growth_MiB")
	b.ReportMetric(l.large.rate(), "capture_rows/s")
	b.ReportMetric(l.readerRate, l.reader+"_rows/s")
	b.ReportMetric(l.large.rate()/l.readerRate, "capture/"+l.reader)
}

func (l largeTx) summary() string {
	mib := func(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) + " MiB" }
	curve := make([]string, len(l.large.RSS))
	for i, v := range l.large.RSS {
		curve[i] = strconv.FormatFloat(float64(v)/1024, 'f', 0, 64)
	}
	return strings.Join([]string{
		fmt.Sprintf("%s large transaction: one INSERT ... SELECT of %s rows (%.1f MiB of %s), captured in a child process",
			l.source, thousands(float64(l.large.Rows)), l.logMiB, l.log),
		fmt.Sprintf("  %-16s %9s rows/s   (%s decoding it %s/s: %.2fx); %s batches of %s events at most",
			"capture", thousands(l.large.rate()), l.reader, thousands(l.readerRate), l.large.rate()/l.readerRate,
			thousands(float64(l.large.Batches)), thousands(float64(l.large.MaxBatch))),
		fmt.Sprintf("  peak RSS %s = %s baseline + %.1f MiB (control, %s rows: %s = %s + %.1f MiB); RSS at each tenth: %s MiB; largest heap in use %.1f MiB; %d GCs",
			mib(l.large.PeakRSS), mib(l.large.BaseRSS), l.large.growth(), thousands(float64(l.control.Rows)),
			mib(l.control.PeakRSS), mib(l.control.BaseRSS), l.control.growth(), strings.Join(curve, " "),
			float64(l.large.HeapPeak)/(1<<20), l.large.NumGC),
		fmt.Sprintf("  for a consumer taking %s rows/s: peak RSS %s = %s + %.1f MiB, largest heap in use %.1f MiB (%s)",
			thousands(largeTxPace), mib(l.paced.PeakRSS), mib(l.paced.BaseRSS), l.paced.growth(), float64(l.paced.HeapPeak)/(1<<20), l.pacedVerdict()),
	}, "\n")
}

// boundedGrowth is the most the large transaction's capture may grow the
// RSS by (MiB): not much above the control's, five times smaller. Held
// whole, 500,000 events take hundreds of MiB.
func (l largeTx) boundedGrowth() float64 { return 1.5*l.control.growth() + 32 }

func (l largeTx) pacedVerdict() string {
	if l.paced.growth() > l.boundedGrowth() {
		return "NOT bounded: the binlog reader ran ahead of the consumer, holding the decoded events"
	}
	return "bounded"
}

// checkBounded fails the benchmark when the large transaction's capture
// grew the RSS by more than boundedGrowth.
func (l largeTx) checkBounded(b *testing.B) {
	if limit := l.boundedGrowth(); l.large.growth() > limit {
		b.Errorf("memory not bounded: capturing %s rows grew the RSS by %.1f MiB, %s rows by %.1f MiB (allowed: %.1f MiB)",
			thousands(float64(l.large.Rows)), l.large.growth(), thousands(float64(l.control.Rows)), l.control.growth(), limit)
	}
}

// measureLargeTx runs the control and the large transaction on a fresh
// database, each captured by a child process.
func measureLargeTx(b *testing.B) largeTx {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newMySQLEnv(b)
	spec := func(from mysql.Position, rows, pace int) largeTxSpec {
		return largeTxSpec{DSN: e.dsn, DB: e.db, From: from.String(), Rows: rows, ServerID: mysqlServerID(), Pace: pace}
	}
	const child = "TestMySQLLargeTransactionChild"
	l := largeTx{source: "mysql", log: "binlog", reader: "mariadb-binlog"}
	from, _ := e.commitOneTx(ctx, b, 1, largeTxControlRows)
	l.control = runLargeTxChild(ctx, b, child, spec(from, largeTxControlRows, 0))

	from, to := e.commitOneTx(ctx, b, largeTxControlRows+1, largeTxRows)
	l.large = runLargeTxChild(ctx, b, child, spec(from, largeTxRows, 0))
	l.paced = runLargeTxChild(ctx, b, child, spec(from, largeTxRows, largeTxPace))
	read := e.readBinlog(ctx, b, from, to)
	if read.rows != largeTxRows {
		b.Fatalf("mariadb-binlog decoded %d inserted rows between %s and %s, want %d", read.rows, from, to, largeTxRows)
	}
	l.readerRate = largeTxRows / read.took.Seconds()
	if from.File == to.File {
		l.logMiB = float64(to.Offset-from.Offset) / (1 << 20)
	}

	logSummary(b, "\n"+l.summary())
	l.checkBounded(b)
	return l
}

// commitOneTx inserts rows rows from id first in one transaction, and
// returns the binlog positions before it (with the GTID set, which a
// MariaDB capturer resumes from) and after it.
func (e *mysqlEnv) commitOneTx(ctx context.Context, b *testing.B, first int64, rows int) (from, to mysql.Position) {
	b.Helper()
	from, err := binlogEnd(ctx, e.src)
	if err != nil {
		b.Fatal(err)
	}
	var gtid string
	if err := e.src.QueryRowContext(ctx, `SELECT @@GLOBAL.gtid_binlog_pos`).Scan(&gtid); err != nil {
		b.Fatal(err)
	}
	from.GTID = strings.ReplaceAll(strings.TrimSpace(gtid), "\n", "")
	if _, err := e.insertRows(ctx, first, first+int64(rows)-1, 1); err != nil {
		b.Fatal(err)
	}
	if to, err = binlogEnd(ctx, e.src); err != nil {
		b.Fatal(err)
	}
	return from, to
}

// runLargeTxChild runs this test binary again as the child that captures
// spec (the test named child), and returns what it measured.
func runLargeTxChild(ctx context.Context, b *testing.B, child string, spec largeTxSpec) largeTxRun {
	b.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+child+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), largeTxEnv+"="+string(raw))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("large-transaction child: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), largeTxResult); ok {
			var r largeTxRun
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				b.Fatalf("large-transaction child: %v\n%s", err, out)
			}
			return r
		}
	}
	b.Fatalf("large-transaction child printed no result\n%s", out)
	return largeTxRun{}
}

// TestMySQLLargeTransactionChild is BenchmarkMySQLLargeTransaction's child
// process; run by itself (without the environment the benchmark sets) it
// does nothing.
func TestMySQLLargeTransactionChild(t *testing.T) {
	spec, ok := largeTxChildSpec(t)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	store := &capturetest.MemPositions{}
	if err := store.SavePosition(ctx, "bench", spec.From); err != nil {
		t.Fatal(err)
	}
	src, err := newCapture(ctx, spec.DSN, spec.DB, store, spec.ServerID)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := src.Acked().String(); got != spec.From {
		t.Fatalf("capturer starts at %s, want %s", got, spec.From)
	}
	captureLargeTx(ctx, t, src, spec)
}

// largeTxChildSpec returns the spec a large-transaction child was started
// with, or false when the test binary was not started as one.
func largeTxChildSpec(t *testing.T) (largeTxSpec, bool) {
	t.Helper()
	var spec largeTxSpec
	raw := os.Getenv(largeTxEnv)
	if raw == "" {
		return spec, false
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	return spec, true
}

// captureLargeTx is the measurement of a large-transaction child: it
// streams spec.Rows events from src and prints what it measured for the
// parent.
func captureLargeTx(ctx context.Context, t *testing.T, src capture.Source, spec largeTxSpec) {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	// Reset VmHWM to the current RSS (Linux 4.0+): the peak is then the
	// stream's. Where that is refused, the peak includes the start-up's,
	// which is below the baseline anyway.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	r := largeTxRun{Rows: spec.Rows, BaseRSS: procStatus(t, "VmRSS")}
	var ms runtime.MemStats
	nextSample := spec.Rows / largeTxSamples
	begin := time.Now()
	pace := time.NewTimer(0) // the slow consumer's schedule: row n taken at begin + n/Pace
	defer pace.Stop()
	got, err := streamRows(ctx, src, spec.Rows, func(n int) {
		if r.FirstRow == 0 {
			r.FirstRow = time.Since(begin).Seconds()
		}
		if spec.Pace > 0 {
			pace.Reset(time.Until(begin.Add(time.Duration(n) * time.Second / time.Duration(spec.Pace))))
			<-pace.C
		}
		if n < nextSample {
			return
		}
		nextSample += spec.Rows / largeTxSamples
		r.RSS = append(r.RSS, procStatus(t, "VmRSS"))
		runtime.ReadMemStats(&ms)
		r.HeapPeak = max(r.HeapPeak, ms.HeapInuse)
	})
	if err != nil {
		t.Fatal(err)
	}
	r.PeakRSS = procStatus(t, "VmHWM")
	runtime.ReadMemStats(&ms)
	r.Seconds, r.Batches, r.MaxBatch = got.took.Seconds(), got.batches, got.maxBatch
	r.NumGC, r.GCPauseSecs = ms.NumGC, time.Duration(ms.PauseTotalNs).Seconds()
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(largeTxResult + string(out))
}

// procStatus reads a field of /proc/self/status in KiB ("VmRSS", "VmHWM").
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	return procStatusOf(t, "self", field)
}

// procStatusOf reads a field of /proc/<pid>/status in KiB.
func procStatusOf(t testing.TB, pid, field string) int64 {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%s/status %s: %v", pid, field, err)
			}
			return v
		}
	}
	t.Fatalf("/proc/%s/status has no %s", pid, field)
	return 0
}
