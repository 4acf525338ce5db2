// Package backfill copies the rows a source table already holds into the
// target, in chunks, throttled and resumable, beside the live stream, so
// that the copy and the stream converge on the same target whatever their
// interleaving.
//
// # How the copy and the stream converge
//
// Each chunk is one statement reading up to chunk_rows rows in primary key
// order after the last copied key (keyset pagination: no long-held locks,
// each chunk a consistent read). The pipeline maps its rows through the
// same mappings as the stream (transform.Writes of "r" changes) and writes
// them straight to the target as change.WriteCopy writes, not through Kafka: a
// copied row is inserted unless the target row exists (the stream wins: it
// wrote a version at least as new) or a tombstone says the stream deleted
// it. Copies and the stream's writes reach the target in no particular
// order; what orders them is the target itself:
//
//   - Rows of one key: a copy inserts with ON CONFLICT DO NOTHING (or
//     COPY, which fails on the key and falls back to it), the stream
//     upserts with ON CONFLICT DO UPDATE. The unique index puts the two in
//     one order: whichever commits second sees the other's row, so the
//     copy never overwrites the stream and the stream always overwrites the
//     copy. A chunk read verbatim (TextReader) is the same copy: it goes in
//     by COPY, without the lines whose keys have tombstones (read under the
//     copy lock, so none can appear meanwhile) or are keys of rows the
//     target holds (read before the COPY; a row the stream writes in
//     between makes the COPY fail on its key). When the keys cannot be
//     read off the text (types other than integers and strings) and the
//     table has tombstones or a row there, or the COPY fails so, the chunk
//     is decoded and written row by row.
//   - Deletes: every transaction that deletes from a target table while a
//     backfill is active holds that table's copy lock exclusive, from
//     before its DELETE to its commit; a backfill's chunk (a transaction
//     that only copies) holds it shared, from before it reads tombstones
//     to its commit, so the chunks of one table are written at once but
//     never beside a delete (sqlbatch.CopyLocks decides the mode; each
//     sink takes the lock first in the transaction, in table order:
//     PostgreSQL with a transaction-level advisory lock per table, MySQL
//     with a row of tandem's copy_locks table). So a copy and a delete of
//     one table never overlap: one commits before the other starts to read.
//
// The argument, for a row R of source table T copied from a chunk read at
// time t1:
//
//  1. The stream's start position precedes the backfill (the pipeline sets
//     up the slot or saves the binlog position before any chunk is read),
//     so every change committed after t1 reaches apply.
//  2. Before its first read the backfill marks itself running in the
//     target. While it runs, every delete apply writes leaves a tombstone,
//     in the same transaction (sink.BackfillStore).
//  3. Take any change C to R committed after t1. An insert or update: by
//     the unique index, the copy either finds C's row and leaves it, or is
//     overwritten by it. A delete: its transaction and the copy's do not
//     overlap. If the delete commits first, it left a tombstone (the
//     backfill has been running since before t1), which the copy reads,
//     and the copy is dropped; if the copy commits first, the delete reads
//     the copied row and removes it.
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
// Progress (the last copied key per table) is saved in the target after
// each chunk's rows are committed there, so a killed backfill resumes after
// the last written chunk.
package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// Reader reads source tables in primary key order, with values exactly as
// the stream's capturer produces them (so a copied row and a streamed row
// of the same content are equal).
type Reader interface {
	// Describe returns the table's columns, types and primary key.
	Describe(ctx context.Context, t change.Table) (*change.Schema, error)
	// Chunk reads up to limit rows with a key after after (nil: from the
	// start), in key order, in one consistent read. last is the text of
	// the last row's key values, to pass as the next after.
	Chunk(ctx context.Context, t *change.Schema, after []string, limit int) (rows []change.Row, last []string, err error)
	// Estimate returns the table's approximate row count, from statistics.
	Estimate(ctx context.Context, t change.Table) (int64, error)
}

// TextReader is a Reader that can read a chunk verbatim, as COPY text,
// for a table whose mapping only copies columns (Config.Verbatim): its
// server writes the rows and tandem decodes none.
type TextReader interface {
	Reader
	// TextChunk reads what Chunk(t, after, limit) reads, the values of
	// cols only, in that order, in COPY's text format.
	TextChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (*change.TextChunk, error)
}

// Chunk is a chunk of a table as read, handed to the writer: its rows, or
// for a table read verbatim, the rows' COPY text.
type Chunk struct {
	Table *change.Schema
	Rows  []change.Row
	Text  *change.TextChunk
}

// Len is the chunk's row count.
func (c Chunk) Len() int {
	if c.Text != nil {
		return c.Text.Rows
	}
	return len(c.Rows)
}

// LoadReader is a Reader that can tell how busy the source is (PostgreSQL
// active sessions, MySQL Threads_running), for pausing the copy.
type LoadReader interface {
	Reader
	Load(ctx context.Context) (int, error)
}

// Config says what to copy and how fast.
type Config struct {
	Tables    []change.Table
	ChunkRows int // rows per chunk (default 5000)
	// Parallel is how many tables, or key ranges of one table
	// (SplitReader), are copied at once (default 4).
	Parallel         int
	MaxRowsPerSecond float64 // 0: unthrottled
	Restart          bool    // forget saved progress and copy everything again
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
	// After lists, for a table, the tables to copy before it (its
	// mapping looks up rows their mappings write): it starts when they
	// are done. Tables in a cycle are copied as if none of the cycle's
	// edges were there, and logged.
	After map[change.Table][]change.Table
	// PauseCheckEvery is how often a paused copy asks again; default 1s.
	PauseCheckEvery time.Duration
	// MaxInFlightBytes bounds the bytes (as chunk sizes are estimated) of
	// the chunks read but not yet written, over every table: a reader
	// waits for writes rather than read ahead into memory. Each key range
	// copied may hold one chunk more, read and waiting. Default 64 MiB.
	MaxInFlightBytes int
	// Verbatim names, for tables whose chunks can be written as the
	// source's text (their one mapping copies columns, unchanged), the
	// source columns to read, in the order the target takes them. The
	// Reader must be a TextReader.
	Verbatim map[change.Table][]string
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
			Help: "Rows copied by backfill into the target, by source table.",
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
	cfg    Config
	reader Reader
	text   TextReader // reader, when it reads verbatim chunks (Config.Verbatim)
	// split and splitText are reader when it can copy a table in key
	// ranges, decoded and verbatim.
	split     SplitReader
	splitText SplitTextReader
	store     sink.BackfillStore
	write     func(context.Context, Chunk) error
	log       *slog.Logger
	metrics   *Metrics
	limiter   *rate.Limiter

	inFlight *semaphore.Weighted // MaxInFlightBytes

	mu       sync.Mutex
	progress map[change.Table]*sink.BackfillProgress
	live     liveStats    // the counters behind Progress (progress.go)
	copied   atomic.Int64 // rows of the chunks this run wrote and saved
}

// New returns a Runner. write writes a chunk to the target as copies, and
// returns once they are durable there; it is called for several chunks
// and tables at once.
func New(cfg Config, reader Reader, store sink.BackfillStore, write func(context.Context, Chunk) error, log *slog.Logger, m *Metrics) *Runner {
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
	if cfg.MaxInFlightBytes <= 0 {
		cfg.MaxInFlightBytes = 64 << 20
	}
	if log == nil {
		log = slog.Default()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	r := &Runner{cfg: cfg, reader: reader, store: store, write: write, log: log, metrics: m,
		progress: map[change.Table]*sink.BackfillProgress{}, inFlight: semaphore.NewWeighted(int64(cfg.MaxInFlightBytes))}
	r.text, _ = reader.(TextReader) // optional capabilities, asked for once
	r.split, _ = reader.(SplitReader)
	r.splitText, _ = reader.(SplitTextReader)
	if cfg.MaxRowsPerSecond > 0 {
		// The bucket holds one chunk (WaitN takes a chunk's rows at once)
		// and starts empty: over any window the copy reads at most the
		// rate's rows plus one chunk. A full bucket at the start let a
		// short copy run a chunk ahead of the rate (1,938 rows/s against
		// 1,500).
		r.limiter = rate.NewLimiter(rate.Limit(cfg.MaxRowsPerSecond), cfg.ChunkRows)
		r.limiter.AllowN(time.Now(), cfg.ChunkRows)
	}
	return r
}

// Summary is what a Run copied.
type Summary struct {
	Tables    int
	Rows      int64          // the copied tables' rows, with what earlier runs saved
	Copied    int64          // the rows of the chunks this run wrote (not those earlier runs saved)
	Skipped   []change.Table // already done before this run
	Took      time.Duration
	Throttled time.Duration // time spent waiting for the rate limit or a pause (per table, its ranges' longest)
}

// tableCopy is one table's copy in a Run: its key ranges, as saved.
type tableCopy struct {
	schema *change.Schema
	est    int64
	ranges []*keyRange // guarded by Runner.mu
	// save is held from taking a snapshot of the table's progress to
	// saving it, so the ranges' saves reach the store in order.
	save sync.Mutex
	left atomic.Int32  // ranges not finished
	done chan struct{} // closed once every range has returned
}

// Run copies every configured table not done yet, largest first, and
// returns once every copied chunk is durable. It saves the state that
// makes deletes leave tombstones before reading anything. A table may be
// copied in several key ranges at once (SplitReader); Parallel bounds the
// ranges copied at once over every table.
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
	var jobs []*tableCopy
	for _, name := range r.cfg.Tables {
		p, ok := byName[name.String()]
		if ok && p.State != sink.BackfillRunning {
			sum.Skipped = append(sum.Skipped, name)
			r.noteTable(name, StateSkipped, 0, p.Rows)
			r.log.Info("backfill: table already copied; skipped (--restart copies it again)", "table", name.String(), "rows", p.Rows, "state", p.State)
			continue
		}
		tc, err := r.prepare(ctx, name, p, ok)
		if err != nil {
			return sum, err
		}
		jobs = append(jobs, tc)
	}
	// Largest first: one giant table should not start last and finish
	// alone; but after the tables whose rows its lookups read.
	slices.SortStableFunc(jobs, func(a, b *tableCopy) int { return int(b.est - a.est) })
	names := make([]change.Table, len(jobs))
	for i, j := range jobs {
		names[i] = j.schema.Name
	}
	order, before := r.copyOrder(names)
	slices.SortStableFunc(jobs, func(a, b *tableCopy) int { return order[a.schema.Name] - order[b.schema.Name] })
	done := map[change.Table]chan struct{}{}
	for _, j := range jobs {
		done[j.schema.Name] = j.done
	}

	stopLog := r.logProgress(ctx, start)
	defer stopLog()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Parallel)
	for _, j := range jobs {
		name := j.schema.Name
		var todo []int
		for i, kr := range j.ranges {
			if !kr.Done {
				todo = append(todo, i)
			}
		}
		j.left.Store(int32(len(todo)))
		if len(todo) == 0 { // every range copied before a crash: only the final state is left
			r.noteStart(name)
			r.noteEnd(name, nil)
			close(j.done)
			continue
		}
		for _, i := range todo {
			// The tables before j come earlier in jobs, so their ranges
			// have started (or finished) when j's wait for them: waiting
			// holds a slot of Parallel without starving them.
			g.Go(func() (err error) {
				defer func() {
					last := j.left.Add(-1) == 0
					if last || err != nil {
						r.noteEnd(name, err)
					}
					if last {
						close(j.done)
					}
				}()
				for _, b := range before[name] {
					select {
					case <-done[b]:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				r.noteStart(name)
				return r.copyRange(gctx, j, i)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return sum, err
	}
	for _, j := range jobs {
		r.mu.Lock()
		p := *r.progress[j.schema.Name]
		r.mu.Unlock()
		p.State, p.Updated = sink.BackfillDone, time.Now()
		if err := r.store.SaveBackfill(ctx, p); err != nil {
			return sum, fmt.Errorf("backfill %s: save final state: %w", j.schema.Name, err)
		}
		sum.Rows += p.Rows
		sum.Tables++
	}
	sum.Copied = r.copied.Load()
	for _, p := range r.Progress() {
		sum.Throttled += p.Throttled
	}
	sum.Took = time.Since(start)
	return sum, nil
}

// prepare readies a table's copy: it describes the table, finds its key
// ranges (saved ones, or cut now for a copy from the start) and saves
// its progress as running before any of its rows is read, so that from
// then on deletes leave tombstones. p is its saved progress, if saved.
func (r *Runner) prepare(ctx context.Context, name change.Table, p sink.BackfillProgress, saved bool) (*tableCopy, error) {
	t, err := r.reader.Describe(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("backfill %s: %w", name, err)
	}
	if len(t.Key) == 0 {
		return nil, fmt.Errorf("backfill %s: the table has no primary key to copy it in order by; add one", name)
	}
	est, err := r.reader.Estimate(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("backfill %s: %w", name, err)
	}
	r.metrics.Estimated.WithLabelValues(name.String()).Set(float64(est))
	ranges, err := decodeRanges(p.After, p.Rows)
	if err != nil {
		return nil, fmt.Errorf("backfill %s: saved progress: %w", name, err)
	}
	resumed := p.After != "" || p.Rows != 0
	if !resumed {
		if ranges, err = r.splitTable(ctx, t); err != nil {
			return nil, err
		}
	}
	if !saved {
		p = sink.BackfillProgress{Table: name.String(), Started: time.Now()}
	}
	p.State, p.After, p.Updated = sink.BackfillRunning, encodeRanges(ranges), time.Now()
	if err := r.store.SaveBackfill(ctx, p); err != nil {
		return nil, fmt.Errorf("backfill %s: save progress: %w", name, err)
	}
	r.progress[name] = &p
	r.noteTable(name, StateWaiting, est, p.Rows)
	if resumed {
		r.log.Info("backfill: resuming", "table", name.String(), "after", p.After, "rows", p.Rows)
	}
	return &tableCopy{schema: t, est: est, ranges: ranges, done: make(chan struct{})}, nil
}

// splitTable cuts a table copied from the start into up to Parallel key
// ranges of at least a chunk each, when the reader can (SplitReader, and
// SplitTextReader for a table read verbatim); else it is one range.
func (r *Runner) splitTable(ctx context.Context, t *change.Schema) ([]*keyRange, error) {
	_, verbatim := r.cfg.Verbatim[t.Name]
	if r.cfg.Parallel < 2 || r.split == nil || (verbatim && r.splitText == nil) {
		return newRanges(nil), nil
	}
	bounds, err := r.split.Split(ctx, t, r.cfg.Parallel, int64(r.cfg.ChunkRows))
	if err != nil {
		return nil, fmt.Errorf("backfill %s: cut the table into key ranges: %w", t.Name, err)
	}
	if len(bounds) > 0 {
		r.log.Info("backfill: the table is copied in key ranges at once", "table", t.Name.String(), "ranges", len(bounds)+1)
	}
	return newRanges(bounds), nil
}

// copyOrder orders tables (given largest first) so that each comes after
// the tables Config.After puts before it, keeping the given order
// otherwise: order is each table's place, before the tables among these
// that each must wait for. An edge that closes a cycle is dropped, and
// logged.
func (r *Runner) copyOrder(tables []change.Table) (order map[change.Table]int, before map[change.Table][]change.Table) {
	order, before = map[change.Table]int{}, map[change.Table][]change.Table{}
	state := map[change.Table]int{} // 0 unseen, 1 being placed, 2 placed
	var place func(t change.Table)
	place = func(t change.Table) {
		state[t] = 1
		for _, b := range r.cfg.After[t] {
			if !slices.Contains(tables, b) {
				continue // copied already, or not in this run: nothing to wait for
			}
			switch state[b] {
			case 1:
				r.log.Warn("backfill: the tables' lookups read each other's rows (a cycle): copied without waiting for each other; misses are dead letters until `tandem dlq replay`",
					"table", t.String(), "looks_up_rows_of", b.String())
				continue
			case 0:
				place(b)
			}
			before[t] = append(before[t], b)
		}
		state[t] = 2
		order[t] = len(order)
	}
	for _, t := range tables {
		if state[t] == 0 {
			place(t)
		}
	}
	return order, before
}

// chunk is a table's chunk as read, on its way to be written.
type chunk struct {
	Chunk
	after  []string // the last key of the chunk before: where this one starts
	last   []string // the key to read the next chunk after
	final  bool     // the range's last chunk
	weight int64    // its share of MaxInFlightBytes, released once written
}

// writersPerRange is how many chunks of one key range are mapped and
// written at once: while one chunk's rows are being written (the
// target's work, under the table's copy lock) the next is mapped and
// encoded (tandem's).
const writersPerRange = 2

// copyRange copies the chunks of range i of a table: one goroutine reads
// chunks ahead while writersPerRange others write the chunks before, so
// the source, the target and tandem work at once. Progress is saved in
// chunk order, after each chunk and every chunk of the range before it
// are written.
func (r *Runner) copyRange(ctx context.Context, tc *tableCopy, i int) error {
	t := tc.schema
	r.mu.Lock()
	kr := *tc.ranges[i]
	r.mu.Unlock()
	rows := kr.Rows
	counter := r.metrics.Rows.WithLabelValues(t.Name.String())
	g, ctx := errgroup.WithContext(ctx)
	read := make(chan chunk, 2)
	g.Go(func() error {
		defer close(read)
		return r.readChunks(ctx, t, i, kr.After, kr.Until, read)
	})
	g.Go(func() error {
		w, wctx := errgroup.WithContext(ctx)
		w.SetLimit(writersPerRange)
		prev := make(chan struct{}) // closed once the chunk before is saved
		close(prev)
		for c := range read {
			if wctx.Err() != nil {
				break
			}
			rows += int64(c.Len())
			total, before, saved := rows, prev, make(chan struct{})
			prev = saved
			w.Go(func() error {
				err := r.writeChunk(wctx, t, c)
				r.inFlight.Release(c.weight)
				if err != nil {
					return err
				}
				select {
				case <-before:
				case <-wctx.Done():
					return wctx.Err()
				}
				key := c.last
				if c.Len() == 0 {
					key = c.after
				}
				if err := r.saveChunk(wctx, tc, i, key, total, c.final); err != nil {
					return err
				}
				counter.Add(float64(c.Len()))
				r.copied.Add(int64(c.Len()))
				close(saved)
				return nil
			})
		}
		return w.Wait()
	})
	return g.Wait()
}

// writeChunk hands a chunk to write.
func (r *Runner) writeChunk(ctx context.Context, t *change.Schema, c chunk) error {
	if c.Len() == 0 {
		return nil
	}
	if err := r.write(ctx, c.Chunk); err != nil {
		return fmt.Errorf("backfill %s: write the chunk after %s: %w", t.Name, encodeKey(c.after), err)
	}
	return nil
}

// readChunks reads the chunks of range i of a table after after, up to
// until (nil: the table's end), waiting for pauses and the rate limit,
// and sends them to out until the last.
func (r *Runner) readChunks(ctx context.Context, t *change.Schema, i int, after, until []string, out chan<- chunk) error {
	limit := min(r.cfg.ChunkRows, firstChunkRows)
	var throttled time.Duration
	for {
		waited, err := r.waitUnpaused(ctx, t.Name)
		throttled += waited
		if err != nil {
			r.noteChunk(t.Name, i, 0, throttled)
			return err
		}
		c, bytes, err := r.readChunk(ctx, t, after, until, limit)
		if err != nil {
			return fmt.Errorf("backfill %s: read chunk after %s: %w", t.Name, encodeKey(after), err)
		}
		n := c.Len()
		c.final = n < limit
		limit = nextLimit(limit, r.cfg.ChunkRows, r.cfg.ChunkBytes, bytes)
		if r.limiter != nil && n > 0 {
			w := time.Now()
			err := r.limiter.WaitN(ctx, min(n, r.limiter.Burst()))
			throttled += time.Since(w)
			if err != nil {
				r.noteChunk(t.Name, i, 0, throttled)
				return err
			}
		}
		r.noteChunk(t.Name, i, int64(n), throttled)
		c.weight = int64(min(max(bytes, 1), r.cfg.MaxInFlightBytes))
		if err := r.inFlight.Acquire(ctx, c.weight); err != nil {
			return err
		}
		select {
		case out <- c:
		case <-ctx.Done():
			r.inFlight.Release(c.weight)
			return ctx.Err()
		}
		if c.final {
			return nil
		}
		after = c.last
	}
}

// readChunk reads one chunk, of the keys up to until (nil: no bound):
// verbatim when Config.Verbatim names the table, else decoded. bytes is
// its approximate size.
func (r *Runner) readChunk(ctx context.Context, t *change.Schema, after, until []string, limit int) (c chunk, bytes int, err error) {
	c = chunk{Chunk: Chunk{Table: t}, after: after}
	if cols, ok := r.cfg.Verbatim[t.Name]; ok {
		switch {
		case r.text == nil:
			return c, 0, fmt.Errorf("the source reader cannot read chunks verbatim")
		case until != nil:
			c.Text, err = r.splitText.RangeTextChunk(ctx, t, cols, after, until, limit)
		default:
			c.Text, err = r.text.TextChunk(ctx, t, cols, after, limit)
		}
		if err != nil {
			return c, 0, err
		}
		c.last = c.Text.Last
		return c, len(c.Text.Data), nil
	}
	if until != nil {
		c.Rows, c.last, err = r.split.RangeChunk(ctx, t, after, until, limit)
	} else {
		c.Rows, c.last, err = r.reader.Chunk(ctx, t, after, limit)
	}
	if err != nil {
		return c, 0, err
	}
	return c, rowBytes(c.Rows), nil
}

// saveChunk saves a table's progress once a chunk of its range i is
// durable in the target: after is the chunk's last key, rows the range's
// rows copied so far, final whether it was the range's last chunk.
func (r *Runner) saveChunk(ctx context.Context, tc *tableCopy, i int, after []string, rows int64, final bool) error {
	tc.save.Lock()
	defer tc.save.Unlock()
	r.mu.Lock()
	kr := tc.ranges[i]
	kr.After, kr.Rows, kr.Done = after, rows, final
	var total int64
	for _, k := range tc.ranges {
		total += k.Rows
	}
	p := r.progress[tc.schema.Name]
	p.After, p.Rows, p.Updated = encodeRanges(tc.ranges), total, time.Now()
	saved := *p
	r.mu.Unlock()
	if err := r.store.SaveBackfill(ctx, saved); err != nil {
		return fmt.Errorf("backfill %s: save progress: %w", tc.schema.Name, err)
	}
	return nil
}

// waitUnpaused waits while Pause gives a reason, logging each new reason once.
func (r *Runner) waitUnpaused(ctx context.Context, table change.Table) (time.Duration, error) {
	if r.cfg.Pause == nil {
		return 0, nil
	}
	// Only time spent paused counts, from the first answer that pauses:
	// the checks' own time (a lag or load query) is no throttling.
	var paused time.Time
	waited := func() time.Duration {
		if paused.IsZero() {
			return 0
		}
		return time.Since(paused)
	}
	said := ""
	for {
		reason, err := r.cfg.Pause(ctx)
		if err != nil {
			return waited(), fmt.Errorf("backfill %s: %w", table, err)
		}
		if reason == "" {
			if said != "" {
				r.log.Info("backfill resumed", "table", table.String(), "paused_for", waited().Round(time.Second).String())
			}
			return waited(), nil
		}
		if paused.IsZero() {
			paused = time.Now()
		}
		if reason != said {
			r.log.Warn("backfill paused", "table", table.String(), "reason", reason)
			said = reason
		}
		select {
		case <-ctx.Done():
			return waited(), ctx.Err()
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
