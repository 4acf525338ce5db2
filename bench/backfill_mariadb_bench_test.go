package bench

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// BenchmarkBackfillIntoMariaDB copies the backfill benchmark's 1,000,000
// PostgreSQL rows into a MariaDB target with tandem backfill (defaults),
// beside the limit measured in the same run: the source's COPY TO STDOUT
// piped into LOAD DATA LOCAL INFILE of a scratch table of the target's
// shape (the fastest way into InnoDB, in the same text format).
func BenchmarkBackfillIntoMariaDB(b *testing.B) {
	var last mariaDBBackfill
	for b.Loop() {
		last = measureBackfillIntoMariaDB(b)
	}
	b.ReportMetric(last.run.rate(), "backfill_rows/s")
	b.ReportMetric(last.limit, "load_data_rows/s")
	b.ReportMetric(last.run.rate()/last.limit, "backfill/load_data")
	b.ReportMetric(float64(last.run.child.PeakRSS)/1024, "peak_rss_MiB")
}

// mariaDBBackfill is what a run measured.
type mariaDBBackfill struct {
	limit    float64 // rows/s
	limitCPU cpuUse
	run      backfillRunResult
}

func measureBackfillIntoMariaDB(b *testing.B) mariaDBBackfill {
	ctx, cancel := context.WithTimeout(context.Background(), 2*backfillWithin)
	defer cancel()
	src := newPGBackfillSource(ctx, b)
	dsn := testenv.NewMariaDBDatabase(b)
	tgt, err := mysqlurl.Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tgt.Close() })
	var db string
	if err := tgt.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		b.Fatal(err)
	}
	// The target's table, written by tandem, and the scratch table of the
	// same shape that the limit's LOAD DATA writes: the MariaDB source's.
	for _, table := range []string{"accounts", "accounts_copy"} {
		if _, err := tgt.ExecContext(ctx, strings.Replace(mysqlBackfillSourceDDL, "accounts", table, 1)); err != nil {
			b.Fatal(err)
		}
	}
	pids := src.pids
	if pid, err := mariadbdPid(ctx, tgt); err == nil {
		pids = append(pids[:len(pids):len(pids)], pid)
	}
	var m mariaDBBackfill
	took, cpu := loadDataLimit(ctx, b, src, tgt, pids)
	m.limit, m.limitCPU = backfillRows/took.Seconds(), cpu
	want, err := mariaDBRowsHash(ctx, tgt, "accounts_copy")
	if err != nil {
		b.Fatal(err)
	}

	// The PostgreSQL source's config, with a MySQL target, its table, and
	// tandem's state in a database of the run's own.
	yaml := strings.Replace(src.config(dsn, ""), "target:\n  kind: postgres\n",
		"target:\n  kind: mysql\n  state_schema: "+db+"_tandem\n", 1)
	yaml = strings.Replace(yaml, "table: public.accounts", "table: accounts", 1)
	cpu0, irq0 := sampleCPU(pids...), interrupts()
	run := runBackfillChild(ctx, b, backfillSpec{Config: yaml})
	m.run = backfillRunResult{setting: backfillDefault, child: run, cpu: cpu0.until(sampleCPU(pids...)), interrupts: interrupts() - irq0}
	if src.done != nil {
		if err := src.done(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if run.Rows != backfillRows {
		b.Errorf("backfill copied %d rows, want %d", run.Rows, backfillRows)
	}
	if got, err := mariaDBRowsHash(ctx, tgt, "accounts"); err != nil {
		b.Fatal(err)
	} else if got != want {
		b.Errorf("backfill: the target holds %s, the limit's LOAD DATA of the source %s", got, want)
	}
	servers := "servers (postgres, mariadbd)"
	c := run
	logSummary(b, strings.Join([]string{
		fmt.Sprintf("postgres -> mariadb backfill: %s rows of 6 columns, identity mapping, into an empty table", thousands(backfillRows)),
		fmt.Sprintf("  %-40s %9s rows/s   %s", "limit: COPY TO STDOUT | LOAD DATA", thousands(m.limit), m.limitCPU.breakdown("copy", servers)),
		fmt.Sprintf("  %-40s %9s rows/s   (%.2fx the limit): %.1f s from pipeline.Run to its return",
			"backfill, "+backfillDefault.name, thousands(m.run.rate()), m.run.rate()/m.limit, c.Seconds),
		fmt.Sprintf("      peak RSS %.1f MiB (VmHWM of the backfill process); %d GCs", float64(c.PeakRSS)/1024, c.NumGC),
		"      " + m.run.cpu.breakdownWith("tandem", time.Duration(c.CPUSeconds*float64(time.Second)), servers),
	}, "\n"))
	return m
}

// loadDataLimit loads the source's rows into accounts_copy with LOAD DATA
// LOCAL INFILE backfillCopyAttempts times and returns the fastest load,
// with the CPU use of the machine while it ran.
func loadDataLimit(ctx context.Context, b *testing.B, src *backfillSource, tgt *sql.DB, pids []int) (time.Duration, cpuUse) {
	b.Helper()
	best, bestCPU := time.Duration(math.MaxInt64), cpuUse{}
	for i := range backfillCopyAttempts {
		if _, err := tgt.ExecContext(ctx, `TRUNCATE accounts_copy`); err != nil {
			b.Fatal(err)
		}
		pr, pw := io.Pipe()
		name := fmt.Sprintf("tandem_bench_%d", i)
		gomysql.RegisterReaderHandler(name, func() io.Reader { return bufio.NewReaderSize(pr, 256<<10) })
		cpu0 := sampleCPU(pids...)
		begin := time.Now()
		go func() { pw.CloseWithError(src.copyTo(ctx, pw)) }()
		res, err := tgt.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+name+`' INTO TABLE accounts_copy (`+backfillColumns+`)`)
		took := time.Since(begin)
		cpu := cpu0.until(sampleCPU(pids...))
		gomysql.DeregisterReaderHandler(name)
		pr.CloseWithError(errors.New("LOAD DATA ended"))
		if err != nil {
			b.Fatalf("limit: LOAD DATA into accounts_copy: %v", err)
		}
		if n, _ := res.RowsAffected(); n != backfillRows {
			b.Fatalf("limit: LOAD DATA into accounts_copy loaded %d rows, want %d", n, backfillRows)
		}
		if took < best {
			best, bestCPU = took, cpu
		}
	}
	return best, bestCPU
}

// mariaDBRowsHash sums up a table of the MariaDB target: its row count and
// an order-independent hash of its rows' text.
func mariaDBRowsHash(ctx context.Context, db *sql.DB, table string) (string, error) {
	var s string
	err := db.QueryRowContext(ctx, `SELECT CONCAT(COUNT(*), ' rows, hash ', COALESCE(SUM(CRC32(CONCAT_WS('|', id, email, balance, created_at, visits, COALESCE(note, '\\N')))), 0)) FROM `+table).Scan(&s)
	if err != nil {
		return "", fmt.Errorf("sum up %s: %w", table, err)
	}
	return s, nil
}
