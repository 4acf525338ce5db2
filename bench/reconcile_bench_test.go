package bench

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/reconcile"
)

// The reconcile benchmark (issue 7) compares a 1,000,000-row PostgreSQL
// source table with a PostgreSQL target table holding exactly its rows
// through the identity mapping of the backfill benchmark (six columns: key,
// text, numeric, timestamptz, integer, nullable text), with full sweeps of
// app.Reconcile, unbounded (reconcile.max_rows_per_second -1): at
// chunk_rows 1000 and 5000 (the default) the identity mapping, whose
// chunks the servers summarise (reconcile's sweepHashed: only chunks whose
// summaries differ are read); at the default chunk_rows the same mapping
// with one column computed by CEL (visits: row.visits + 0), which compares
// every row in tandem, as any mapping that computes columns does. The
// target is filled by COPY from the source, not by tandem.
//
// Beside it, the limit, measured in the same run on the same servers and
// tables: a plain scan of both tables, COPY (SELECT ...) TO STDOUT of the
// source's table and then of the target's (one after the other, as the
// sweep reads them), each read by pgx's PgConn.CopyTo and discarded.
//
// Rows are counted alike on both sides: the scan reads 1,000,000 source
// rows and 1,000,000 target rows, so its rate is 2,000,000 / its time; the
// sweep compares the same 2,000,000 rows (MappingReport.Checked counts the
// source rows and the target keys: 2,000,000 too), so its rate is 2,000,000
// / its time, from the call of app.Reconcile to its return. It reads
// each side once: the target is walked in key order beside the source (its
// key copies the source's integer key).
//
// The sweep at chunk_rows 1000 runs first, on equal tables, and must find
// no drift; then one target row is corrupted and both sweeps at the default
// chunk_rows must find exactly that row, a mismatch in the corrupted
// column. Their settle time is 1 ms (no stream runs, nothing is in
// flight), so their time is the pass over the rows and the re-check of one
// row.
//
// BenchmarkReconcile/sweep_mariadb is the same comparison from a MariaDB
// source: the backfill benchmark's 1,000,000 rows (newMySQLBackfillSource)
// against their copy in PostgreSQL, one target row corrupted, swept at the
// default chunk_rows by md5 chunk summaries (the identity mapping: both
// servers compute pgtext.HashMD5) and row by row (the computed column).
// Its limit, measured in the same run: a plain SELECT of the source's
// table, streamed and discarded (raw bytes, no conversion), then COPY TO
// STDOUT of the target's.
//
// BenchmarkReconcile/detect measures the detection time of continuous mode
// (app.ServeReconcile, as `tandem reconcile` runs) at its default
// settings (read rate 5,000 rows/s, chunk_rows 5000, settle 5 s), on a
// 50,000-row table with one corrupted target row, from the call to the
// "reconcile found drift" log line, against the rate limiter's model: the
// reads of one pass (the source's rows and the target's, walked in key
// order: 2 reads per row) less the limiter's initial burst, over the
// rate, plus the waits of settling the one difference (a whole number of
// reconcile.settle, however many re-checks reconcile makes), plus opening
// the connections. The pass must match the model within a second; the
// model, with the waits and opening measured, extrapolates to 1,000,000
// rows.

const (
	// reconcileRows is the size of the tables compared.
	reconcileRows = 1_000_000
	// reconcileDetectRows is the size of the tables of the detection run.
	reconcileDetectRows = 50_000
	// reconcileScanAttempts is how many times the limit is measured,
	// keeping the fastest.
	reconcileScanAttempts = 2
	// reconcileWithin bounds one sweep or detection.
	reconcileWithin = 5 * time.Minute

	// aimReconcileOverScan is the aim; a run below it is reported,
	// not failed.
	aimReconcileOverScan = 0.50
	// detectTolerance is how far the detection's pass may stray from the
	// model before the extrapolation is not trusted (a failure).
	detectTolerance = time.Second
)

// reconcileSourceDDL is the backfill benchmark's source table with a
// timestamptz; pgBackfillRows fills it. reconcileTargetDDL is the target's
// table of the same shape.
const (
	reconcileSourceDDL = `CREATE TABLE bench.accounts (
	id         bigint PRIMARY KEY,
	email      text NOT NULL,
	balance    numeric(12,2) NOT NULL,
	created_at timestamptz NOT NULL,
	visits     integer NOT NULL,
	note       text
)`
	reconcileTargetDDL = `CREATE TABLE public.accounts (
	id         bigint PRIMARY KEY,
	email      text NOT NULL,
	balance    numeric(12,2) NOT NULL,
	created_at timestamptz NOT NULL,
	visits     integer NOT NULL,
	note       text
)`
)

// reconcileTuning is a reconcile: section of the config.
func reconcileTuning(chunkRows, maxRowsPerSecond int) string {
	return fmt.Sprintf("reconcile:\n  chunk_rows: %d\n  max_rows_per_second: %d\n", chunkRows, maxRowsPerSecond)
}

// reconcileSweepSettle is the measured sweeps' settle time: nothing is in
// flight, the one re-check need not wait.
const reconcileSweepSettle = time.Millisecond

// TestReconcileConfigs_Compile keeps the reconcile benchmark's configs
// valid without running it.
func TestReconcileConfigs_Compile(t *testing.T) {
	for _, tuning := range []string{"", reconcileTuning(1000, -1)} {
		for _, computed := range []bool{false, true} {
			yaml := reconcileConfig("postgres://u@127.0.0.1:1/s", "postgres://u@127.0.0.1:1/t", "tandem_bench_0", tuning, computed)
			if strings.Contains(yaml, computedColumn) != computed {
				t.Fatalf("computed %v, config:\n%s", computed, yaml)
			}
			if _, err := app.CompileMappings(apptest.ParseConfig(t, yaml)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkReconcile sweeps 1,000,000 rows beside a plain scan of both
// tables, checking that a sweep finds one corrupted row (sweep), and
// measures how long continuous mode takes to report one at its default
// read rate (detect). Each iteration logs its figures; the metrics are the
// last iteration's.
func BenchmarkReconcile(b *testing.B) {
	b.Run("sweep", func(b *testing.B) {
		var last reconcileBench
		for b.Loop() {
			last = measureReconcile(b)
		}
		last.report(b)
	})
	b.Run("sweep_mariadb", func(b *testing.B) {
		var last reconcileBench
		for b.Loop() {
			last = measureMariaDBReconcile(b)
		}
		last.report(b)
	})
	b.Run("detect", func(b *testing.B) {
		var last reconcileDetect
		for b.Loop() {
			last = measureDetection(b)
		}
		last.report(b)
	})
}

// reconcileBench is what a reconcile run measured.
type reconcileBench struct {
	source           string        // "postgres" or "mariadb"
	generation, fill time.Duration // the source's rows inserted, copied to the target
	scanSource       time.Duration // limit: COPY TO STDOUT of the source's table
	scanTarget       time.Duration // and of the target's
	scanCPU          cpuUse
	sweeps           []reconcileSweep // unbounded: chunk_rows 1000 on equal tables, the default with one row corrupted
}

// reconcileSweep is one app.Reconcile.
type reconcileSweep struct {
	chunkRows  int
	computed   bool          // the mapping computes a column: rows compared in tandem
	summarised int64         // rows settled by chunk summaries
	drift      int           // rows found drifted
	took       time.Duration // from the call to its return
	sweep      time.Duration // Report.Took
	checked    int64
	cpu        cpuUse
	gc         gcUse
}

// name says which sweep it is.
func (s reconcileSweep) name() string {
	path := "summaries"
	if s.computed {
		path = "rows (" + computedColumn + ")"
	}
	return fmt.Sprintf("sweep by %s, chunk_rows %d", path, s.chunkRows)
}

// rate is the sweep's rows/s, the source's and target's rows counted.
func (s reconcileSweep) rate() float64 { return 2 * reconcileRows / s.took.Seconds() }

// found says what the sweep found.
func (s reconcileSweep) found() string {
	if s.drift == 0 {
		return "no drift (equal tables)"
	}
	return fmt.Sprintf("%d drifted (the row corrupted before it)", s.drift)
}

// scanRate is the limit's rows/s: both tables' rows over both scans.
func (l reconcileBench) scanRate() float64 {
	return 2 * reconcileRows / (l.scanSource + l.scanTarget).Seconds()
}

func (l reconcileBench) report(b *testing.B) {
	b.ReportMetric(l.scanRate(), "scan_rows/s")
	for _, s := range l.sweeps {
		prefix := "reconcile"
		if l.source == "mariadb" {
			prefix = "mariadb_reconcile"
		}
		if s.chunkRows != config.DefaultReconcileChunk {
			prefix = fmt.Sprintf("reconcile_chunk%d", s.chunkRows)
		}
		if s.computed {
			prefix += "_rowwise"
		}
		b.ReportMetric(s.rate(), prefix+"_rows/s")
		b.ReportMetric(s.rate()/l.scanRate(), prefix+"/scan")
		b.ReportMetric(float64(s.gc.peakLive)/(1<<20), prefix+"_live_heap_MiB")
	}
}

func (l reconcileBench) summary() string {
	servers, limit := "servers (postgres)", "limit: COPY TO STDOUT of both, discarded"
	if l.source == "mariadb" {
		servers, limit = "servers (postgres, mariadbd)", "limit: SELECT of the source streamed, COPY TO STDOUT of the target"
	}
	lines := []string{
		fmt.Sprintf("%s -> postgres reconcile: %s rows of 6 columns (inserted on the source in %.1f s, copied to the target in %.1f s), identity mapping; rows/s count the source's and the target's rows (2 per row)",
			l.source, thousands(reconcileRows), l.generation.Seconds(), l.fill.Seconds()),
		fmt.Sprintf("  %-58s %9s rows/s   source %.2f s + target %.2f s; %s", limit,
			thousands(l.scanRate()), l.scanSource.Seconds(), l.scanTarget.Seconds(), l.scanCPU.breakdown("tandem", servers)),
	}
	for _, s := range l.sweeps {
		aim := "meets the aim"
		if s.rate()/l.scanRate() < aimReconcileOverScan {
			aim = "BELOW the aim"
		}
		lines = append(lines,
			fmt.Sprintf("  %-58s %9s rows/s   (%.2fx the limit; %s of >= %.2fx): %.1f s from the call to its return, sweep %.1f s, %s checked, %s",
				s.name(), thousands(s.rate()), s.rate()/l.scanRate(), aim, aimReconcileOverScan,
				s.took.Seconds(), s.sweep.Seconds(), thousands(float64(s.checked)), s.found()),
			"      "+s.cpu.breakdown("tandem", servers)+"; "+s.gc.String())
	}
	return strings.Join(lines, "\n")
}

// measureReconcile fills a fresh source and target, measures the limit,
// sweeps the equal tables at chunk_rows 1000, corrupts a row and sweeps at
// the default chunk_rows, by chunk summaries (the identity mapping) and
// row by row (the mapping with a computed column).
func measureReconcile(b *testing.B) reconcileBench {
	ctx, cancel := context.WithTimeout(context.Background(), 3*reconcileWithin)
	defer cancel()
	l := reconcileBench{source: "postgres"}
	rt := newReconcileTables(ctx, b, reconcileRows)
	l.generation, l.fill = rt.generation, rt.fill

	l.scanSource, l.scanTarget, l.scanCPU = rt.measureScan(ctx, b)

	s, res := rt.sweep(ctx, b, reconcileTuning(1000, -1), false)
	if s.drift != 0 {
		b.Fatalf("sweep of equal tables, chunk_rows 1000: %d rows drifted, want none: %+v", s.drift, res.Report.Mappings[0].Samples)
	}
	l.sweeps = append(l.sweeps, s)

	id := rt.corrupt(ctx, b, reconcileRows*7/9)
	for _, computed := range []bool{false, true} {
		s, res = rt.sweep(ctx, b, reconcileTuning(config.DefaultReconcileChunk, -1), computed)
		checkOneMismatch(b, res, id)
		l.sweeps = append(l.sweeps, s)
	}
	for _, s := range l.sweeps {
		if s.checked != 2*reconcileRows {
			b.Fatalf("sweep, chunk_rows %d: %d checked, want %d (source rows and target keys)", s.chunkRows, s.checked, 2*reconcileRows)
		}
	}
	logSummary(b, "\n"+l.summary())
	return l
}

// measureMariaDBReconcile fills a MariaDB source with the backfill
// benchmark's rows (newMySQLBackfillSource) and a PostgreSQL target with
// their copy, measures the limit (the source's table streamed by a plain
// SELECT, the target's by COPY TO STDOUT), corrupts a row and sweeps at
// the default chunk_rows, by md5 chunk summaries (the identity mapping)
// and row by row (the mapping with a computed column).
func measureMariaDBReconcile(b *testing.B) reconcileBench {
	ctx, cancel := context.WithTimeout(context.Background(), 3*reconcileWithin)
	defer cancel()
	l := reconcileBench{source: "mariadb"}
	src := newMySQLBackfillSource(ctx, b)
	l.generation = src.generation
	tgtDSN := targetDatabase(b, fmt.Sprintf("bench_reconcile_%d", runs.Add(1)))
	tgt, err := pgx.Connect(ctx, tgtDSN)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tgt.Close(context.Background()) })
	if _, err := tgt.Exec(ctx, backfillTargetDDL); err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(src.copyTo(ctx, pw)) }()
	_, err = tgt.PgConn().CopyFrom(ctx, pr, `COPY public.accounts (`+backfillColumns+`) FROM STDIN`)
	pr.CloseWithError(errors.New("COPY FROM ended")) // unblocks the writer if COPY FROM failed
	if err != nil {
		b.Fatalf("copy the source's rows to the target: %v", err)
	}
	l.fill = time.Since(begin)
	if _, err := tgt.Exec(ctx, `VACUUM ANALYZE public.accounts`); err != nil {
		b.Fatal(err)
	}
	cfgOf := func(computed bool) *config.Config {
		yaml := src.config(tgtDSN, reconcileTuning(config.DefaultReconcileChunk, -1))
		if computed {
			yaml = strings.Replace(yaml, "visits: row.visits", computedColumn, 1)
		}
		return apptest.ParseConfig(b, yaml)
	}
	db, err := mysqlurl.Open(cfgOf(false).Source.DSN.Value())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	pids := src.pids
	if pm, err := connPostmaster(ctx, tgt); err == nil {
		pids = append(pids[:len(pids):len(pids)], pm)
	}
	l.scanSource, l.scanTarget, l.scanCPU = measureMariaDBScan(ctx, b, db, tgt, pids)

	tag, err := tgt.Exec(ctx, `UPDATE public.accounts SET balance = balance + 0.01 WHERE id = $1`, reconcileRows*7/9)
	if err != nil || tag.RowsAffected() != 1 {
		b.Fatalf("corrupt row %d: %v (%d rows updated)", reconcileRows*7/9, err, tag.RowsAffected())
	}
	for _, computed := range []bool{false, true} {
		s, res := sweepOnce(ctx, b, cfgOf(computed), computed, pids)
		checkOneMismatch(b, res, reconcileRows*7/9)
		if s.checked != 2*reconcileRows {
			b.Fatalf("sweep, computed %v: %d checked, want %d (source rows and target keys)", computed, s.checked, 2*reconcileRows)
		}
		l.sweeps = append(l.sweeps, s)
	}
	logSummary(b, "\n"+l.summary())
	return l
}

// measureMariaDBScan reads the MariaDB source's accounts (a plain SELECT
// of every column, streamed and discarded) and then the target's (COPY TO
// STDOUT into io.Discard), reconcileScanAttempts times, and returns the
// fastest attempt's times, with the CPU use of the machine while it ran.
func measureMariaDBScan(ctx context.Context, b *testing.B, src *sql.DB, tgt *pgx.Conn, pids []int) (srcTook, tgtTook time.Duration, cpu cpuUse) {
	b.Helper()
	best := time.Duration(math.MaxInt64)
	for range reconcileScanAttempts {
		cpu0 := sampleCPU(pids...)
		begin := time.Now()
		n, err := streamMariaDB(ctx, src, `SELECT `+backfillColumns+` FROM accounts`)
		took0 := time.Since(begin)
		if err != nil || n != reconcileRows {
			b.Fatalf("limit: scan the source's accounts: %d rows, %v", n, err)
		}
		begin = time.Now()
		tag, err := tgt.PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT `+backfillColumns+` FROM public.accounts) TO STDOUT`)
		took1 := time.Since(begin)
		if err != nil || tag.RowsAffected() != reconcileRows {
			b.Fatalf("limit: scan the target's accounts: %d rows, %v", tag.RowsAffected(), err)
		}
		use := cpu0.until(sampleCPU(pids...))
		if took0+took1 < best {
			best, srcTook, tgtTook, cpu = took0+took1, took0, took1, use
		}
	}
	return srcTook, tgtTook, cpu
}

// streamMariaDB runs query and reads its rows as they arrive, as raw
// bytes, discarding them; it returns how many it read.
func streamMariaDB(ctx context.Context, db *sql.DB, query string) (int, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// reconcileTables is a source database holding n rows in bench.accounts
// and a target database, on the benchmarks' second server, holding the
// same rows in public.accounts.
type reconcileTables struct {
	e                *env
	n                int
	src, tgt         *pgx.Conn // for the limit and the corruption
	slot             string    // in the config only: reconcile makes no slot
	generation, fill time.Duration
}

// newReconcileTables makes the tables of a run: the rows generated on the
// source, then streamed into the target with COPY.
func newReconcileTables(ctx context.Context, b *testing.B, n int) *reconcileTables {
	b.Helper()
	e := newEnv(b)
	rt := &reconcileTables{e: e, n: n, slot: e.slot + "_reconcile"}
	if _, err := e.src.Exec(ctx, reconcileSourceDDL); err != nil {
		b.Fatal(err)
	}
	if _, err := e.tgt.Exec(ctx, reconcileTargetDDL); err != nil {
		b.Fatal(err)
	}
	begin := time.Now()
	if _, err := e.src.Exec(ctx, fmt.Sprintf(pgBackfillRows, n)); err != nil {
		b.Fatalf("insert %d rows: %v", n, err)
	}
	rt.generation = time.Since(begin)
	connect := func(dsn string) *pgx.Conn {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	rt.src, rt.tgt = connect(e.srcDSN), connect(e.tgtDSN)
	begin = time.Now()
	if err := copyBetween(ctx, rt.src, `COPY (SELECT `+backfillColumns+` FROM bench.accounts) TO STDOUT`,
		rt.tgt, `COPY public.accounts (`+backfillColumns+`) FROM STDIN`); err != nil {
		b.Fatalf("copy the source's rows to the target: %v", err)
	}
	rt.fill = time.Since(begin)
	// Hint bits set and statistics made, as on tables that have been there
	// a while: neither the limit nor the sweep pays for them.
	if _, err := e.src.Exec(ctx, `VACUUM ANALYZE bench.accounts`); err != nil {
		b.Fatal(err)
	}
	if _, err := e.tgt.Exec(ctx, `VACUUM ANALYZE public.accounts`); err != nil {
		b.Fatal(err)
	}
	return rt
}

// copyBetween streams the rows of COPY ... TO STDOUT on from into COPY
// ... FROM STDIN on to.
func copyBetween(ctx context.Context, from *pgx.Conn, copyTo string, to *pgx.Conn, copyFrom string) error {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10) // CopyTo writes a row at a time
		_, err := from.PgConn().CopyTo(ctx, bw, copyTo)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	_, err := to.PgConn().CopyFrom(ctx, pr, copyFrom)
	pr.CloseWithError(errors.New("COPY FROM ended")) // unblocks the writer if COPY FROM failed
	return err
}

// config is the run's tandem.yaml with a reconcile: section.
func (rt *reconcileTables) config(b *testing.B, tuning string, computed bool) *config.Config {
	b.Helper()
	return apptest.ParseConfig(b, reconcileConfig(rt.e.srcDSN, rt.e.tgtDSN, rt.slot, tuning, computed))
}

// computedColumn is the benchmark's one column computed by CEL (with the
// same values), which makes the sweep compare every row in tandem rather
// than chunk summaries on the servers.
const computedColumn = "visits: row.visits + 0"

// reconcileConfig is the backfill benchmark's config, its mapping's visits
// column computed when computed is set.
func reconcileConfig(srcDSN, tgtDSN, slot, tuning string, computed bool) string {
	yaml := pgBackfillConfig(srcDSN, tgtDSN, slot, tuning)
	if computed {
		yaml = strings.Replace(yaml, "visits: row.visits", computedColumn, 1)
	}
	return yaml
}

// measureScan scans the source's table and then the target's with COPY TO
// STDOUT into io.Discard, reconcileScanAttempts times, and returns the
// fastest attempt's times, with the CPU use of the machine while it ran.
func (rt *reconcileTables) measureScan(ctx context.Context, b *testing.B) (src, tgt time.Duration, cpu cpuUse) {
	b.Helper()
	best := time.Duration(math.MaxInt64)
	for range reconcileScanAttempts {
		cpu0 := sampleCPU(rt.e.postmasters...)
		var took [2]time.Duration
		for i, side := range []struct {
			conn  *pgx.Conn
			table string
		}{{rt.src, "bench.accounts"}, {rt.tgt, "public.accounts"}} {
			begin := time.Now()
			tag, err := side.conn.PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT `+backfillColumns+` FROM `+side.table+`) TO STDOUT`)
			took[i] = time.Since(begin)
			if err != nil {
				b.Fatalf("limit: scan %s: %v", side.table, err)
			}
			if tag.RowsAffected() != int64(rt.n) {
				b.Fatalf("limit: scan %s read %d rows, want %d", side.table, tag.RowsAffected(), rt.n)
			}
		}
		use := cpu0.until(sampleCPU(rt.e.postmasters...))
		if took[0]+took[1] < best {
			best, src, tgt, cpu = took[0]+took[1], took[0], took[1], use
		}
	}
	return src, tgt, cpu
}

// sweep runs app.Reconcile once with tuning and a settle time of
// reconcileSweepSettle (warnings logged only).
func (rt *reconcileTables) sweep(ctx context.Context, b *testing.B, tuning string, computed bool) (reconcileSweep, *reconcile.Result) {
	b.Helper()
	return sweepOnce(ctx, b, rt.config(b, tuning, computed), computed, rt.e.postmasters)
}

// sweepOnce runs app.Reconcile once on cfg, whose mapping computes a
// column when computed, with a settle time of reconcileSweepSettle
// (warnings logged only), measuring the CPU of the servers pids too.
func sweepOnce(ctx context.Context, b *testing.B, cfg *config.Config, computed bool, pids []int) (reconcileSweep, *reconcile.Result) {
	b.Helper()
	tuning := fmt.Sprintf("chunk_rows %d", cfg.Reconcile.ChunkRows)
	ctx, cancel := context.WithTimeout(ctx, reconcileWithin)
	defer cancel()
	log := slog.New(slog.NewTextHandler(apptest.LogWriter{TB: b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runtime.GC() // the heap of what ran before is not the sweep's
	gc := watchGC()
	cpu0 := sampleCPU(pids...)
	begin := time.Now()
	res, err := app.Reconcile(ctx, cfg, app.ReconcileOptions{Logger: log, Settle: reconcileSweepSettle})
	took := time.Since(begin)
	cpu := cpu0.until(sampleCPU(pids...))
	if err != nil {
		b.Fatalf("reconcile, %s: %v", tuning, err)
	}
	s := reconcileSweep{chunkRows: cfg.Reconcile.ChunkRows, computed: computed, took: took, sweep: res.Report.Took, cpu: cpu, gc: gc.stop(), drift: res.Report.Drift()}
	for _, m := range res.Report.Mappings {
		s.checked += m.Checked
		s.summarised += m.Summarised
	}
	if want := !computed; (s.summarised > 0) != want {
		b.Fatalf("reconcile, %s, computed column %v: %d rows summarised, want summaries %v", tuning, computed, s.summarised, want)
	}
	return s, res
}

// gcUse is the Go runtime's garbage collection over a sweep. (Its own
// estimate of the GC's CPU time counts idle mark workers by wall time, so
// it says little on a busy machine: a CPU profile shows the GC's share.)
type gcUse struct {
	cycles   uint64
	peakLive uint64 // the largest live heap after a GC, bytes
	limit    int64  // the memory limit (GOMEMLIMIT) meanwhile
}

func (g gcUse) String() string {
	limit := "none"
	if g.limit < math.MaxInt64 {
		limit = fmt.Sprintf("%d MiB", g.limit>>20)
	}
	return fmt.Sprintf("Go GC: %d cycles, peak live heap %d MiB (%d bytes per table row), memory limit %s",
		g.cycles, g.peakLive>>20, g.peakLive/reconcileRows, limit)
}

// gcWatch samples the live heap until stop.
type gcWatch struct {
	start gcUse
	done  chan struct{}
	peak  chan uint64
}

// gcSample reads the GC cycles and CPU so far, and the live heap.
func gcSample() gcUse {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	g := gcUse{limit: debug.SetMemoryLimit(-1)}
	if s[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		g.peakLive = s[1].Value.Uint64()
	}
	return g
}

// watchGC starts sampling the live heap every 100 ms.
func watchGC() *gcWatch {
	w := &gcWatch{start: gcSample(), done: make(chan struct{}), peak: make(chan uint64)}
	go func() {
		peak := w.start.peakLive
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				w.peak <- max(peak, gcSample().peakLive)
				return
			case <-t.C:
				peak = max(peak, gcSample().peakLive)
			}
		}
	}()
	return w
}

// stop ends the sampling and returns the GC's use since watchGC.
func (w *gcWatch) stop() gcUse {
	close(w.done)
	peak := <-w.peak
	end := gcSample()
	return gcUse{cycles: end.cycles - w.start.cycles, peakLive: peak, limit: end.limit}
}

// corrupt changes the balance of the target's row id (by a cent, which
// the canonical comparison of numeric(12,2) must see) and returns id.
func (rt *reconcileTables) corrupt(ctx context.Context, b *testing.B, id int) int {
	b.Helper()
	tag, err := rt.tgt.Exec(ctx, `UPDATE public.accounts SET balance = balance + 0.01 WHERE id = $1`, id)
	if err != nil {
		b.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		b.Fatalf("corrupt row %d: %d rows updated", id, tag.RowsAffected())
	}
	return id
}

// checkOneMismatch fails b unless res holds exactly one drifted row: the
// target's row id, a mismatch in balance.
func checkOneMismatch(b *testing.B, res *reconcile.Result, id int) {
	b.Helper()
	if len(res.Report.Mappings) != 1 {
		b.Fatalf("%d mappings reported, want 1", len(res.Report.Mappings))
	}
	m := res.Report.Mappings[0]
	if m.Drift() != 1 || m.Mismatch != 1 || m.InFlight != 0 || m.Suspended != 0 || len(m.Drifted) != 1 {
		b.Fatalf("one corrupted row: missing %d, extra %d, mismatch %d, in flight %d, suspended %d, want exactly 1 mismatch; samples %+v",
			m.Missing, m.Extra, m.Mismatch, m.InFlight, m.Suspended, m.Samples)
	}
	d := m.Drifted[0]
	if d.Kind != reconcile.KindMismatch || d.Table != "public.accounts" || fmt.Sprint(d.Key["id"]) != fmt.Sprint(id) ||
		!slices.Equal(d.Columns, []string{"balance"}) {
		b.Fatalf("one corrupted row: drifted %+v, want a mismatch of public.accounts id %d in [balance]", d, id)
	}
}

// reconcileDetect is what the detection run measured.
type reconcileDetect struct {
	took   time.Duration // from calling ServeReconcile to its drift report
	pass   time.Duration // the pass's own time, as it logs it (connecting excluded)
	settle time.Duration // reconcile.settle
}

// detectReads is how many reads one pass of n rows with one mismatch takes
// from the rate limiter at the default chunk_rows: the identity mapping's
// key copies the source's integer key, so the target is walked beside the
// source: chunk source rows and chunk target rows per page (each until a
// short page, so n/chunk + 1 pages), and the two re-checks' two rows each.
func detectReads(n int) int {
	chunk := config.DefaultReconcileChunk
	return 2*(n/chunk+1)*chunk + 4
}

// detectBurst is the reads the default rate limiter allows at once, and
// holds when a pass starts.
var detectBurst = max(config.DefaultReconcileChunk, config.DefaultReconcileRate)

// readTime is how long the rate limiter makes a pass of n rows read.
func readTime(n int) time.Duration {
	return seconds(float64(detectReads(n)-detectBurst) / config.DefaultReconcileRate)
}

// waits is the pass's time beyond its reads: settling the difference.
func (d reconcileDetect) waits() time.Duration { return d.pass - readTime(reconcileDetectRows) }

// settles is the waits in whole reconcile.settle times.
func (d reconcileDetect) settles() int {
	return int(math.Round(d.waits().Seconds() / d.settle.Seconds()))
}

// predicted is the model's pass of the measured run: its reads at the rate
// and its settle waits.
func (d reconcileDetect) predicted() time.Duration {
	return readTime(reconcileDetectRows) + time.Duration(d.settles())*d.settle
}

// extrapolated is the detection time of n rows: the reads at the rate, and
// what did not depend on the rows (opening, settling) as measured.
func (d reconcileDetect) extrapolated(n int) time.Duration {
	return readTime(n) + d.took - readTime(reconcileDetectRows)
}

func (d reconcileDetect) report(b *testing.B) {
	b.ReportMetric(d.took.Seconds(), "detect_50k_s")
	b.ReportMetric(d.predicted().Seconds(), "detect_50k_model_pass_s")
	b.ReportMetric(d.extrapolated(reconcileRows).Seconds(), "detect_1M_s")
}

func (d reconcileDetect) summary() string {
	return strings.Join([]string{
		fmt.Sprintf("continuous mode (ServeReconcile; defaults: %s reads/s, chunk_rows %d, settle %s, interval %s), one corrupted row of %s: reported %.1f s after the call",
			thousands(config.DefaultReconcileRate), config.DefaultReconcileChunk, d.settle, config.DefaultReconcileInterval, thousands(reconcileDetectRows), d.took.Seconds()),
		fmt.Sprintf("  opening %.1f s + the pass %.1f s; model of the pass %.1f s = (%s reads - burst %s) / rate = %.1f s, + %d x settle %s",
			(d.took - d.pass).Seconds(), d.pass.Seconds(), d.predicted().Seconds(), thousands(float64(detectReads(reconcileDetectRows))), thousands(float64(detectBurst)),
			readTime(reconcileDetectRows).Seconds(), d.settles(), d.settle),
		fmt.Sprintf("  reads = 2 x (N/chunk + 1) x chunk (source rows, target rows walked in key order) + 4 (two re-checks); %s rows: %s reads = %.1f s + the rest as measured %.1f s = %.0f s (%.1f min)",
			thousands(reconcileRows), thousands(float64(detectReads(reconcileRows))), readTime(reconcileRows).Seconds(),
			(d.took - readTime(reconcileDetectRows)).Seconds(), d.extrapolated(reconcileRows).Seconds(), d.extrapolated(reconcileRows).Minutes()),
		"  a row is reported at the end of the first pass that reads it; corrupted just after a pass read it, it waits for the rest of that pass and the whole next one (passes longer than the interval run back to back): up to about twice that",
	}, "\n")
}

// measureDetection corrupts one row of reconcileDetectRows equal rows and
// runs continuous reconcile (ServeReconcile, the config's defaults) until
// it reports the drift.
func measureDetection(b *testing.B) reconcileDetect {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*reconcileWithin)
	defer cancel()
	rt := newReconcileTables(ctx, b, reconcileDetectRows)
	id := rt.corrupt(ctx, b, reconcileDetectRows/3)
	cfg := rt.config(b, "", false)
	if cfg.Reconcile.MaxRowsPerSecond != config.DefaultReconcileRate || cfg.Reconcile.ChunkRows != config.DefaultReconcileChunk {
		b.Fatalf("detection: reconcile config %+v, want the defaults", cfg.Reconcile)
	}
	d := reconcileDetect{settle: cfg.Reconcile.Settle}
	ctx, cancelServe := context.WithTimeout(ctx, reconcileWithin)
	defer cancelServe()
	tap := &logTap{records: make(chan slog.Record, 64)}
	served := make(chan error, 1)
	begin := time.Now()
	go func() { served <- app.ServeReconcile(ctx, cfg, slog.New(tap)) }()
wait:
	for {
		select {
		case <-ctx.Done():
			b.Fatalf("detection: no drift reported within %s", reconcileWithin)
		case err := <-served:
			b.Fatalf("detection: ServeReconcile returned early: %v", err)
		case r := <-tap.records:
			switch {
			case r.Message == "reconcile found drift":
				d.took = r.Time.Sub(begin)
				if rows := recordAttr(r, "rows"); rows.Kind() != slog.KindInt64 || rows.Int64() != 1 {
					b.Fatalf("detection: %s rows drifted, want 1 (row %d corrupted): %s", rows, id, recordAttrs(r))
				}
				took := recordAttr(r, "took")
				if took.Kind() != slog.KindDuration {
					b.Fatalf("detection: the drift report says no pass time: %s", recordAttrs(r))
				}
				d.pass = took.Duration()
				break wait
			case r.Level >= slog.LevelWarn || r.Message == "reconcile: no drift":
				b.Fatalf("detection: %s %s", r.Message, recordAttrs(r))
			}
		}
	}
	cancelServe()
	if err := <-served; err != nil {
		b.Fatalf("detection: ServeReconcile: %v", err)
	}
	logSummary(b, "\n"+d.summary())
	if d.settles() < 1 || (d.pass-d.predicted()).Abs() > detectTolerance {
		b.Errorf("detection: the pass took %.1f s, the model (reads at the rate, then whole settle waits) %.1f s: the extrapolation to %s rows does not hold",
			d.pass.Seconds(), d.predicted().Seconds(), thousands(reconcileRows))
	}
	return d
}

// logTap is a slog.Handler that hands each record of level info and above
// to a channel, dropping what the channel cannot take.
type logTap struct{ records chan slog.Record }

func (t *logTap) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (t *logTap) Handle(_ context.Context, r slog.Record) error {
	select {
	case t.records <- r.Clone():
	default:
	}
	return nil
}

func (t *logTap) WithAttrs([]slog.Attr) slog.Handler { return t }
func (t *logTap) WithGroup(string) slog.Handler      { return t }

// recordAttr returns the value of r's attribute key, the zero Value when
// absent.
func recordAttr(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// recordAttrs renders r's attributes as key=value.
func recordAttrs(r slog.Record) string {
	var parts []string
	r.Attrs(func(a slog.Attr) bool {
		parts = append(parts, a.String())
		return true
	})
	return strings.Join(parts, " ")
}
