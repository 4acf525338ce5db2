package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/fixture/cart"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/tandemtest"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The two sources every scenario runs against.
const (
	postgres = "postgres" // the shop migration, PostgreSQL -> PostgreSQL
	mariadb  = "mariadb"  // the cart migration, MariaDB -> PostgreSQL
)

var sources = []string{postgres, mariadb}

// writeRate is the steady writer's transactions a second: modest, so that
// a dozen scenarios at once fit two shared cores beside the rest of the
// suite, and enough for every fault to find changes in flight.
const writeRate = 40

// flow is one migration under test: its source and target databases, the
// DSNs tandem connects through (a fault proxy's, when the scenario puts
// one on the path), the steady writer and the exact comparison of the
// target with the source, every row through the mapping's Go model
// (shop.Expected, cart.Expected).
type flow struct {
	kind            string
	srcDSN, tgtDSN  string // the servers themselves
	tandemSrc       string // what tandem connects to: srcDSN or through a proxy
	tandemTgt       string
	tgt             *pgxpool.Pool // the target, for offsets, locks and positions
	config          func(brokers []string) string
	streaming       string                          // the log line of a capture that streams
	forgedTopic     string                          // the topic of the first captured table
	forged          []byte                          // a well-formed change of that table (a Debezium envelope) that the source never made
	lockSQL         string                          // holds every target table a change writes
	positionReached func(ctx context.Context) error // waits until the acknowledged position reaches the last write
	diff            func(ctx context.Context) (diff string, rows int, err error)
	rate            int                                                             // the writer's transactions a second
	workload        func() (ops *atomic.Int64, run func(ctx context.Context) error) // a new writer: runs until ctx ends

	opsMu   sync.Mutex
	opsDone int64         // operations of the writers that ended
	opsCur  *atomic.Int64 // the running writer's
}

// set makes the flow's config hold key (section.name:
// kafka.max_record_bytes) with value, written first in its section; call
// it before newTandem.
func (f *flow) set(t testing.TB, key, value string) {
	t.Helper()
	section, name, _ := strings.Cut(key, ".")
	head := "\n" + section + ":\n"
	if !strings.Contains(f.config(nil), head) {
		t.Fatalf("set %s: the flow's config has no section %s", key, section)
	}
	base := f.config
	f.config = func(brokers []string) string {
		return strings.Replace(base(brokers), head, head+"  "+name+": "+value+"\n", 1)
	}
}

// serverIDs gives each MariaDB flow its own replica server_id: binlog
// readers of one server must differ.
var serverIDs atomic.Uint32

// openFlow opens a migration of kind on fresh databases of the shared
// servers.
func openFlow(ctx context.Context, t testing.TB, kind string) *flow {
	t.Helper()
	if kind == postgres {
		return openFlowOn(ctx, t, kind, testenv.NewDatabase(t), testenv.NewDatabase(t))
	}
	return openFlowOn(ctx, t, kind, testenv.NewMariaDBDatabase(t), testenv.NewDatabase(t))
}

// openFlowOn creates the migration's schemas in the empty databases srcDSN
// (PostgreSQL or MariaDB, after kind) and tgtDSN (PostgreSQL).
func openFlowOn(ctx context.Context, t testing.TB, kind, srcDSN, tgtDSN string) *flow {
	t.Helper()
	f := &flow{kind: kind, srcDSN: srcDSN, tgtDSN: tgtDSN, tandemSrc: srcDSN, tandemTgt: tgtDSN, rate: writeRate}
	switch kind {
	case postgres:
		m, slot := tandemtest.OpenShopOn(ctx, t, srcDSN, tgtDSN)
		f.tgt = m.Tgt
		f.config = func(brokers []string) string {
			return shop.Config(shop.ConfigOptions{Slot: slot, Brokers: brokers})
		}
		f.streaming = "streaming from replication slot"
		f.forgedTopic = "shop.shop.customers"
		f.forged = []byte(`{"before":null,"after":{"id":999999999,"name":"forged","email":"forged@example.com","created_at":"2025-01-01T00:00:00Z"},"source":{"db":"shop","schema":"shop","table":"customers"},"op":"c","ts_ms":1735689600000}`)
		f.lockSQL = `LOCK TABLE public.customers, public.orders IN ACCESS EXCLUSIVE MODE`
		f.diff = func(ctx context.Context) (string, int, error) {
			d, got, err := m.Diff(ctx)
			if err != nil {
				return "", 0, err
			}
			return d, got.Count(), nil
		}
		f.workload = func() (*atomic.Int64, func(context.Context) error) {
			w := &shop.Workload{Src: m.Src, Seed: rand.Uint64()}
			return &w.Ops, func(ctx context.Context) error { return w.Run(ctx, 0, f.rate) }
		}
		f.positionReached = func(ctx context.Context) error {
			var lsn string
			if err := m.Src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
				return err
			}
			_, err := poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
				var ok bool
				err := m.Src.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, slot, lsn).Scan(&ok)
				return ok, err
			})
			return err
		}
	case mariadb:
		_, _, src, tgtConn, srcDB := tandemtest.OpenCartOn(ctx, t, srcDSN, tgtDSN)
		pool, err := pgxpool.New(ctx, tgtDSN)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		f.tgt = pool
		id := 5000 + serverIDs.Add(1)
		f.config = func(brokers []string) string {
			return cart.Config(cart.ConfigOptions{SourceDB: srcDB, ServerID: id, Brokers: brokers})
		}
		f.streaming = "streaming the binlog"
		f.forgedTopic = "cart." + srcDB + ".carts"
		f.forged = []byte(`{"before":null,"after":{"id":999999999,"owner":"forged","total":"1.00","state":"paid","note":null,"touched":"2025-01-01T00:00:00Z"},"source":{"db":"` + srcDB + `","schema":"` + srcDB + `","table":"carts"},"op":"c","ts_ms":1735689600000}`)
		f.lockSQL = `LOCK TABLE carts_v2 IN ACCESS EXCLUSIVE MODE`
		read := cart.PostgresReader(tgtConn)
		f.diff = func(ctx context.Context) (string, int, error) {
			want, err := cart.Expected(ctx, src)
			if err != nil {
				return "", 0, err
			}
			got, err := read(ctx)
			if err != nil {
				return "", 0, err
			}
			return cmp.Diff(want, got), len(got.Carts) + len(got.Paid), nil
		}
		f.workload = func() (*atomic.Int64, func(context.Context) error) {
			// Ids far from those of the writer before (a restart of it).
			w := &cart.Workload{DB: src, Seed: rand.Uint64(), Base: time.Now().UnixNano() / 1e6 % 1e12 * 1000}
			return &w.Ops, func(ctx context.Context) error { return w.Run(ctx, 0, f.rate) }
		}
		f.positionReached = func(ctx context.Context) error {
			seq, err := markerGTID(ctx, src)
			if err != nil {
				return err
			}
			_, err = poll.Until(ctx, 50*time.Millisecond, 30*time.Second, func() (bool, error) {
				var saved string
				err := pool.QueryRow(ctx, `SELECT position FROM tandem.source_positions WHERE source = 'mysql:cart'`).Scan(&saved)
				if err != nil {
					return false, err
				}
				_, gtid, _ := strings.Cut(saved, "gtid=")
				return gtidSeq(gtid) >= seq, nil
			})
			return err
		}
	default:
		t.Fatalf("unknown source kind %q", kind)
	}
	return f
}

// markerGTID commits one more cart (part of the data compared) and returns
// the sequence number of its GTID: the saved position must reach it.
func markerGTID(ctx context.Context, src *sql.DB) (int64, error) {
	conn, err := src.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "INSERT INTO carts VALUES (?, 'marker', 0.00, 'open', NULL, '2025-01-01 00:00:00')", 9_000_000_000_000_000_000-rand.Int64N(1e12)); err != nil {
		return 0, fmt.Errorf("marker cart: %w", err)
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@last_gtid").Scan(&gtid); err != nil {
		return 0, fmt.Errorf("marker cart's GTID: %w", err)
	}
	return gtidSeq(gtid), nil
}

// gtidSeq is the sequence number of a MariaDB GTID (domain-server-seq), or
// of the last GTID of a list; -1 when there is none.
func gtidSeq(gtid string) int64 {
	gtid = strings.TrimSpace(gtid)
	gtid = gtid[strings.LastIndexByte(gtid, ',')+1:]
	n, err := strconv.ParseInt(gtid[strings.LastIndexByte(gtid, '-')+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// throughProxy makes tandem connect to the source (src) and the target
// (tgt) through fault proxies, each nil to connect directly; it returns the
// proxies.
func (f *flow) throughProxy(t testing.TB, src, tgt bool) (srcProxy, tgtProxy *testenv.FaultProxy) {
	t.Helper()
	route := func(dsn string) (string, *testenv.FaultProxy) {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("the test DSN is not a URL: %v", err)
		}
		p := testenv.NewFaultProxy(t, u.Host)
		u.Host = p.Addr()
		return u.String(), p
	}
	if src {
		f.tandemSrc, srcProxy = route(f.srcDSN)
	}
	if tgt {
		f.tandemTgt, tgtProxy = route(f.tgtDSN)
	}
	return srcProxy, tgtProxy
}

// writer is the flow's steady writer, started once tandem streams: rows
// committed before are history, the backfill's job. It goes on through
// failures (a source restarting), counting them.
type writer struct {
	f        *flow
	cancel   context.CancelFunc
	done     chan struct{}
	mu       sync.Mutex
	failures int
	lastErr  error
}

func (f *flow) startWriter(ctx context.Context) *writer {
	ctx, cancel := context.WithCancel(ctx)
	w := &writer{f: f, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			ops, run := f.workload()
			f.opsMu.Lock()
			f.opsCur = ops
			f.opsMu.Unlock()
			err := run(ctx)
			f.opsMu.Lock()
			f.opsDone, f.opsCur = f.opsDone+ops.Load(), nil
			f.opsMu.Unlock()
			if err == nil || ctx.Err() != nil {
				continue
			}
			w.mu.Lock()
			w.failures++
			w.lastErr = err
			w.mu.Unlock()
			_ = poll.Sleep(ctx, 100*time.Millisecond) // the source is restarting: an application retries
		}
	}()
	return w
}

// stop stops the writer and returns how many of its transactions failed,
// and the last failure.
func (w *writer) stop() (failures int, last error) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures, w.lastErr
}

// stopClean stops the writer and fails t when any of its transactions
// failed: the scenario left the source alone.
func (w *writer) stopClean(t testing.TB) {
	t.Helper()
	if n, err := w.stop(); n > 0 {
		t.Fatalf("the writer failed %d times with the source untouched; last: %v", n, err)
	}
}

// written is how many operations the writer committed.
func (f *flow) written() int64 {
	f.opsMu.Lock()
	defer f.opsMu.Unlock()
	n := f.opsDone
	if f.opsCur != nil {
		n += f.opsCur.Load()
	}
	return n
}

// converge waits until the target equals the source's rows through the
// model, and returns how long it took and the rows compared. It fails t
// with the difference (the rows lost or wrong) when within passes.
func (f *flow) converge(t testing.TB, ctx context.Context, within time.Duration, procs *tandem) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	var diff string
	var rows int
	_, err := poll.Until(ctx, 100*time.Millisecond, within, func() (bool, error) {
		var err error
		diff, rows, err = f.diff(ctx)
		if err != nil {
			return false, err
		}
		return diff == "", procs.alive()
	})
	if err != nil {
		f.logState(t, ctx, procs)
		t.Fatalf("the target did not converge within %s: %v (-want +got):\n%s\n%s", within, err, diff, procs.output())
	}
	if rows < 50 {
		t.Errorf("only %d target rows: the scenario proved little", rows)
	}
	return time.Since(start), rows
}

// logState logs what a failure needs to be understood: the target's
// sessions, and each running process's pause, error and progress metrics.
func (f *flow) logState(t testing.TB, ctx context.Context, procs *tandem) {
	t.Helper()
	rows, err := f.tgt.Query(ctx, `SELECT pid, state, wait_event_type, wait_event, left(query, 120) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err == nil {
		for rows.Next() {
			v, _ := rows.Values()
			t.Logf("target session %v", v)
		}
		rows.Close()
	}
	for _, p := range procs.list() {
		select {
		case <-p.exited:
			continue
		default:
		}
		addr := tandemtest.HTTPAddr(p.p.Out.String())
		for _, m := range []string{"tandem_mapping_paused", "tandem_apply_rows_total", "tandem_apply_errors_total", "tandem_capture_events_total"} {
			v, err := tandemtest.Metric(addr, m)
			t.Logf("tandem %s: %s = %v (%v)", p.name, m, v, err)
		}
	}
}

// finish stops the writer, waits for convergence and checks that the
// source position tandem acknowledged reached the last write; it returns
// the convergence time and rows compared.
func (f *flow) finish(t testing.TB, ctx context.Context, w *writer, procs *tandem, sourceTouched bool) (time.Duration, int) {
	t.Helper()
	if sourceTouched {
		w.stop()
	} else {
		w.stopClean(t)
	}
	start := time.Now()
	if err := f.positionReached(ctx); err != nil {
		t.Errorf("the source position tandem acknowledged did not reach the last write: %v\n%s", err, procs.output())
	}
	_, rows := f.converge(t, ctx, 90*time.Second, procs)
	return time.Since(start), rows
}

// tandem is the tandem processes of one scenario: `run`, or `capture` and
// `apply`, each restarted as the scenario says.
type tandem struct {
	t       testing.TB
	f       *flow
	cfgPath string
	mu      sync.Mutex
	procs   []*proc
}

// proc is one tandem process.
type proc struct {
	name   string // verb#n
	verb   string
	p      *tandemtest.Process
	exited chan struct{}
	err    error // its exit, once exited is closed
	killed bool  // killed by the test: its exit is no failure
}

// newTandem writes the flow's config (brokers: an external broker's
// addresses, or none for the embedded one; extra: more YAML) for
// processes started with start. Processes still running when t ends are
// stopped as a supervisor does, with SIGTERM, and must exit 0 without
// having shown a password.
func (f *flow) newTandem(t testing.TB, brokers []string, extra string) *tandem {
	t.Helper()
	td := &tandem{t: t, f: f, cfgPath: filepath.Join(t.TempDir(), "tandem.yaml")}
	if err := os.WriteFile(td.cfgPath, []byte(f.config(brokers)+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range td.list() {
			if !p.killed {
				_ = p.p.Cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, p := range td.list() {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				_ = p.p.Cmd.Process.Kill()
				<-p.exited
				t.Errorf("tandem %s did not exit within 30s of SIGTERM", p.name)
			}
			if p.err != nil && !p.killed {
				t.Errorf("tandem %s: %v (want exit 0 after SIGTERM)", p.name, p.err)
			}
			if strings.Contains(p.p.Out.String(), testenv.Password) {
				t.Errorf("tandem %s: the DSN password appears in its output", p.name)
			}
		}
		if t.Failed() {
			t.Log(td.output())
		}
	})
	return td
}

func (td *tandem) list() []*proc {
	td.mu.Lock()
	defer td.mu.Unlock()
	return append([]*proc(nil), td.procs...)
}

// env is the environment tandem's processes get: the flow's DSNs as they
// are now.
func (td *tandem) env() []string {
	return []string{"TANDEM_SOURCE_DSN=" + td.f.tandemSrc, "TANDEM_TARGET_DSN=" + td.f.tandemTgt}
}

// start starts `tandem <verb>` against the flow's DSNs as they are now.
func (td *tandem) start(verb string) *proc {
	td.t.Helper()
	td.mu.Lock()
	n := 1
	for _, p := range td.procs {
		if p.verb == verb {
			n++
		}
	}
	td.mu.Unlock()
	p := &proc{name: fmt.Sprintf("%s#%d", verb, n), verb: verb, exited: make(chan struct{}),
		p: tandemtest.StartRole(td.t, verb, td.cfgPath, td.env(), &testenv.SyncBuffer{})}
	go func() { p.err = p.p.Cmd.Wait(); close(p.exited) }()
	td.mu.Lock()
	td.procs = append(td.procs, p)
	td.mu.Unlock()
	return p
}

// runUnderWriter starts `tandem run`, waits until it streams, starts the
// flow's writer and waits until 50 more records are applied: the state a
// fault is injected in. It returns the process, the writer and where the
// process serves /metrics and /readyz.
func (td *tandem) runUnderWriter(ctx context.Context) (*proc, *writer, string) {
	td.t.Helper()
	p := td.start("run")
	td.waitStreaming(p, 1)
	w := td.f.startWriter(ctx)
	td.waitApplied(ctx, 50)
	return p, w, td.addr(p)
}

// command runs `tandem <args> -c <config>` to its end beside the running
// processes, as an operator does (`dlq replay`), and returns its output
// (stdout and stderr) and its exit error.
func (td *tandem) command(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tandemtest.Binary(), append(args, "-c", td.cfgPath)...)
	cmd.Env = append(os.Environ(), td.env()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kill9 kills p with SIGKILL: no drain, a transaction in flight cut off.
func (td *tandem) kill9(p *proc) {
	td.t.Helper()
	p.killed = true
	if err := p.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		td.t.Fatal(err)
	}
	<-p.exited
}

// alive returns an error when a process the test did not kill has exited.
func (td *tandem) alive() error {
	for _, p := range td.list() {
		select {
		case <-p.exited:
			if !p.killed {
				return fmt.Errorf("tandem %s exited: %v", p.name, p.err)
			}
		default:
		}
	}
	return nil
}

// output is every process's output, for a failure's message.
func (td *tandem) output() string {
	var b strings.Builder
	for _, p := range td.list() {
		fmt.Fprintf(&b, "--- tandem %s ---\n%s", p.name, p.p.Out.String())
	}
	return b.String()
}

// logged counts the lines of p's output holding s.
func (p *proc) logged(s string) int { return strings.Count(p.p.Out.String(), s) }

// loggedAll counts the lines of p's output holding every one of parts.
func (p *proc) loggedAll(parts ...string) int {
	n := 0
	for line := range strings.Lines(p.p.Out.String()) {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// waitLogged waits until p has logged s at least n times, failing t
// (with every process's output) after within.
func (td *tandem) waitLogged(p *proc, s string, n int, within time.Duration) {
	td.t.Helper()
	if _, err := poll.Until(context.Background(), 20*time.Millisecond, within, func() (bool, error) {
		return p.logged(s) >= n, td.alive()
	}); err != nil {
		td.t.Fatalf("waiting for tandem %s to log %q (%d times): %v\n%s", p.name, s, n, err, td.output())
	}
}

// waitStreaming waits until p's capture streams for the n-th time.
func (td *tandem) waitStreaming(p *proc, n int) {
	td.t.Helper()
	td.waitLogged(p, td.f.streaming, n, time.Minute)
}

// addr is where p serves /metrics and /readyz.
func (td *tandem) addr(p *proc) string {
	td.t.Helper()
	td.waitLogged(p, `msg="http listening"`, 1, 30*time.Second)
	return tandemtest.HTTPAddr(p.p.Out.String())
}

// waitJoined waits until every mapping of p has its partitions: its
// consumer group member has synced. A member killed between its join and
// its sync is never removed from the group by kfake's coordinator (it
// clears the sync barrier when the leader syncs, so the dead follower keeps
// its partitions and no rebalance comes), where Kafka's would expire it:
// the kills wait for the sync so that the scenario tests tandem, not that.
func (td *tandem) waitJoined(p *proc) {
	td.t.Helper()
	addr := td.addr(p)
	testenv.WaitFor(td.t, "tandem "+p.name+"'s mappings to have their partitions", time.Minute, func() (bool, error) {
		code, body := tandemtest.Readyz(addr)
		return code != 0 && !strings.Contains(body, "has no partitions yet") && !strings.Contains(body, "starting"), td.alive()
	})
}

// waitApplied waits until more records than now are applied.
func (td *tandem) waitApplied(ctx context.Context, more int64) {
	td.t.Helper()
	tandemtest.WaitApplied(td.t, ctx, td.f.tgt, more, time.Minute)
}

// applied is how many records are applied now (tandemtest.AppliedOffsets).
func (td *tandem) applied(ctx context.Context) int64 {
	td.t.Helper()
	n, err := tandemtest.AppliedOffsets(ctx, td.f.tgt)
	if err != nil {
		td.t.Fatal(err)
	}
	return n
}

// untilApplied waits until more records than base are applied and returns
// the time from from; it fails t, naming what, after a minute.
func (td *tandem) untilApplied(ctx context.Context, what string, from time.Time, base int64) time.Duration {
	td.t.Helper()
	return since(td.t, what, from, time.Minute, func() (bool, error) {
		n, err := tandemtest.AppliedOffsets(ctx, td.f.tgt)
		return n > base, err
	})
}

// sign is one way a fault shows: a metric, /readyz, a log line.
type sign struct {
	name     string
	holds    func() (bool, error)
	required bool // the scenario fails without it; others are reported when seen
}

// watch polls signs from from until every required one has held once, and
// returns how long after from each sign first held (a sign not seen by then
// is absent). It fails t, naming the signs missing, after within, or when a
// process the test did not kill exits.
func (td *tandem) watch(from time.Time, within time.Duration, signs ...sign) map[string]time.Duration {
	td.t.Helper()
	seen := map[string]time.Duration{}
	_, err := poll.Until(context.Background(), 20*time.Millisecond, within, func() (bool, error) {
		done := true
		for _, s := range signs {
			if _, ok := seen[s.name]; !ok {
				held, err := s.holds()
				if err != nil {
					return false, fmt.Errorf("%s: %w", s.name, err)
				}
				if held {
					seen[s.name] = time.Since(from)
				} else if s.required {
					done = false
				}
			}
		}
		return done, td.alive()
	})
	if err != nil {
		var missing []string
		for _, s := range signs {
			if _, ok := seen[s.name]; !ok && s.required {
				missing = append(missing, s.name)
			}
		}
		td.t.Fatalf("waiting for the fault to show (%s): %v\n%s", strings.Join(missing, ", "), err, td.output())
	}
	return seen
}

// readyAgain waits until addr's /readyz answers 200 and says, for a
// report, how long after from it did. After within it fails t with what
// /readyz says, but not fatally: the scenario goes on to its comparison,
// whose outcome tells a readiness that is wrong from a pipeline that is
// stuck.
func (td *tandem) readyAgain(addr string, from time.Time, within time.Duration) string {
	td.t.Helper()
	_, err := poll.Until(context.Background(), 20*time.Millisecond, within, func() (bool, error) {
		code, _ := tandemtest.Readyz(addr)
		return code == http.StatusOK, td.alive()
	})
	if err == nil {
		return time.Since(from).Round(time.Millisecond).String()
	}
	says := "no answer"
	if code, body := tandemtest.Readyz(addr); code != 0 {
		says = fmt.Sprintf("%d %s: %s", code, http.StatusText(code), strings.TrimSpace(body))
	}
	paused := apptest.Series(apptest.Scraped(addr), "tandem_mapping_paused")
	td.t.Errorf("/readyz still failing %s after the fault ended (%v): %s; tandem_mapping_paused %v\n%s", within, err, says, paused, td.output())
	return "not within " + within.String()
}

// since polls cond until it holds and returns the time from from; it
// fails t, naming what, after within.
func since(t testing.TB, what string, from time.Time, within time.Duration, cond func() (bool, error)) time.Duration {
	t.Helper()
	if _, err := poll.Until(context.Background(), 20*time.Millisecond, within, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return time.Since(from)
}

// holdTarget locks the target tables a change writes, so that apply waits
// while capture goes on; release ends it.
func (f *flow) holdTarget(t testing.TB, ctx context.Context) (release func()) {
	t.Helper()
	lock, err := f.tgt.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, f.lockSQL); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = lock.Rollback(context.Background()) }) }
	t.Cleanup(release) // a pool closes only once its connections are back
	return release
}

// broker is an external Kafka-protocol broker (kfake) on loopback for
// tandem's processes, as a real cluster would be: kafka.brokers lists
// Addrs.
type broker struct {
	t       testing.TB
	cluster *kfake.Cluster
	port    int
	dir     string              // its data, kept across restarts
	proxy   *testenv.FaultProxy // between tandem and the broker, or nil
	id      string              // its cluster ID, kept across restarts
	mu      sync.Mutex          // guards cluster
}

// newBroker starts a broker whose data lives on disk, so that it can be
// restarted without losing it. With viaProxy, tandem's clients reach it
// only through a fault proxy: the broker advertises the proxy's address in
// its metadata, so every connection a client makes goes through it.
func newBroker(t testing.TB, viaProxy bool) *broker {
	t.Helper()
	b := &broker{t: t, dir: t.TempDir(), id: fmt.Sprintf("chaos-%d", rand.Uint64())}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = ln.Addr().(*net.TCPAddr).Port
	var listener net.Listener = ln
	if viaProxy {
		b.proxy = testenv.NewFaultProxy(t, ln.Addr().String())
		adv, err := net.ResolveTCPAddr("tcp", b.proxy.Addr())
		if err != nil {
			t.Fatal(err)
		}
		listener = advertised{Listener: ln, addr: adv}
	}
	b.startWith(listener)
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.cluster.Close()
	})
	return b
}

// advertised is a listener that gives another address (a proxy's) as its
// own, which kfake advertises to clients.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

func (b *broker) startWith(ln net.Listener) {
	b.t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.ClusterID(b.id), kfake.DataDir(b.dir),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return ln, nil }))
	if err != nil {
		b.t.Fatalf("start the external broker: %v", err)
	}
	b.mu.Lock()
	b.cluster = c
	b.mu.Unlock()
}

// Addrs is what tandem's kafka.brokers lists.
func (b *broker) Addrs() []string {
	if b.proxy != nil {
		return []string{b.proxy.Addr()}
	}
	return []string{fmt.Sprintf("127.0.0.1:%d", b.port)}
}

// stop closes the broker (its connections end; its data stays on disk).
func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cluster.Close()
}

// start starts the broker again on the same port, from its data.
func (b *broker) start() {
	b.t.Helper()
	var ln net.Listener
	_, err := poll.Until(context.Background(), 50*time.Millisecond, 30*time.Second, func() (bool, error) {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
		return err == nil, nil
	})
	if err != nil {
		b.t.Fatalf("listen on the broker's port %d again: %v", b.port, err)
	}
	b.startWith(ln)
}

// report logs what a scenario injected and measured, in one line the
// suite's readers grep for.
func report(t testing.TB, injected string, measured ...any) {
	t.Helper()
	var b strings.Builder
	for i := 0; i+1 < len(measured); i += 2 {
		fmt.Fprintf(&b, "; %v %v", measured[i], measured[i+1])
	}
	t.Logf("CHAOS %s: injected %s%s; rows lost: 0", t.Name(), injected, b.String())
}
