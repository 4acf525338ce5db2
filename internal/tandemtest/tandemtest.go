// Package tandemtest runs the tandem binary in tests, as an operator or a
// supervisor does: it builds cmd/tandem once per test binary (Main), starts
// its verbs as child processes whose output is kept (Start, StartRole),
// reads their /metrics and /readyz, and sets up the shop (PostgreSQL ->
// PostgreSQL) and cart (MariaDB -> PostgreSQL) migrations on fresh
// databases with a replication slot of their own. cmd/tandem's process
// tests and the fault suite (chaos) share it.
package tandemtest

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver of DropInactiveSlot

	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/mysqlurl"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// binary is the tandem binary Main built.
var binary string

// Main builds cmd/tandem into a temporary folder, runs the tests through
// testenv.Run (which stops the servers they started) and removes the
// binary. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(tandemtest.Main(m)) }
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tandem-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "tandem")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/tandemcdc/tandem/cmd/tandem").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tandem: %v\n%s", err, out)
		return 1
	}
	return testenv.Run(m)
}

// Binary is the path of the tandem binary Main built.
func Binary() string { return binary }

// Process is a tandem process whose output is kept for assertions.
type Process struct {
	Cmd *exec.Cmd
	Out *testenv.SyncBuffer
}

// Start starts `tandem run -c cfgPath` with env added to the test's
// environment, its stdout and stderr both written to out.
func Start(t testing.TB, cfgPath string, env []string, out *testenv.SyncBuffer) *Process {
	t.Helper()
	return StartRole(t, "run", cfgPath, env, out)
}

// StartRole starts `tandem <verb> -c cfgPath` (run, capture or apply) as
// Start does.
func StartRole(t testing.TB, verb, cfgPath string, env []string, out *testenv.SyncBuffer) *Process {
	t.Helper()
	cmd := exec.Command(binary, verb, "-c", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &Process{Cmd: cmd, Out: out}
}

var httpAddr = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// HTTPAddr is where the process whose output is out serves /metrics and
// /readyz, from its last "http listening" line; "" before it logs one.
func HTTPAddr(out string) string {
	all := httpAddr.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1][1]
}

// Metric sums the samples of the metric named name that addr serves.
func Metric(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("metric line %q: %w", line, err)
			}
			sum += v
		}
	}
	return sum, sc.Err()
}

// Readyz is the status code of addr's /readyz and its body, what the
// process waits for or why it is not ready (0 and "" when it does not
// answer).
func Readyz(addr string) (code int, body string) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, ""
	}
	return resp.StatusCode, string(b)
}

// SlotName is a replication slot name unique to the database of dsn.
func SlotName(dsn string) string {
	db, _, _ := strings.Cut(dsn[strings.LastIndexByte(dsn, '/')+1:], "?")
	db = strings.ToLower(db)
	return db[max(0, len(db)-50):]
}

// DropInactiveSlot drops the replication slot named slot of the database
// of dsn once nothing streams from it.
func DropInactiveSlot(dsn, slot string) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, slot)
}

// OpenShop opens the shop migration on two fresh databases of the shared
// PostgreSQL server (OpenShopOn).
func OpenShop(ctx context.Context, t testing.TB) (m *shop.Migration, slot string) {
	t.Helper()
	return OpenShopOn(ctx, t, testenv.NewDatabase(t), testenv.NewDatabase(t))
}

// OpenShopOn creates the shop migration's schemas in the empty databases
// srcDSN and tgtDSN and opens them, closed when t ends, and names a
// replication slot of its own for it (slot names are the server's, and the
// tests beside it use theirs), dropped when t ends once nothing streams
// from it.
func OpenShopOn(ctx context.Context, t testing.TB, srcDSN, tgtDSN string) (m *shop.Migration, slot string) {
	t.Helper()
	m, err := shop.Open(ctx, srcDSN, tgtDSN, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	slot = SlotName(m.SrcDSN)
	t.Cleanup(func() { DropInactiveSlot(m.SrcDSN, slot) })
	return m, slot
}

// OpenCart creates the cart migration's tables in a fresh database of the
// shared MariaDB server (the source) and of the shared PostgreSQL one (the
// target): OpenCartOn.
func OpenCart(ctx context.Context, t testing.TB) (srcDSN, tgtDSN string, src *sql.DB, tgt *pgx.Conn, srcDB string) {
	t.Helper()
	return OpenCartOn(ctx, t, testenv.NewMariaDBDatabase(t), testenv.NewDatabase(t))
}

// OpenCartOn creates the cart migration's tables in the empty MariaDB
// database srcDSN and PostgreSQL database tgtDSN, and returns both DSNs,
// connections to each, closed when t ends, and the source database's name.
func OpenCartOn(ctx context.Context, t testing.TB, srcDSN, tgtDSN string) (_, _ string, src *sql.DB, tgt *pgx.Conn, srcDB string) {
	t.Helper()
	src, err := mysqlurl.Open(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if _, err := src.ExecContext(ctx, cart.SourceDDL); err != nil {
		t.Fatal(err)
	}
	tgt, err = pgx.Connect(ctx, tgtDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tgt.Close(context.Background()) })
	for _, stmt := range cart.TargetDDL("postgres") {
		if _, err := tgt.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := mysqlurl.Parse(srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	return srcDSN, tgtDSN, src, tgt, cfg.DBName
}

// Querier runs a query returning one row: a *pgx.Conn or a *pgxpool.Pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AppliedOffsets sums the Kafka offsets stored in the PostgreSQL target
// tgt (0 before tandem created its state): it grows with every applied
// batch, and starts again from 0 with a fresh embedded broker.
func AppliedOffsets(ctx context.Context, tgt Querier) (int64, error) {
	var n int64
	err := tgt.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM tandem.kafka_offsets`).Scan(&n)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return 0, nil
	}
	return n, err
}

// WaitApplied waits until more records than now are applied in tgt
// (AppliedOffsets), or the sum starts again below its value now (a fresh
// embedded broker), for at most within.
func WaitApplied(t testing.TB, ctx context.Context, tgt Querier, more int64, within time.Duration) {
	t.Helper()
	base, err := AppliedOffsets(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, fmt.Sprintf("%d more records applied", more), within, func() (bool, error) {
		n, err := AppliedOffsets(ctx, tgt)
		return n >= base+more || (base > 0 && n < base), err
	})
}
