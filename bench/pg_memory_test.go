package bench

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/capture/postgres"
	"github.com/tandemcdc/tandem/internal/change"
)

// The PostgreSQL large-transaction benchmark is the MySQL one's twin (see
// mysql_memory_test.go: a child process per capture, a control, a paced
// consumer), on a transaction twice as large, plus what the server pays
// for it: pgoutput protocol v1 sends a transaction only once its commit is
// decoded, so the walsender holds it whole until then, in memory up to
// logical_decoding_work_mem and spilled to disk (pg_replslot/<slot>/)
// beyond. Protocol v2 with streaming on would send it in chunks as it goes.

// pgLargeTxRows is the size of the one large PostgreSQL transaction.
const pgLargeTxRows = 1_000_000

// pgLargeTxChild is the child test that captures a PostgreSQL transaction.
const pgLargeTxChild = "TestPostgresLargeTransactionChild"

// BenchmarkPostgresLargeTransaction commits one INSERT ... SELECT of
// 1,000,000 rows on the PostgreSQL source and captures it with tandem's
// capturer (capture/postgres: interim batches of MaxBatch events, the
// consumer counting them), in a child process whose peak RSS is then the
// capturer's. A 100,000-row transaction captured the same way is the
// control: memory is bounded when the large transaction's peak growth is
// not much above the control's (largeTx.boundedGrowth), and the benchmark
// fails otherwise. The limit beside the rate is pg_recvlogical decoding the
// same transaction from a slot of its own; beside the memory, how much the
// walsender spilled to disk for tandem's slot
// (pg_stat_replication_slots.spill_bytes).
//
// The large transaction is captured again, from a second slot, for a
// consumer that takes at most largeTxPace rows/s; its peak is reported
// beside the others.
//
// Each iteration logs its figures; the metrics are the last iteration's.
func BenchmarkPostgresLargeTransaction(b *testing.B) {
	var last pgLargeTx
	for b.Loop() {
		last = measurePGLargeTx(b)
	}
	last.report(b)
}

// pgLargeTx is what a PostgreSQL large-transaction run measured.
type pgLargeTx struct {
	largeTx
	spill, controlSpill slotStats // of tandem's slot, for each transaction
	workMem             string    // logical_decoding_work_mem
}

// slotStats are a slot's counters in pg_stat_replication_slots.
type slotStats struct {
	SpillTxns, SpillCount, SpillBytes int64 // transactions spilled, times, bytes written
	StreamTxns, StreamBytes           int64 // sent while in progress (protocol v2)
}

func (s slotStats) spillMiB() float64 { return float64(s.SpillBytes) / (1 << 20) }

func (l pgLargeTx) report(b *testing.B) {
	l.largeTx.report(b)
	b.ReportMetric(l.spill.spillMiB(), "spill_MiB")
	b.ReportMetric(float64(l.spill.SpillTxns), "spill_txns")
	b.ReportMetric(l.controlSpill.spillMiB(), "control_spill_MiB")
}

func (l pgLargeTx) summary() string {
	spill := func(s slotStats) string {
		if s.SpillTxns == 0 {
			return "nothing spilled"
		}
		return fmt.Sprintf("spilled %.1f MiB to disk (%d transactions, %s spills)", s.spillMiB(), s.SpillTxns, thousands(float64(s.SpillCount)))
	}
	return l.largeTx.summary() + fmt.Sprintf(
		"\n  walsender of tandem's slot (pgoutput protocol v1, logical_decoding_work_mem %s): %s (control: %s); streamed in progress: %d transactions"+
			"\n  first rows %.1f s after Stream (protocol v1 sends nothing before the commit is decoded), then %s rows/s (paced: first rows after %.1f s, then %s rows/s)",
		l.workMem, spill(l.spill), spill(l.controlSpill), l.spill.StreamTxns,
		l.large.FirstRow, thousands(l.large.afterFirst()), l.paced.FirstRow, thousands(l.paced.afterFirst()))
}

// afterFirst is the rate (rows/s) from the first batch to the last.
func (r largeTxRun) afterFirst() float64 { return float64(r.Rows) / (r.Seconds - r.FirstRow) }

// measurePGLargeTx runs the control and the large transaction on a fresh
// database, each captured by a child process from a slot made for it before
// the transaction, and the large one decoded by pg_recvlogical too.
func measurePGLargeTx(b *testing.B) pgLargeTx {
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	e := newEnv(b)
	l := pgLargeTx{largeTx: largeTx{source: "postgres", log: "WAL", reader: "pg_recvlogical"}}
	if err := e.src.QueryRow(ctx, `SELECT current_setting('logical_decoding_work_mem')`).Scan(&l.workMem); err != nil {
		b.Fatal(err)
	}
	spec := func(slot string, rows, pace int) largeTxSpec {
		return largeTxSpec{DSN: e.srcDSN, Slot: slot, Publication: e.slot, Rows: rows, Pace: pace}
	}

	control := e.slot + "_control"
	setupPGCapture(ctx, b, e.srcDSN, control, e.slot)
	e.commitOneTx(ctx, b, 1, largeTxControlRows)
	l.control = runLargeTxChild(ctx, b, pgLargeTxChild, spec(control, largeTxControlRows, 0))
	l.controlSpill = releasedSlotStats(ctx, b, e.src, control)
	if err := dropSlot(ctx, e.src, control); err != nil {
		b.Fatal(err)
	}

	// Every slot of the large transaction is made before it, after the
	// control: each decodes exactly the large transaction.
	large, paced := e.slot+"_large", e.slot+"_paced"
	setupPGCapture(ctx, b, e.srcDSN, large, e.slot)
	setupPGCapture(ctx, b, e.srcDSN, paced, e.slot)
	recv := e.newRecvSlot(ctx, b)
	from, to := e.commitOneTx(ctx, b, largeTxControlRows+1, pgLargeTxRows)
	if err := e.src.QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn) / 1048576`, to, from).Scan(&l.logMiB); err != nil {
		b.Fatal(err)
	}
	l.large = runLargeTxChild(ctx, b, pgLargeTxChild, spec(large, pgLargeTxRows, 0))
	l.spill = releasedSlotStats(ctx, b, e.src, large)
	l.paced = runLargeTxChild(ctx, b, pgLargeTxChild, spec(paced, pgLargeTxRows, largeTxPace))
	for _, slot := range []string{large, paced} {
		if err := dropSlot(ctx, e.src, slot); err != nil {
			b.Fatal(err)
		}
	}
	took, exact := recv.read(ctx, b, to)
	l.readerRate = pgLargeTxRows / took.Seconds()

	note := ""
	if !exact {
		note = "\n  pg_recvlogical stopped on a keepalive, after decoding WAL written after the transaction: its rate is understated"
	}
	logSummary(b, "\n"+l.summary()+note)
	l.checkBounded(b)
	return l
}

// commitOneTx inserts rows rows from id first into bench.items in one
// INSERT ... SELECT, and returns the WAL positions before and after it.
func (e *env) commitOneTx(ctx context.Context, b *testing.B, first int64, rows int) (from, to string) {
	b.Helper()
	if err := e.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&from); err != nil {
		b.Fatal(err)
	}
	if _, err := e.src.Exec(ctx, `INSERT INTO bench.items (id, name, qty, price)
SELECT g, 'item-' || g, g % 100, (g % 100000) / 100.0 FROM generate_series($1::bigint, $2::bigint) g`, first, first+int64(rows)-1); err != nil {
		b.Fatalf("insert %d rows in one transaction: %v", rows, err)
	}
	if err := e.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&to); err != nil {
		b.Fatal(err)
	}
	return from, to
}

// pgLargeTxConfig is the capturer's configuration of bench.items from slot.
func pgLargeTxConfig(dsn, slot, publication string) postgres.Config {
	return postgres.Config{DSN: dsn, Slot: slot, Publication: publication,
		Tables: []change.Table{{Schema: "bench", Name: "items"}}}
}

// setupPGCapture creates the publication (if missing) and the slot that a
// child will capture from.
func setupPGCapture(ctx context.Context, b *testing.B, dsn, slot, publication string) {
	b.Helper()
	src, err := postgres.New(pgLargeTxConfig(dsn, slot, publication), postgres.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	if err := src.Setup(ctx); err != nil {
		b.Fatal(err)
	}
}

// releasedSlotStats waits until no walsender holds slot (the child's has
// exited: its counters are all reported) and returns its statistics. A
// walsender reports what it spills as it spills, and with protocol v1
// spills all of a transaction before it sends its first change.
func releasedSlotStats(ctx context.Context, b *testing.B, src *pgxpool.Pool, slot string) slotStats {
	b.Helper()
	var s slotStats
	_, err := poll(30*time.Second, func() (bool, error) {
		var active bool
		if err := src.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active); err != nil || active {
			return false, err
		}
		err := src.QueryRow(ctx, `SELECT spill_txns, spill_count, spill_bytes, stream_txns, stream_bytes
FROM pg_stat_replication_slots WHERE slot_name = $1`, slot).Scan(&s.SpillTxns, &s.SpillCount, &s.SpillBytes, &s.StreamTxns, &s.StreamBytes)
		return err == nil, err
	})
	if err != nil {
		b.Fatalf("statistics of slot %s: %v", slot, err)
	}
	return s
}

// TestPostgresLargeTransactionChild is BenchmarkPostgresLargeTransaction's
// child process; run by itself (without the environment the benchmark
// sets) it does nothing.
func TestPostgresLargeTransactionChild(t *testing.T) {
	spec, ok := largeTxChildSpec(t)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*deliverWithin)
	defer cancel()
	src, err := postgres.New(pgLargeTxConfig(spec.DSN, spec.Slot, spec.Publication), postgres.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	captureLargeTx(ctx, t, src, spec)
}
