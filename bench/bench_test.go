package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	pollpkg "github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestMain(m *testing.M) {
	app.TuneRuntime() // as cmd/tandem runs
	os.Exit(testenv.Run(m))
}

const (
	// changes is how many single-row changes a throughput run makes.
	changes = 200_000
	// latencyRate and latencyFor shape the steady load of the latency run.
	latencyRate = 1000
	latencyFor  = 15 * time.Second
	// deliverWithin bounds how long a run may take to deliver its changes
	// before it fails.
	deliverWithin = 5 * time.Minute
	// pollEvery is the poll interval of every wait (not a synchronisation).
	pollEvery = 10 * time.Millisecond

	// Aims stated by the issue; a run below them is reported, not failed.
	aimE2EOverCopy = 0.30
	aimP99         = 250 * time.Millisecond
)

// sourceSchema is a narrow source table, and a procedure that inserts rows
// one transaction each, so many small transactions are generated on the
// server as fast as it commits them.
const sourceSchema = `
CREATE SCHEMA bench;
CREATE TABLE bench.items (
	id         bigint PRIMARY KEY,
	name       text NOT NULL,
	qty        integer NOT NULL,
	price      numeric(10,2) NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE PROCEDURE bench.insert_row_per_tx(first bigint, last bigint) LANGUAGE plpgsql AS $$
BEGIN
	FOR g IN first..last LOOP
		INSERT INTO bench.items (id, name, qty, price) VALUES (g, 'item-' || g, g % 100, (g % 100000) / 100.0);
		COMMIT;
	END LOOP;
END $$;`

// targetSchema is the table tandem writes, whose written_at the target sets
// when tandem writes the row (a server on the source's machine, so one clock),
// and a table of the same shape for the COPY that measures the physical
// limit.
const targetSchema = `
CREATE TABLE public.items (
	id         bigint PRIMARY KEY,
	name       text NOT NULL,
	qty        integer NOT NULL,
	price      numeric(10,2) NOT NULL,
	updated_at timestamptz NOT NULL,
	written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE public.items_copy (LIKE public.items INCLUDING ALL);`

// pipelineConfig is the tandem.yaml of a run: bench.items copied column for
// column to public.items through the embedded broker, with slot as the
// replication slot and publication names.
func pipelineConfig(srcDSN, tgtDSN, slot string) string {
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [bench.items]
  postgres: { slot: %s, publication: %s }
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: bench.items
    to:
      - table: public.items
        key: [id]
        columns:
          id: row.id
          name: row.name
          qty: row.qty
          price: row.price
          updated_at: row.updated_at
`, srcDSN, slot, slot, tgtDSN)
}

// TestPipelineConfig_Compiles keeps the benchmarks' config valid without
// running them.
func TestPipelineConfig_Compiles(t *testing.T) {
	cfg := apptest.ParseConfig(t, pipelineConfig("postgres://u@127.0.0.1:1/s", "postgres://u@127.0.0.1:1/t", "tandem_bench_0"))
	if _, err := app.CompileMappings(cfg); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkThroughput inserts 200,000 rows on the source and measures how
// fast tandem captures them and writes them to the target, beside
// pg_recvlogical reading the same WAL and COPY writing the same rows. Each
// iteration (one with -benchtime 1x) logs its figures; the metrics are the
// last iteration's.
func BenchmarkThroughput(b *testing.B) {
	for _, w := range []workload{bulkInserts(4), rowPerTransaction()} {
		b.Run(w.name, func(b *testing.B) {
			var last throughput
			for b.Loop() {
				last = measureThroughput(b, w)
			}
			last.report(b)
		})
	}
}

// BenchmarkLatency measures the delay from source commit to target write
// under a steady load of single-row transactions. Each iteration logs its
// figures; the metrics are the last iteration's.
func BenchmarkLatency(b *testing.B) {
	b.Run(fmt.Sprintf("%d_per_s", latencyRate), func(b *testing.B) {
		var last latency
		for b.Loop() {
			last = measureLatency(b)
		}
		last.report(b)
	})
}

// workload makes `changes` single-row inserts into bench.items.
type workload struct {
	name string
	txns int
	// run returns the time its first transaction committed (or, when the
	// server commits them back to back, the time it started, a little
	// earlier).
	run func(ctx context.Context, src *pgxpool.Pool) (firstCommit time.Time, err error)
}

// bulkInserts makes the changes in txns large INSERT ... SELECT transactions.
func bulkInserts(txns int) workload {
	return workload{name: fmt.Sprintf("bulk_%dtx", txns), txns: txns, run: func(ctx context.Context, src *pgxpool.Pool) (time.Time, error) {
		var first time.Time
		per := changes / txns
		for i := range txns {
			lo, hi := i*per+1, (i+1)*per
			if i == txns-1 {
				hi = changes
			}
			if _, err := src.Exec(ctx, `INSERT INTO bench.items (id, name, qty, price)
SELECT g, 'item-' || g, g % 100, (g % 100000) / 100.0 FROM generate_series($1::bigint, $2::bigint) g`, lo, hi); err != nil {
				return first, fmt.Errorf("insert rows %d to %d: %w", lo, hi, err)
			}
			if i == 0 {
				first = time.Now()
			}
		}
		return first, nil
	}}
}

// rowPerTransaction makes each change its own transaction, committed by a
// procedure on the server.
func rowPerTransaction() workload {
	return workload{name: "row_per_tx", txns: changes, run: func(ctx context.Context, src *pgxpool.Pool) (time.Time, error) {
		first := time.Now()
		// No arguments: simple protocol, so the procedure may COMMIT.
		if _, err := src.Exec(ctx, fmt.Sprintf("CALL bench.insert_row_per_tx(1, %d)", changes)); err != nil {
			return first, fmt.Errorf("insert %d rows one transaction each: %w", changes, err)
		}
		return first, nil
	}}
}

// throughput is what a throughput run measured, per second.
type throughput struct {
	capture, e2e      float64 // tandem: changes/s captured, changes/s in the target
	copy, recvlogical float64 // physical limits: COPY rows/s, pg_recvlogical changes/s
	generate          float64 // source: changes/s the workload committed
}

func (t throughput) report(b *testing.B) {
	b.ReportMetric(t.capture, "capture_changes/s")
	b.ReportMetric(t.e2e, "e2e_changes/s")
	b.ReportMetric(t.recvlogical, "recvlogical_changes/s")
	b.ReportMetric(t.copy, "copy_rows/s")
	b.ReportMetric(t.capture/t.recvlogical, "capture/recvlogical")
	b.ReportMetric(t.e2e/t.copy, "e2e/copy")
	b.ReportMetric(t.e2e/t.recvlogical, "e2e/recvlogical")
}

func (t throughput) summary(w workload) string {
	aim := "meets the aim"
	if t.e2e/t.copy < aimE2EOverCopy {
		aim = "BELOW the aim"
	}
	return strings.Join([]string{
		fmt.Sprintf("%s: %s single-row changes in %s transactions, committed on the source at %s changes/s",
			w.name, thousands(changes), thousands(float64(w.txns)), thousands(t.generate)),
		fmt.Sprintf("  %-16s %9s changes/s   (pg_recvlogical %s/s: %.2fx)", "capture", thousands(t.capture), thousands(t.recvlogical), t.capture/t.recvlogical),
		fmt.Sprintf("  %-16s %9s changes/s   (COPY %s rows/s: %.2fx; %s of >= %.2fx)", "end-to-end", thousands(t.e2e), thousands(t.copy), t.e2e/t.copy, aim, aimE2EOverCopy),
	}, "\n")
}

// measureThroughput runs one throughput measurement on fresh databases.
func measureThroughput(b *testing.B, w workload) throughput {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newEnv(b)
	recv := e.newRecvSlot(ctx, b) // before any change, so it decodes them all
	r := startPipeline(b, e)

	cpu0 := sampleCPU(e.postmasters...)
	begin := time.Now()
	first, err := w.run(ctx, e.src)
	if err != nil {
		b.Fatal(err)
	}
	generated := time.Since(begin)
	var endLSN string
	if err := e.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&endLSN); err != nil {
		b.Fatal(err)
	}

	// Captured: the capture counter; in the target: the apply counter says
	// when to start counting rows, and the count says when they are there.
	var captured time.Time
	var inTarget int64
	done, err := poll(deliverWithin, func() (bool, error) {
		if err := r.Failed(); err != nil {
			return false, err
		}
		if captured.IsZero() && counter(r.Reg, "tandem_capture_events_total") >= changes {
			captured = time.Now()
		}
		if counter(r.Reg, "tandem_apply_rows_total") < changes {
			return false, nil
		}
		err := e.tgt.QueryRow(ctx, `SELECT count(*) FROM public.items`).Scan(&inTarget)
		return inTarget == changes, err
	})
	if err != nil {
		b.Fatalf("%d changes not delivered: %v (captured %.0f, applied %.0f, target rows %d)", changes, err,
			counter(r.Reg, "tandem_capture_events_total"), counter(r.Reg, "tandem_apply_rows_total"), inTarget)
	}
	cpu := cpu0.until(sampleCPU(e.postmasters...))
	batches, inSink := histogram(r.Reg, "tandem_apply_batch_duration_seconds")
	r.Stop(b)
	if err := dropSlot(ctx, e.src, e.slot); err != nil {
		b.Fatal(err)
	}

	recvTook, exact := recv.read(ctx, b, endLSN)
	t := throughput{
		capture:     changes / captured.Sub(first).Seconds(),
		e2e:         changes / done.Sub(first).Seconds(),
		copy:        changes / e.copyRows(ctx, b).Seconds(),
		recvlogical: changes / recvTook.Seconds(),
		generate:    changes / generated.Seconds(),
	}
	note := ""
	if !exact {
		note = "  pg_recvlogical stopped on a keepalive, after decoding WAL written after the workload: its rate is understated\n"
	}
	logSummary(b, "\n"+t.summary(w)+"\n"+note+
		fmt.Sprintf("  apply: %s batches of %s changes on average; writing them to the target (sink.Apply) took %.1f s of the %.1f s end to end\n",
			thousands(float64(batches)), thousands(changes/float64(max(batches, 1))), inSink, done.Sub(first).Seconds())+
		"  "+cpu.String())
	return t
}

// latency is what a latency run measured.
type latency struct {
	rows          int64
	rate          float64 // changes/s the writer achieved
	p50, p99, max time.Duration
}

func (l latency) report(b *testing.B) {
	b.ReportMetric(l.rate, "writer_changes/s")
	b.ReportMetric(float64(l.p50)/float64(time.Millisecond), "p50_ms")
	b.ReportMetric(float64(l.p99)/float64(time.Millisecond), "p99_ms")
	b.ReportMetric(float64(l.max)/float64(time.Millisecond), "max_ms")
}

func (l latency) summary() string {
	aim := "meets the aim"
	if l.p99 >= aimP99 {
		aim = "BELOW the aim"
	}
	return fmt.Sprintf("latency @%d/s  p50 %s  p99 %s  max %s   (%s changes, writer at %s/s; p99 %s of < %s)",
		latencyRate, ms(l.p50), ms(l.p99), ms(l.max), thousands(float64(l.rows)), thousands(l.rate), aim, ms(aimP99))
}

// measureLatency runs one latency measurement on fresh databases: a writer
// commits single-row inserts at latencyRate for latencyFor, each stamped by
// the source with clock_timestamp(); the target stamps each row when tandem
// writes it.
func measureLatency(b *testing.B) latency {
	ctx, cancel := context.WithTimeout(context.Background(), latencyFor+2*deliverWithin)
	defer cancel()
	e := newEnv(b)
	r := startPipeline(b, e)
	conn, err := e.src.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()

	total := int64(latencyRate * latencyFor / time.Second)
	interval := time.Second / latencyRate
	begin := time.Now()
	pace := time.NewTimer(0) // the writer's schedule: change i at begin + i*interval, catching up when late
	defer pace.Stop()
	for i := range total {
		pace.Reset(time.Until(begin.Add(time.Duration(i) * interval)))
		<-pace.C
		if _, err := conn.Exec(ctx, `INSERT INTO bench.items (id, name, qty, price) VALUES ($1::bigint, 'item-' || $1::bigint, $2, 9.99)`, i+1, i%100); err != nil {
			b.Fatal(err)
		}
	}
	wrote := time.Since(begin)

	var inTarget int64
	if _, err := poll(deliverWithin, func() (bool, error) {
		if err := r.Failed(); err != nil {
			return false, err
		}
		err := e.tgt.QueryRow(ctx, `SELECT count(*) FROM public.items`).Scan(&inTarget)
		return inTarget == total, err
	}); err != nil {
		b.Fatalf("%d changes not delivered: %v (target rows %d)", total, err, inTarget)
	}
	r.Stop(b)
	if err := dropSlot(ctx, e.src, e.slot); err != nil {
		b.Fatal(err)
	}

	l := latency{rate: float64(total) / wrote.Seconds()}
	var p50, p99, maxS float64
	if err := e.tgt.QueryRow(ctx, `SELECT count(*),
	percentile_disc(0.50) WITHIN GROUP (ORDER BY d),
	percentile_disc(0.99) WITHIN GROUP (ORDER BY d),
	max(d)
FROM (SELECT extract(epoch FROM written_at - updated_at)::float8 AS d FROM public.items) s`).Scan(&l.rows, &p50, &p99, &maxS); err != nil {
		b.Fatal(err)
	}
	l.p50, l.p99, l.max = seconds(p50), seconds(p99), seconds(maxS)
	logSummary(b, l.summary())
	return l
}

// env is one run's source and target databases: the source on the test
// binary's shared testenv server, the target on a second server, as in a
// migration. So the source's WAL holds only the workload's changes, and
// pg_recvlogical, stopping at the workload's last commit, reads exactly
// them. Both servers run on this machine and read one system clock, so a
// source timestamp and a target timestamp compare.
type env struct {
	pg             *testenv.PostgreSQL // the source's server
	srcDB          string
	srcDSN, tgtDSN string
	src, tgt       *pgxpool.Pool
	slot           string // tandem's replication slot and publication
	postmasters    []int  // of both servers, for CPU accounting
}

// runs numbers the runs of the test binary, for distinct slot and database
// names.
var runs atomic.Int64

// targetServer is the test binary's second server, for the targets; Run
// stops it when the benchmarks end.
var targetServer struct {
	sync.Mutex
	pg *testenv.PostgreSQL
}

func newEnv(b testing.TB) *env {
	b.Helper()
	ctx := context.Background()
	n := runs.Add(1)
	e := &env{pg: testenv.Postgres(b), srcDSN: testenv.NewDatabase(b), slot: fmt.Sprintf("tandem_bench_%d", n)}
	e.tgtDSN = targetDatabase(b, fmt.Sprintf("bench_target_%d", n))
	u, err := url.Parse(e.srcDSN)
	if err != nil {
		b.Fatal(err)
	}
	e.srcDB = strings.TrimPrefix(u.Path, "/")
	if e.src, err = pgxpool.New(ctx, e.srcDSN); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.src.Close)
	if e.tgt, err = pgxpool.New(ctx, e.tgtDSN); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.tgt.Close)
	if _, err := e.src.Exec(ctx, sourceSchema); err != nil {
		b.Fatal(err)
	}
	if _, err := e.tgt.Exec(ctx, targetSchema); err != nil {
		b.Fatal(err)
	}
	for _, pool := range []*pgxpool.Pool{e.src, e.tgt} {
		if pm, err := postmaster(ctx, pool); err == nil {
			e.postmasters = append(e.postmasters, pm)
		}
	}
	return e
}

// targetDatabase creates a database named name on the test binary's second
// server, starting the server on first use, and returns its DSN.
func targetDatabase(b testing.TB, name string) string {
	b.Helper()
	ctx := context.Background()
	targetServer.Lock()
	if targetServer.pg == nil {
		pg, err := testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{})
		if err != nil {
			targetServer.Unlock()
			b.Fatalf("start the target server: %v", err)
		}
		targetServer.pg = pg
	}
	tgtServer := targetServer.pg
	targetServer.Unlock()
	dsn, err := tgtServer.CreateDatabase(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	return dsn
}

// copyAttempts is how many times copyRows copies, keeping the fastest: a
// physical limit is the best the server does, not one unlucky run (an
// autovacuum of the tables just written).
const copyAttempts = 3

// copyRows copies the rows a throughput run makes into items_copy, a table
// of the target's shape, with one COPY FROM STDIN, copyAttempts times, and
// returns the fastest COPY's duration.
func (e *env) copyRows(ctx context.Context, b testing.TB) time.Duration {
	return e.copyN(ctx, b, changes)
}

// copyN is copyRows of the rows with ids 1 to n.
func (e *env) copyN(ctx context.Context, b testing.TB, n int) time.Duration {
	b.Helper()
	now := time.Now()
	rows := make([][]any, n)
	for i := range rows {
		id := int64(i + 1)
		price := pgtype.Numeric{Int: big.NewInt(id % 100000), Exp: -2, Valid: true}
		rows[i] = []any{id, "item-" + strconv.FormatInt(id, 10), int32(id % 100), price, now}
	}
	conn, err := e.tgt.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	best := time.Duration(math.MaxInt64)
	for range copyAttempts {
		if _, err := conn.Exec(ctx, `TRUNCATE public.items_copy`); err != nil {
			b.Fatal(err)
		}
		begin := time.Now()
		copied, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"public", "items_copy"},
			[]string{"id", "name", "qty", "price", "updated_at"}, pgx.CopyFromRows(rows))
		took := time.Since(begin)
		if err != nil {
			b.Fatalf("COPY into items_copy: %v", err)
		}
		if copied != int64(n) {
			b.Fatalf("COPY into items_copy copied %d rows, want %d", copied, n)
		}
		best = min(best, took)
	}
	return best
}

// recvSlot is a pgoutput slot and publication of its own for pg_recvlogical.
type recvSlot struct {
	e    *env
	name string // of both
}

func (e *env) newRecvSlot(ctx context.Context, b *testing.B) *recvSlot {
	b.Helper()
	s := &recvSlot{e: e, name: e.slot + "_recvlogical"}
	if _, err := e.src.Exec(ctx, "CREATE PUBLICATION "+s.name+" FOR TABLE bench.items"); err != nil {
		b.Fatal(err)
	}
	if _, err := e.src.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s.name); err != nil {
		b.Fatal(err)
	}
	return s
}

// read runs pg_recvlogical on the slot until endLSN and returns how long it
// took, and whether it stopped on the workload's last commit (else on a
// keepalive, after reading WAL written after the workload). It drops the
// slot.
func (s *recvSlot) read(ctx context.Context, b *testing.B, endLSN string) (took time.Duration, exact bool) {
	b.Helper()
	pg := s.e.pg
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.BinDir(), "pg_recvlogical"), "-v",
		"-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", s.e.srcDB,
		"--slot", s.name, "--start", "-o", "proto_version=1", "-o", "publication_names="+s.name,
		"-f", "/dev/null", "--endpos", endLSN, "--no-loop")
	cmd.Env = []string{"PGPASSWORD=" + pg.Password, "PGSSLMODE=disable", "LC_ALL=C"}
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	took = time.Since(begin)
	if err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	if err := dropSlot(ctx, s.e.src, s.name); err != nil {
		b.Fatal(err)
	}
	return took, strings.Contains(string(out), "reached by WAL record")
}

// dropSlot drops a replication slot once no walsender holds it.
func dropSlot(ctx context.Context, src *pgxpool.Pool, slot string) error {
	_, err := poll(30*time.Second, func() (bool, error) {
		var active bool
		err := src.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return true, nil
		}
		if err != nil || active {
			return false, err
		}
		_, err = src.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("drop replication slot %s: %w", slot, err)
	}
	return nil
}

// running is a app.Run in a goroutine.
// startPipeline runs tandem on e (warnings and errors logged only: a
// benchmark prints everything it logs) and returns once it is ready.
func startPipeline(b *testing.B, e *env) *apptest.Running {
	b.Helper()
	cfg := apptest.ParseConfig(b, pipelineConfig(e.srcDSN, e.tgtDSN, e.slot))
	return apptest.Start(b, cfg, app.Roles{Capture: true, Apply: true}, slog.LevelWarn)
}

// poll calls cond every pollEvery until it returns true or an error, or
// within passes; it returns the time taken just before the call that first
// returned true.
func poll(within time.Duration, cond func() (bool, error)) (time.Time, error) {
	return pollpkg.Until(context.Background(), pollEvery, within, cond)
}

// counter sums a counter family of the registry over its labels.
func counter(g prometheus.Gatherer, name string) float64 {
	v, _ := apptest.Metric(g, name, nil)
	return v
}

// histogram returns the count and the sum of a histogram family of the
// registry, over its labels.
func histogram(g prometheus.Gatherer, name string) (count uint64, sum float64) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, math.NaN()
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return count, sum
}

// thousands formats a non-negative value rounded to an integer, with commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var out strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out.WriteByte(',')
		}
		out.WriteRune(c)
	}
	return out.String()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ms formats a duration in whole milliseconds, or with one decimal below 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}

// logSummary prints a benchmark's report in full, under its name, on
// stdout: the testing package keeps only the first 10 lines of what b.Log
// prints in a benchmark.
func logSummary(b *testing.B, report string) {
	b.Helper()
	fmt.Printf("--- %s:\n%s\n", b.Name(), strings.TrimLeft(report, "\n"))
}
