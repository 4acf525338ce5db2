// Package backfill copies the rows a source table already holds into the
// change stream, in chunks, throttled and resumable, so that the copy and
// the live stream converge on the same target whatever their interleaving.
//
// # How the copy and the stream converge
//
// Each chunk is one statement reading up to chunk_rows rows in primary key
// order after the last copied key (keyset pagination: no long-held locks,
// each chunk a consistent read). Its rows go to Kafka as "r" (read) changes,
// keyed by the source key like every change of the stream, so in each
// partition a key's copy and its stream changes are in one order and apply
// handles them one at a time. Apply writes a copied row as a sink.Copy:
// inserted unless the target row exists (the stream wins: it wrote a
// version at least as new) or a tombstone says the stream deleted it.
//
// The argument, for a row R of source table T copied from a chunk read at
// time t1:
//
//  1. The stream's start position precedes the backfill (the pipeline sets
//     up the slot or saves the binlog position before any chunk is read),
//     so every change committed after t1 reaches apply.
//  2. Before its first read the backfill marks itself running in the target.
//     While it runs, every delete apply writes leaves a tombstone, in the
//     same transaction (sink.BackfillStore).
//  3. Take any change C to R committed after t1. If apply writes C before
//     the copy: an update or insert created the target row, so the copy
//     finds it and leaves it (the stream's version is newer); a delete was
//     applied while the backfill was running (it started before t1), so it
//     left a tombstone and the copy is dropped. If apply writes C after the
//     copy, C overwrites or deletes the copied row as it would any row.
//  4. If no change to R committed after t1, the copy is R's current value,
//     and a later tombstone for R cannot exist: R is copied exactly.
//  5. A tombstone never drops a copy wrongly: a copied version of R exists
//     only if R was (re)inserted after the delete that left the tombstone,
//     and that insert is a change after the delete, so the stream delivers
//     it too.
//
// So whether the backfill starts before, during or after streaming, the
// target converges to what the stream alone would give had it started with
// an empty source and every row inserted at once. Re-copying a chunk (after
// a crash) is harmless: copies never overwrite.
//
// Progress (the last copied key per table) is saved in the target once the
// chunk's rows are durable downstream (applied, with the embedded broker),
// so a killed backfill resumes after the last durable chunk.
package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// Table is a source table as backfill reads it.
type Table struct {
	Name    change.Table
	Columns []string               // in table order
	Types   map[string]change.Type // as the stream's capturer types them
	Key     []string               // primary key columns, in key order
}

// Reader reads source tables in primary key order, with values exactly as
// the stream's capturer produces them (so a copied row and a streamed row
// of the same content are equal).
type Reader interface {
	// Describe returns the table's columns, types and primary key.
	Describe(ctx context.Context, t change.Table) (*Table, error)
	// Chunk reads up to limit rows with a key after after (nil: from the
	// start), in key order, in one consistent read. last is the text of
	// the last row's key values, to pass as the next after.
	Chunk(ctx context.Context, t *Table, after []string, limit int) (rows []change.Row, last []string, err error)
	// Estimate returns the table's approximate row count, from statistics.
	Estimate(ctx context.Context, t change.Table) (int64, error)
}

// LoadReader is a Reader that can tell how busy the source is (PostgreSQL
// active sessions, MySQL Threads_running), for pausing the copy.
type LoadReader interface {
	Reader
	Load(ctx context.Context) (int, error)
}

// Checkpoint is the position of a copied chunk, acknowledged (see Runner.Ack)
// once its rows are durable downstream.
type Checkpoint struct {
	Table change.Table
	After []string // the chunk's last key
	Rows  int64    // rows of the table copied up to and including the chunk
	Last  bool     // the table's last chunk
	seq   int64    // emit order: acknowledging a chunk acknowledges every earlier one
	rows  int      // rows in this chunk
}

// String renders the checkpoint for logs.
func (c Checkpoint) String() string {
	return fmt.Sprintf("backfill %s after %s (%d rows)", c.Table, encodeKey(c.After), c.Rows)
}

// Config says what to copy and how fast.
type Config struct {
	Tables           []change.Table
	ChunkRows        int     // rows per chunk (default 5000)
	Parallel         int     // tables copied at once (default 4)
	MaxRowsPerSecond float64 // 0: unthrottled
	Restart          bool    // forget saved progress and copy everything again
	// DurableOnProduce is true when an emitted chunk is durable once Kafka
	// has it (an external cluster): the final state is then
	// sink.BackfillCopied, as apply may still be writing.
	DurableOnProduce bool
	// ProgressEvery is how often progress is logged; default 10s;
	// negative: never (a live display shows Progress instead).
	ProgressEvery time.Duration
	// ChunkBytes bounds a chunk's size as well as ChunkRows, so wide rows
	// do not blow memory: chunks start small and grow while under it, and
	// shrink when one goes over. Default 16 MiB.
	ChunkBytes int
	// Pause, if set, is asked before each chunk; while it returns a reason
	// (replication lag or source load too high) the copy waits. The time
	// waited counts as throttled.
	Pause func(ctx context.Context) (reason string, err error)
	// PauseCheckEvery is how often a paused copy asks again; default 1s.
	PauseCheckEvery time.Duration
	// MaxInFlightRows bounds the rows emitted but not yet durable: the
	// copy waits for apply instead of reading ahead into memory (the
	// producer's buffer, the embedded broker). Default 20,000.
	MaxInFlightRows int
}

// firstChunkRows is where a table's chunk size starts before it knows how
// wide the rows are.
const firstChunkRows = 100

// Metrics are the backfill metrics of CONTRACT.md.
type Metrics struct {
	Rows      *prometheus.CounterVec // tandem_backfill_rows_total{table}
	Estimated *prometheus.GaugeVec   // tandem_backfill_rows_estimated{table}
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_backfill_rows_total",
			Help: "Rows copied by backfill into the change stream, by source table.",
		}, []string{"table"}),
		Estimated: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_backfill_rows_estimated",
			Help: "Rows the source table holds by its statistics, for backfill progress.",
		}, []string{"table"}),
	}
	if reg != nil {
		reg.MustRegister(m.Rows, m.Estimated)
	}
	return m
}

// Runner copies tables. Create one with New; Run it once.
type Runner struct {
	cfg     Config
	reader  Reader
	store   sink.BackfillStore
	emit    func(context.Context, change.Batch) error
	log     *slog.Logger
	metrics *Metrics
	limiter *rate.Limiter

	emitMu sync.Mutex // one emit at a time, so seq follows emit order

	mu       sync.Mutex
	progress map[change.Table]*sink.BackfillProgress
	inFlight []Checkpoint // emitted, not yet acknowledged, in emit order
	nextSeq  int64
	changed  chan struct{} // signalled on every Ack
	live     liveStats     // the counters behind Progress (progress.go)
}

// New returns a Runner. emit hands a batch of "r" changes to the stream
// (its Pos is a Checkpoint); the pipeline calls Ack with each Checkpoint
// once its batch is durable, in emit order.
func New(cfg Config, reader Reader, store sink.BackfillStore, emit func(context.Context, change.Batch) error, log *slog.Logger, m *Metrics) *Runner {
	if cfg.ChunkRows <= 0 {
		cfg.ChunkRows = 5000
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 4
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 10 * time.Second
	}
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 16 << 20
	}
	if cfg.PauseCheckEvery <= 0 {
		cfg.PauseCheckEvery = time.Second
	}
	if cfg.MaxInFlightRows <= 0 {
		cfg.MaxInFlightRows = 20_000
	}
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	r := &Runner{cfg: cfg, reader: reader, store: store, emit: emit, log: log, metrics: m,
		progress: map[change.Table]*sink.BackfillProgress{}, changed: make(chan struct{}, 1)}
	if cfg.MaxRowsPerSecond > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(cfg.MaxRowsPerSecond), max(cfg.ChunkRows, int(cfg.MaxRowsPerSecond)))
	}
	return r
}

// Summary is what a Run copied.
type Summary struct {
	Tables    int
	Rows      int64
	Skipped   []change.Table // already done before this run
	Took      time.Duration
	Throttled time.Duration // time spent waiting for the rate limit
}

// Run copies every configured table not done yet, largest first, and
// returns once every copied chunk is durable. It saves the state that
// makes deletes leave tombstones before reading anything.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	start := time.Now()
	sum := Summary{}
	if r.cfg.Restart {
		if err := r.store.ResetBackfill(ctx); err != nil {
			return sum, fmt.Errorf("backfill --restart: forget saved progress: %w", err)
		}
	}
	saved, err := r.store.BackfillProgress(ctx)
	if err != nil {
		return sum, fmt.Errorf("read backfill progress: %w", err)
	}
	byName := map[string]sink.BackfillProgress{}
	for _, p := range saved {
		byName[p.Table] = p
	}
	type job struct {
		table *Table
		after []string
		rows  int64
		est   int64
	}
	var jobs []job
	for _, name := range r.cfg.Tables {
		p, ok := byName[name.String()]
		if ok && p.State != sink.BackfillRunning {
			sum.Skipped = append(sum.Skipped, name)
			r.noteTable(name, StateSkipped, 0, p.Rows)
			r.log.Info("backfill: table already copied; skipped (--restart copies it again)", "table", name.String(), "rows", p.Rows, "state", p.State)
			continue
		}
		t, err := r.reader.Describe(ctx, name)
		if err != nil {
			return sum, fmt.Errorf("backfill %s: %w", name, err)
		}
		if len(t.Key) == 0 {
			return sum, fmt.Errorf("backfill %s: the table has no primary key to copy it in order by; add one", name)
		}
		est, err := r.reader.Estimate(ctx, name)
		if err != nil {
			return sum, fmt.Errorf("backfill %s: %w", name, err)
		}
		r.metrics.Estimated.WithLabelValues(name.String()).Set(float64(est))
		after, err := decodeKey(p.After)
		if err != nil {
			return sum, fmt.Errorf("backfill %s: saved progress: %w", name, err)
		}
		if !ok {
			p = sink.BackfillProgress{Table: name.String(), State: sink.BackfillRunning, Started: time.Now()}
		}
		// Saved (running) before any read: from now on deletes leave tombstones.
		p.State, p.Updated = sink.BackfillRunning, time.Now()
		if err := r.store.SaveBackfill(ctx, p); err != nil {
			return sum, fmt.Errorf("backfill %s: save progress: %w", name, err)
		}
		r.progress[name] = &p
		r.noteTable(name, StateWaiting, est, p.Rows)
		if after != nil {
			r.log.Info("backfill: resuming", "table", name.String(), "after", p.After, "rows", p.Rows)
		}
		jobs = append(jobs, job{table: t, after: after, rows: p.Rows, est: est})
	}
	// Largest first: one giant table should not start last and finish alone.
	slices.SortStableFunc(jobs, func(a, b job) int { return int(b.est - a.est) })

	stopLog := r.logProgress(ctx, start)
	defer stopLog()
	var throttled sync.Map
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Parallel)
	for _, j := range jobs {
		g.Go(func() error {
			// Chunks are emitted with ctx, not gctx: gctx ends when the
			// last copy returns, while its records may still be in flight.
			r.noteStart(j.table.Name)
			waited, err := r.copyTable(gctx, ctx, j.table, j.after, j.rows)
			r.noteEnd(j.table.Name, waited, err)
			throttled.Store(j.table.Name, waited)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return sum, err
	}
	if err := r.waitDurable(ctx); err != nil {
		return sum, err
	}
	final := sink.BackfillDone
	if r.cfg.DurableOnProduce {
		final = sink.BackfillCopied
	}
	for _, j := range jobs {
		r.mu.Lock()
		p := *r.progress[j.table.Name]
		r.mu.Unlock()
		p.State, p.Updated = final, time.Now()
		if err := r.store.SaveBackfill(ctx, p); err != nil {
			return sum, fmt.Errorf("backfill %s: save final state: %w", j.table.Name, err)
		}
		sum.Rows += p.Rows
		sum.Tables++
	}
	throttled.Range(func(_, v any) bool { sum.Throttled += v.(time.Duration); return true })
	sum.Took = time.Since(start)
	return sum, nil
}

// copyTable reads and emits one table's chunks.
func (r *Runner) copyTable(ctx, emitCtx context.Context, t *Table, after []string, rows int64) (throttled time.Duration, err error) {
	counter := r.metrics.Rows.WithLabelValues(t.Name.String())
	limit := min(r.cfg.ChunkRows, firstChunkRows)
	for {
		waited, err := r.waitUnpaused(ctx, t.Name)
		throttled += waited
		if err != nil {
			return throttled, err
		}
		chunk, last, err := r.reader.Chunk(ctx, t, after, limit)
		if err != nil {
			return throttled, fmt.Errorf("backfill %s: read chunk after %s: %w", t.Name, encodeKey(after), err)
		}
		done := len(chunk) < limit
		limit = nextLimit(limit, r.cfg.ChunkRows, r.cfg.ChunkBytes, rowBytes(chunk))
		if r.limiter != nil && len(chunk) > 0 {
			w := time.Now()
			if err := r.limiter.WaitN(ctx, min(len(chunk), r.limiter.Burst())); err != nil {
				return throttled, err
			}
			throttled += time.Since(w)
		}
		rows += int64(len(chunk))
		cp := Checkpoint{Table: t.Name, After: last, Rows: rows, Last: done}
		if len(chunk) == 0 {
			cp.After = after
		}
		events := make([]change.Event, len(chunk))
		now := time.Now()
		for i, row := range chunk {
			events[i] = change.Event{Op: change.OpRead, Table: t.Name, Key: t.Key, Types: t.Types, Columns: t.Columns, After: row, Commit: now}
		}
		if err := r.waitRoom(ctx, len(chunk)); err != nil {
			return throttled, err
		}
		r.emitMu.Lock()
		r.mu.Lock()
		cp.rows = len(chunk)
		cp.seq = r.nextSeq
		r.nextSeq++
		r.inFlight = append(r.inFlight, cp)
		r.mu.Unlock()
		err = r.emit(emitCtx, change.Batch{Events: events, Pos: cp, Commit: now})
		r.emitMu.Unlock()
		if err != nil {
			return throttled, fmt.Errorf("backfill %s: emit chunk: %w", t.Name, err)
		}
		counter.Add(float64(len(chunk)))
		r.noteChunk(t.Name, rows, throttled)
		if done {
			return throttled, nil
		}
		after = last
	}
}

// waitRoom waits until a chunk of n rows fits under MaxInFlightRows (or
// nothing is in flight).
func (r *Runner) waitRoom(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		inFlight := 0
		for _, c := range r.inFlight {
			inFlight += c.rows
		}
		r.mu.Unlock()
		if inFlight == 0 || inFlight+n <= r.cfg.MaxInFlightRows {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.changed:
		case <-time.After(100 * time.Millisecond): // another waiter may have taken the signal
		}
	}
}

// waitUnpaused waits while Pause gives a reason, logging each new reason once.
func (r *Runner) waitUnpaused(ctx context.Context, table change.Table) (time.Duration, error) {
	if r.cfg.Pause == nil {
		return 0, nil
	}
	start, said := time.Now(), ""
	for {
		reason, err := r.cfg.Pause(ctx)
		if err != nil {
			return time.Since(start), fmt.Errorf("backfill %s: %w", table, err)
		}
		if reason == "" {
			if said != "" {
				r.log.Info("backfill resumed", "table", table.String(), "paused_for", time.Since(start).Round(time.Second).String())
			}
			return time.Since(start), nil
		}
		if reason != said {
			r.log.Warn("backfill paused", "table", table.String(), "reason", reason)
			said = reason
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(r.cfg.PauseCheckEvery):
		}
	}
}

// rowBytes estimates a chunk's size (approxRowBytes of each row).
func rowBytes(rows []change.Row) int {
	n := 0
	for _, row := range rows {
		n += approxRowBytes(row)
	}
	return n
}

// nextLimit sizes the next chunk from the last one's bytes: doubling up
// to maxRows while under a quarter of maxBytes, shrinking in proportion
// when over maxBytes, never below one row.
func nextLimit(limit, maxRows, maxBytes, bytes int) int {
	switch {
	case bytes > maxBytes:
		return max(1, int(int64(limit)*int64(maxBytes)/int64(bytes)))
	case bytes < maxBytes/4:
		return min(maxRows, limit*2)
	}
	return limit
}

// Ack records that a chunk, and every chunk emitted before it, is durable,
// and saves the progress of the tables they belong to. The pipeline calls
// it in emit order, maybe skipping chunks (a durable prefix is reported by
// its last chunk).
func (r *Runner) Ack(ctx context.Context, pos change.Position) error {
	cp, ok := pos.(Checkpoint)
	if !ok {
		return fmt.Errorf("backfill: acknowledged %T, not a Checkpoint", pos)
	}
	r.mu.Lock()
	n := 0
	latest := map[change.Table]Checkpoint{}
	for n < len(r.inFlight) && r.inFlight[n].seq <= cp.seq {
		latest[r.inFlight[n].Table] = r.inFlight[n]
		n++
	}
	r.inFlight = r.inFlight[n:]
	var saves []sink.BackfillProgress
	for table, c := range latest {
		p := r.progress[table]
		if p == nil {
			r.mu.Unlock()
			return fmt.Errorf("backfill: acknowledged a chunk of %s, which is not being copied", table)
		}
		p.After, p.Rows, p.Updated = encodeKey(c.After), c.Rows, time.Now()
		saves = append(saves, *p)
	}
	r.mu.Unlock()
	slices.SortFunc(saves, func(a, b sink.BackfillProgress) int { return strings.Compare(a.Table, b.Table) })
	var errs []error
	for _, p := range saves {
		if err := r.store.SaveBackfill(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("backfill %s: save progress: %w", p.Table, err))
		}
	}
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return errors.Join(errs...)
}

// waitDurable waits until every emitted chunk was acknowledged.
func (r *Runner) waitDurable(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := len(r.inFlight)
		r.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.changed:
		case <-time.After(time.Second): // re-count: an Ack may have raced the signal
		}
	}
}

// logProgress logs each table's progress every ProgressEvery until stopped.
func (r *Runner) logProgress(ctx context.Context, start time.Time) (stop func()) {
	if r.cfg.ProgressEvery < 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, p := range r.Progress() {
				if p.State == StateSkipped {
					continue
				}
				r.log.Info("backfill progress", "table", p.Table.String(), "rows_durable", p.Durable, "rows_per_second", int64(p.RowsPerSecond))
			}
		}
	}()
	return func() { cancel(); <-done }
}

// encodeKey renders key values as saved progress: a JSON array of texts.
func encodeKey(k []string) string {
	if k == nil {
		return ""
	}
	b, _ := json.Marshal(k)
	return string(b)
}

func decodeKey(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var k []string
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return nil, fmt.Errorf("saved key %q: %w", s, err)
	}
	if len(k) == 0 {
		return nil, errors.New("saved key is empty")
	}
	return k, nil
}
