package bench

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// BenchmarkBackfillSplit copies the backfill benchmark's 1,000,000-row
// table, one table, with backfill.parallel 1 and 4 (four key ranges of the
// table at once), beside the limit measured in the same run (COPY TO
// STDOUT | COPY FROM STDIN, or LOAD DATA into MariaDB), in three
// directions: PostgreSQL -> PostgreSQL, MariaDB -> PostgreSQL and
// PostgreSQL -> MariaDB. Before each copy `tandem backfill --estimate`'s
// projection (app.EstimateBackfill, sampling 3 s a table) is made of the
// same config on the same empty target, and set beside the copy's real
// duration: unthrottled at parallel 1 and 4, and throttled at parallel 4
// (max_rows_per_second half the rate parallel 4 reached). Every copy is
// checked against the limit's rows (count and hash).
func BenchmarkBackfillSplit(b *testing.B) {
	for _, dir := range []string{"postgres->postgres", "mariadb->postgres", "postgres->mariadb"} {
		b.Run(strings.ReplaceAll(dir, "->", "_to_"), func(b *testing.B) {
			var last splitBench
			for b.Loop() {
				last = measureSplit(b, dir)
			}
			p1, p4 := last.runs[0], last.runs[1]
			b.ReportMetric(p4.rate()/p1.rate(), "parallel4/parallel1")
			b.ReportMetric(p4.rate()/last.limit, "parallel4/limit")
			for _, r := range last.runs {
				b.ReportMetric(r.projected.Seconds()/r.took.Seconds(), r.name+"_projected/actual")
			}
		})
	}
}

// splitBench is what one direction measured.
type splitBench struct {
	limit float64 // rows/s
	runs  []splitRun
}

// splitRun is one copy: its setting, how long it took (from app.Run to
// its return), and what the estimate projected for it.
type splitRun struct {
	name      string
	yaml      string
	took      time.Duration
	projected time.Duration
	cpu       cpuUse
}

func (r splitRun) rate() float64 { return backfillRows / r.took.Seconds() }

// splitTarget is a fresh empty target of one direction: its DSN, a config
// from a source config for it, and the hash of its accounts table.
type splitTarget struct {
	dsn    string
	config func(srcYAML string) string
	hash   func(ctx context.Context) (string, error)
	pid    int // its server's, for CPU accounting; 0: unknown
}

func measureSplit(b *testing.B, dir string) splitBench {
	ctx, cancel := context.WithTimeout(context.Background(), 3*backfillWithin)
	defer cancel()
	var src *backfillSource
	if strings.HasPrefix(dir, "mariadb") {
		src = newMySQLBackfillSource(ctx, b)
	} else {
		src = newPGBackfillSource(ctx, b)
	}
	intoMariaDB := strings.HasSuffix(dir, "mariadb")
	newTarget := func() splitTarget {
		if !intoMariaDB {
			dsn, conn := backfillTarget(ctx, b)
			t := splitTarget{dsn: dsn, config: func(y string) string { return y },
				hash: func(ctx context.Context) (string, error) { return rowsHash(ctx, conn, "public.accounts") }}
			t.pid, _ = connPostmaster(ctx, conn)
			return t
		}
		dsn := testenv.NewMariaDBDatabase(b)
		db, err := mysqlurl.Open(dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		var name string
		if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name); err != nil {
			b.Fatal(err)
		}
		for _, table := range []string{"accounts", "accounts_copy"} {
			if _, err := db.ExecContext(ctx, strings.Replace(mysqlBackfillSourceDDL, "accounts", table, 1)); err != nil {
				b.Fatal(err)
			}
		}
		t := splitTarget{dsn: dsn, hash: func(ctx context.Context) (string, error) { return mariaDBRowsHash(ctx, db, "accounts") }}
		t.config = func(y string) string {
			y = strings.Replace(y, "target:\n  kind: postgres\n", "target:\n  kind: mysql\n  state_schema: "+name+"_tandem\n", 1)
			return strings.Replace(y, "table: public.accounts", "table: accounts", 1)
		}
		t.pid, _ = mariadbdPid(ctx, db)
		return t
	}

	// The limit, on a target of its own.
	var l splitBench
	var want string
	first := newTarget()
	if intoMariaDB {
		tgt, err := mysqlurl.Open(first.dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer tgt.Close()
		took, _ := loadDataLimit(ctx, b, src, tgt, src.pids)
		l.limit = backfillRows / took.Seconds()
		if want, err = mariaDBRowsHash(ctx, tgt, "accounts_copy"); err != nil {
			b.Fatal(err)
		}
	} else {
		_, conn := backfillTarget(ctx, b)
		took, _ := src.measureCopy(ctx, b, conn)
		l.limit = backfillRows / took.Seconds()
		var err error
		if want, err = rowsHash(ctx, conn, "public.accounts_copy"); err != nil {
			b.Fatal(err)
		}
	}

	settings := []splitRun{
		{name: "parallel1", yaml: "backfill:\n  parallel: 1\n"},
		{name: "parallel4", yaml: "backfill:\n  parallel: 4\n"},
		{name: "parallel4_throttled"}, // its rate from parallel 4's
	}
	for i := range settings {
		s := &settings[i]
		if s.name == "parallel4_throttled" {
			s.yaml = fmt.Sprintf("backfill:\n  parallel: 4\n  max_rows_per_second: %d\n", int(settings[1].rate()/2))
		}
		tgt := first
		if i > 0 {
			tgt = newTarget()
		}
		yaml := tgt.config(src.config(tgt.dsn, s.yaml))
		rep, err := app.EstimateBackfill(ctx, apptest.ParseConfig(b, yaml), nil, 3*time.Second, nil)
		if err != nil {
			b.Fatalf("%s: estimate: %v", s.name, err)
		}
		s.projected = rep.Limited
		pids := src.pids
		if tgt.pid != 0 {
			pids = append(pids[:len(pids):len(pids)], tgt.pid)
		}
		cpu0 := sampleCPU(pids...)
		run := runBackfillChild(ctx, b, backfillSpec{Config: yaml})
		s.cpu = cpu0.until(sampleCPU(pids...))
		s.took = time.Duration(run.Seconds * float64(time.Second))
		if run.Rows != backfillRows {
			b.Errorf("%s: copied %d rows, want %d", s.name, run.Rows, backfillRows)
		}
		if got, err := tgt.hash(ctx); err != nil {
			b.Fatal(err)
		} else if got != want {
			b.Errorf("%s: the target holds %s, the limit's copy of the source %s", s.name, got, want)
		}
		if src.done != nil {
			if err := src.done(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	l.runs = settings
	limitName := "COPY TO STDOUT | COPY FROM STDIN"
	switch {
	case intoMariaDB:
		limitName = "COPY TO STDOUT | LOAD DATA"
	case strings.HasPrefix(dir, "mariadb"):
		limitName = "SELECT | COPY FROM STDIN"
	}
	lines := []string{
		fmt.Sprintf("%s backfill of one table of %s rows, identity mapping, on %d cores", dir, thousands(backfillRows), runtime.NumCPU()),
		fmt.Sprintf("  %-34s %9s rows/s", "limit: "+limitName, thousands(l.limit)),
	}
	for _, r := range l.runs {
		lines = append(lines,
			fmt.Sprintf("  %-34s %9s rows/s (%.2fx the limit) in %.1f s; estimate projected %.1f s (%.2fx the real duration)",
				r.name, thousands(r.rate()), r.rate()/l.limit, r.took.Seconds(), r.projected.Seconds(), r.projected.Seconds()/r.took.Seconds()),
			"      "+r.cpu.breakdownWith("the rest of the machine (the backfill child, other load)", r.cpu.other, "servers"))
	}
	lines = append(lines, fmt.Sprintf("  parallel 4 / parallel 1: %.2fx on %d cores", l.runs[1].rate()/l.runs[0].rate(), runtime.NumCPU()))
	logSummary(b, "\n"+strings.Join(lines, "\n"))
	return l
}
