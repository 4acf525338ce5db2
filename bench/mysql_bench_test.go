package bench

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The MySQL path: a MariaDB source on the test binary's shared testenv
// server, its binlog read by tandem's capturer (capture/mysql) and, as the
// physical limit, by mariadb-binlog; the pipeline writes to PostgreSQL.

const (
	// mysqlTxns is how many INSERT ... SELECT transactions make the
	// `changes` rows of a MySQL run: 200 of 1,000 rows each.
	mysqlTxns = 200
	// mysqlBinlogAttempts is how many times mariadb-binlog reads the
	// range, keeping the fastest (a physical limit is the best run).
	mysqlBinlogAttempts = 3

	// Aim stated by the issue; a run below it is reported, not failed.
	aimMySQLCaptureOverBinlog = 0.50
)

// mysqlSourceDDL is the MariaDB source table, of the same shape as the
// PostgreSQL benchmarks' bench.items.
const mysqlSourceDDL = `CREATE TABLE items (
	id         BIGINT PRIMARY KEY,
	name       VARCHAR(64) NOT NULL,
	qty        INT NOT NULL,
	price      DECIMAL(10,2) NOT NULL,
	updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) CHARACTER SET utf8mb4`

// mysqlPipelineConfig is the tandem.yaml of a MySQL end-to-end run: db.items
// on the MariaDB source copied column for column to public.items (the
// PostgreSQL benchmarks' targetSchema) through the embedded broker.
func mysqlPipelineConfig(srcDSN, db, tgtDSN string, serverID uint32) string {
	return fmt.Sprintf(`source:
  kind: mysql
  dsn: %q
  tables: [%s.items]
  mysql: { server_id: %d }
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
mappings:
  - from: %s.items
    to:
      - table: public.items
        key: [id]
        columns:
          id: row.id
          name: row.name
          qty: row.qty
          price: row.price
          updated_at: row.updated_at
`, srcDSN, db, serverID, tgtDSN, db)
}

// TestMySQLPipelineConfig_Compiles keeps the MySQL benchmark's config valid
// without running it.
func TestMySQLPipelineConfig_Compiles(t *testing.T) {
	cfg := apptest.ParseConfig(t, mysqlPipelineConfig("mysql://u:p@127.0.0.1:1/s", "s", "postgres://u@127.0.0.1:1/t", 5001))
	if _, err := app.CompileMappings(cfg); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkMySQLCapture commits 200,000 row inserts on a MariaDB source in
// 200 transactions, then reads that binlog range with mariadb-binlog
// (decoding every row, to /dev/null) and with tandem's capturer, and
// compares the rates. Each iteration logs its figures; the metrics are the
// last iteration's.
func BenchmarkMySQLCapture(b *testing.B) {
	var last mysqlCapture
	for b.Loop() {
		last = measureMySQLCapture(b)
	}
	last.report(b)
}

// BenchmarkMySQLEndToEnd runs the same 200,000 changes through the whole
// pipeline (MariaDB binlog -> embedded Kafka -> CEL mapping -> PostgreSQL)
// and compares the rate with COPY of the same rows into PostgreSQL, in two
// ways:
//
//   - live: the rows are committed while the pipeline runs, and the rate is
//     from the first commit to the last row in the target, as in
//     BenchmarkThroughput; on two cores the source's commits compete with
//     tandem, and bound the rate when they are the slower;
//   - backlog: the rows are committed while the pipeline is stopped, and
//     the rate is from its start (connecting, the embedded broker, joining
//     the group included) to the last row in the target: tandem alone,
//     catching up.
//
// Each iteration logs its figures; the metrics are the last iteration's.
func BenchmarkMySQLEndToEnd(b *testing.B) {
	for _, backlog := range []bool{false, true} {
		name := "live"
		if backlog {
			name = "backlog"
		}
		b.Run(name, func(b *testing.B) {
			var last mysqlEndToEnd
			for b.Loop() {
				last = measureMySQLEndToEnd(b, backlog)
			}
			last.report(b)
		})
	}
}

// mysqlEnv is one run's MariaDB source database, with the items table.
type mysqlEnv struct {
	m        *testenv.MariaDB
	dsn, db  string
	src      *sql.DB
	mariadbd int // the server's pid, for CPU accounting; 0 when unknown
}

func newMySQLEnv(b *testing.B) *mysqlEnv {
	b.Helper()
	ctx := context.Background()
	e := &mysqlEnv{m: testenv.SharedMariaDB(b), dsn: testenv.NewMariaDBDatabase(b)}
	cfg, err := mysqlurl.Parse(e.dsn)
	if err != nil {
		b.Fatal(err)
	}
	e.db = cfg.DBName
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.src = sql.OpenDB(conn)
	b.Cleanup(func() { e.src.Close() })
	if _, err := e.src.ExecContext(ctx, mysqlSourceDDL); err != nil {
		b.Fatal(err)
	}
	e.mariadbd, _ = mariadbdPid(ctx, e.src)
	return e
}

// mariadbdPid reads the server's pid from its pid file.
func mariadbdPid(ctx context.Context, db *sql.DB) (int, error) {
	var path string
	if err := db.QueryRowContext(ctx, `SELECT @@pid_file`).Scan(&path); err != nil {
		return 0, err
	}
	if !strings.HasPrefix(path, "/") {
		var dir string
		if err := db.QueryRowContext(ctx, `SELECT @@datadir`).Scan(&dir); err != nil {
			return 0, err
		}
		path = strings.TrimSuffix(dir, "/") + "/" + path
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(raw)))
}

// insertRows inserts rows first..last into items in txns INSERT ... SELECT
// transactions of equal size, generated on the server from the sequence
// engine, and returns when the first one committed.
func (e *mysqlEnv) insertRows(ctx context.Context, first, last int64, txns int) (firstCommit time.Time, err error) {
	total := last - first + 1
	per := total / int64(txns)
	for i := range int64(txns) {
		lo, hi := first+i*per, first+(i+1)*per-1
		if i == int64(txns)-1 {
			hi = last
		}
		q := fmt.Sprintf(`INSERT INTO items (id, name, qty, price)
SELECT seq, CONCAT('item-', seq), seq %% 100, CAST((seq %% 100000) / 100 AS DECIMAL(10,2)) FROM seq_%d_to_%d`, lo, hi)
		if _, err := e.src.ExecContext(ctx, q); err != nil {
			return firstCommit, fmt.Errorf("insert rows %d to %d: %w", lo, hi, err)
		}
		if i == 0 {
			firstCommit = time.Now()
		}
	}
	return firstCommit, nil
}

// binlogEnd reads where the server's binlog ends now.
func binlogEnd(ctx context.Context, db *sql.DB) (mysql.Position, error) {
	rows, err := db.QueryContext(ctx, `SHOW MASTER STATUS`)
	if err != nil {
		return mysql.Position{}, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return mysql.Position{}, err
	}
	if !rows.Next() {
		return mysql.Position{}, errors.Join(errors.New("SHOW MASTER STATUS is empty: no binlog"), rows.Err())
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return mysql.Position{}, err
	}
	off, err := strconv.ParseUint(string(vals[1]), 10, 32)
	if err != nil {
		return mysql.Position{}, fmt.Errorf("SHOW MASTER STATUS position %q: %w", vals[1], err)
	}
	return mysql.Position{File: string(vals[0]), Offset: uint32(off)}, nil
}

// binlogFiles lists the server's binlog files from first to last, in order.
func binlogFiles(ctx context.Context, db *sql.DB, first, last string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SHOW BINARY LOGS`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		// Names of one base, zero-padded sequence numbers: they order as text.
		if n := string(vals[0]); n >= first && n <= last {
			out = append(out, n)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0] != first || out[len(out)-1] != last {
		return nil, fmt.Errorf("binlog files from %s to %s: the server lists %v", first, last, out)
	}
	return out, nil
}

// binlogRead is one mariadb-binlog read of a range.
type binlogRead struct {
	took time.Duration
	cpu  time.Duration // mariadb-binlog's user + system time
	rows int64         // row images it decoded
}

// readBinlog runs mariadb-binlog over the binlog from `from` to `to`,
// decoding every row event into its values (--verbose,
// --base64-output=decode-rows) and counting the inserted rows as the output
// streams by, mysqlBinlogAttempts times, and returns the fastest read.
func (e *mysqlEnv) readBinlog(ctx context.Context, b *testing.B, from, to mysql.Position) binlogRead {
	b.Helper()
	files, err := binlogFiles(ctx, e.src, from.File, to.File)
	if err != nil {
		b.Fatal(err)
	}
	bin, err := exec.LookPath("mariadb-binlog")
	if err != nil {
		b.Fatalf("mariadb-binlog, the limit the capture is measured against, is not installed (the mariadb-client package): %v", err)
	}
	args := []string{"--no-defaults", "--read-from-remote-server", "--host=127.0.0.1", "--port=" + strconv.Itoa(e.m.Port),
		"--user=" + e.m.User, "--skip-ssl", "--base64-output=decode-rows", "--verbose",
		"--start-position=" + strconv.FormatUint(uint64(from.Offset), 10), "--stop-position=" + strconv.FormatUint(uint64(to.Offset), 10)}
	args = append(args, files...)
	best := binlogRead{took: time.Duration(math.MaxInt64)}
	for range mysqlBinlogAttempts {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"MYSQL_PWD=" + e.m.Password, "LC_ALL=C"}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		begin := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var r binlogRead
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for sc.Scan() {
			if bytes.HasPrefix(sc.Bytes(), []byte("### INSERT INTO ")) {
				r.rows++
			}
		}
		scanErr := sc.Err()
		err = cmd.Wait()
		r.took = time.Since(begin)
		if err != nil || scanErr != nil {
			b.Fatalf("mariadb-binlog: %v\n%s", errors.Join(err, scanErr), stderr.Bytes())
		}
		r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		if r.took < best.took {
			best = r
		}
	}
	return best
}

// mysqlServerID is a replica server id of its own for each capturer a
// benchmark starts, so no two dump threads on the server share one.
func mysqlServerID() uint32 { return 5000 + uint32(runs.Add(1)) }

// newCapture returns tandem's capturer of db.items, set up: at the position
// store holds, else at the binlog's current end.
func newCapture(ctx context.Context, dsn, db string, store *capturetest.MemPositions, serverID uint32) (*mysql.Source, error) {
	src, err := mysql.New(mysql.Config{DSN: dsn, ServerID: serverID, Tables: []change.Table{{Schema: db, Name: "items"}},
		Store: store, StoreKey: "bench"}, mysql.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	if err := src.Setup(ctx); err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

// captured is what one streamRows call saw.
type captured struct {
	took     time.Duration // from calling Stream to the want-th event
	batches  int           // batches with events
	maxBatch int           // events in the largest batch
}

// streamRows streams src until want events arrived, acknowledging each
// batch with a position as it arrives (the capturer's consumer does nothing
// else), and returns how long it took. onBatch, if not nil, is called with
// the running count after each batch with events.
func streamRows(ctx context.Context, src capture.Source, want int, onBatch func(n int)) (captured, error) {
	ctx, cancel := context.WithTimeout(ctx, deliverWithin)
	defer cancel()
	var (
		c     captured
		n     int
		begin = time.Now()
		done  = make(chan struct{})
		errc  = make(chan error, 1)
	)
	go func() {
		errc <- src.Stream(ctx, func(_ context.Context, bt change.Batch) error {
			if bt.Pos != nil {
				if err := src.Ack(bt.Pos); err != nil {
					return err
				}
			}
			if len(bt.Events) == 0 || n >= want {
				return nil
			}
			n += len(bt.Events)
			c.batches++
			c.maxBatch = max(c.maxBatch, len(bt.Events))
			if onBatch != nil {
				onBatch(n)
			}
			if n >= want {
				c.took = time.Since(begin)
				close(done)
			}
			return nil
		})
	}()
	select {
	case <-done:
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			return c, err
		}
		return c, nil
	case err := <-errc:
		if err == nil {
			err = errors.New("Stream returned")
		}
		return c, fmt.Errorf("%d of %d events captured: %w", n, want, err)
	}
}

// mysqlCapture is what a MySQL capture run measured, per second.
type mysqlCapture struct {
	capture, binlog float64 // tandem's capturer rows/s, mariadb-binlog rows/s
	generate        float64 // rows/s the workload committed
	binlogBytes     int64   // size of the range read
	read            binlogRead
	got             captured
	tandemCPU       time.Duration // this process's CPU time while the capturer ran
	serverCPU       time.Duration // mariadbd's, while the capturer ran
}

func (c mysqlCapture) report(b *testing.B) {
	b.ReportMetric(c.capture, "capture_rows/s")
	b.ReportMetric(c.binlog, "mariadb-binlog_rows/s")
	b.ReportMetric(c.capture/c.binlog, "capture/mariadb-binlog")
}

func (c mysqlCapture) summary() string {
	aim := "meets the aim"
	if c.capture/c.binlog < aimMySQLCaptureOverBinlog {
		aim = "BELOW the aim"
	}
	cpu := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s" }
	return strings.Join([]string{
		fmt.Sprintf("mysql capture: %s row inserts in %d transactions (%.1f MiB of binlog), committed on the source at %s rows/s",
			thousands(changes), mysqlTxns, float64(c.binlogBytes)/(1<<20), thousands(c.generate)),
		fmt.Sprintf("  %-16s %9s rows/s   (mariadb-binlog decoding the same range %s/s: %.2fx; %s of >= %.2fx)",
			"capture", thousands(c.capture), thousands(c.binlog), c.capture/c.binlog, aim, aimMySQLCaptureOverBinlog),
		fmt.Sprintf("  %s batches of %s events at most; CPU: capturer (this process) %s in %s wall, mariadbd %s; mariadb-binlog %s in %s wall",
			thousands(float64(c.got.batches)), thousands(float64(c.got.maxBatch)), cpu(c.tandemCPU), cpu(c.got.took), cpu(c.serverCPU),
			cpu(c.read.cpu), cpu(c.read.took)),
	}, "\n")
}

// measureMySQLCapture runs one capture measurement on a fresh database.
func measureMySQLCapture(b *testing.B) mysqlCapture {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newMySQLEnv(b)
	store := &capturetest.MemPositions{}
	src, err := newCapture(ctx, e.dsn, e.db, store, mysqlServerID())
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	from := src.Acked() // the binlog's end before the workload

	begin := time.Now()
	if _, err := e.insertRows(ctx, 1, changes, mysqlTxns); err != nil {
		b.Fatal(err)
	}
	generated := time.Since(begin)
	to, err := binlogEnd(ctx, e.src)
	if err != nil {
		b.Fatal(err)
	}

	read := e.readBinlog(ctx, b, from, to)
	if read.rows != changes {
		b.Fatalf("mariadb-binlog decoded %d inserted rows between %s and %s, want %d", read.rows, from, to, changes)
	}
	cpu0 := sampleCPU(e.mariadbd)
	got, err := streamRows(ctx, src, changes, nil)
	if err != nil {
		b.Fatal(err)
	}
	cpu := cpu0.until(sampleCPU(e.mariadbd))
	c := mysqlCapture{
		capture: changes / got.took.Seconds(), binlog: changes / read.took.Seconds(), generate: changes / generated.Seconds(),
		read: read, got: got, tandemCPU: cpu.self, serverCPU: cpu.postgres, // sampleCPU counts the pids given under postgres
	}
	if from.File == to.File {
		c.binlogBytes = int64(to.Offset) - int64(from.Offset)
	}
	logSummary(b, "\n"+c.summary())
	return c
}

// mysqlEndToEnd is what a MySQL end-to-end run measured, per second.
type mysqlEndToEnd struct {
	backlog      bool          // the rows were committed before the pipeline started
	capture, e2e float64       // tandem: rows/s captured, rows/s in the target
	copy         float64       // physical limit: COPY rows/s into the target
	generate     float64       // rows/s the workload committed
	ready        time.Duration // backlog: how long the pipeline took to be ready
}

func (t mysqlEndToEnd) report(b *testing.B) {
	b.ReportMetric(t.capture, "capture_rows/s")
	b.ReportMetric(t.e2e, "e2e_rows/s")
	b.ReportMetric(t.copy, "copy_rows/s")
	b.ReportMetric(t.e2e/t.copy, "e2e/copy")
}

func (t mysqlEndToEnd) summary() string {
	aim := "meets the aim"
	if t.e2e/t.copy < aimE2EOverCopy {
		aim = "BELOW the aim"
	}
	from := "while tandem ran; rates from the first commit"
	if t.backlog {
		from = fmt.Sprintf("before tandem started; rates from its start (ready after %.1f s)", t.ready.Seconds())
	}
	return strings.Join([]string{
		fmt.Sprintf("mysql end-to-end: %s row inserts in %d transactions on MariaDB, committed at %s rows/s %s, to PostgreSQL",
			thousands(changes), mysqlTxns, thousands(t.generate), from),
		fmt.Sprintf("  %-16s %9s rows/s", "capture", thousands(t.capture)),
		fmt.Sprintf("  %-16s %9s rows/s   (COPY %s rows/s: %.2fx; %s of >= %.2fx)", "end-to-end", thousands(t.e2e), thousands(t.copy), t.e2e/t.copy, aim, aimE2EOverCopy),
	}, "\n")
}

// measureMySQLEndToEnd runs one end-to-end measurement on fresh databases:
// the target on the shared PostgreSQL server, where the COPY that measures
// the limit runs too. With backlog, the pipeline runs once to save its
// start position, stops, and starts again after the rows are committed.
func measureMySQLEndToEnd(b *testing.B, backlog bool) mysqlEndToEnd {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newMySQLEnv(b)
	tgtDSN := testenv.NewDatabase(b)
	tgt, err := pgxpool.New(ctx, tgtDSN)
	if err != nil {
		b.Fatal(err)
	}
	defer tgt.Close()
	if _, err := tgt.Exec(ctx, targetSchema); err != nil {
		b.Fatal(err)
	}
	pids := []int{e.mariadbd}
	if pm, err := postmaster(ctx, tgt); err == nil {
		pids = append(pids, pm)
	}
	cfg := apptest.ParseConfig(b, mysqlPipelineConfig(e.dsn, e.db, tgtDSN, mysqlServerID()))
	start := func() *apptest.Running {
		return apptest.Start(b, cfg, app.Roles{Capture: true, Apply: true}, slog.LevelWarn)
	}
	r := start() // saves the binlog's end as its start position in the target
	if backlog {
		r.Stop(b)
	}

	cpu0 := sampleCPU(pids...)
	begin := time.Now()
	first, err := e.insertRows(ctx, 1, changes, mysqlTxns)
	if err != nil {
		b.Fatal(err)
	}
	generated := time.Since(begin)
	var ready time.Duration
	if backlog {
		cpu0 = sampleCPU(pids...)
		first = time.Now()
		r = start()
		ready = time.Since(first)
	}

	var capturedAt time.Time
	var inTarget int64
	done, err := poll(deliverWithin, func() (bool, error) {
		if err := r.Failed(); err != nil {
			return false, err
		}
		if capturedAt.IsZero() && counter(r.Reg, "tandem_capture_events_total") >= changes {
			capturedAt = time.Now()
		}
		if counter(r.Reg, "tandem_apply_rows_total") < changes {
			return false, nil
		}
		err := tgt.QueryRow(ctx, `SELECT count(*) FROM public.items`).Scan(&inTarget)
		return inTarget == changes, err
	})
	if err != nil {
		b.Fatalf("%d changes not delivered: %v (captured %.0f, applied %.0f, target rows %d)", changes, err,
			counter(r.Reg, "tandem_capture_events_total"), counter(r.Reg, "tandem_apply_rows_total"), inTarget)
	}
	cpu := cpu0.until(sampleCPU(pids...))
	batches, inSink := histogram(r.Reg, "tandem_apply_batch_duration_seconds")
	r.Stop(b)

	t := mysqlEndToEnd{
		backlog: backlog, ready: ready,
		capture:  changes / capturedAt.Sub(first).Seconds(),
		e2e:      changes / done.Sub(first).Seconds(),
		copy:     changes / (&env{tgt: tgt}).copyRows(ctx, b).Seconds(),
		generate: changes / generated.Seconds(),
	}
	logSummary(b, "\n"+t.summary()+"\n"+
		fmt.Sprintf("  apply: %s batches of %s changes on average; writing them to the target (sink.Apply) took %.1f s of the %.1f s end to end\n",
			thousands(float64(batches)), thousands(changes/float64(max(batches, 1))), inSink, done.Sub(first).Seconds())+
		"  "+strings.Replace(cpu.String(), "postgres", "servers (mariadbd, postgres)", 1))
	return t
}
