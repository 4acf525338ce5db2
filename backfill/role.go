package backfill

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file is the backfill role: what copies a table's chunks into the
// target (the Runner reads them, copyWriter writes them) and when the copy
// pauses. The protocol it follows is in the package doc.

// Target is what the backfill needs of the target: writes (copies, their
// dead letters), its progress and tombstones, and the types of the target
// columns (to decide whether a chunk can be copied verbatim). A target
// that can also copy text (sink.TextCopier, PostgreSQL) gets verbatim
// chunks.
type Target interface {
	WriteTarget
	sink.BackfillStore
}

// RoleReader is what the role reads the source with: chunks, verbatim
// chunks, and the source's load.
type RoleReader interface {
	TextReader
	LoadReader
	// Close releases the reader's connections.
	Close() error
}

// WriteMetrics are the apply-side counters the copy's writes count in
// (tandem_apply_rows_total, tandem_apply_errors_total,
// tandem_dlq_events_total), shared with the stream's appliers.
type WriteMetrics struct {
	Rows   *prometheus.CounterVec // {table, op}
	Errors *prometheus.CounterVec // {table, reason}
	DLQ    *prometheus.CounterVec // {mapping, reason}
}

// RoleConfig is what a backfill role copies, from where, to where.
type RoleConfig struct {
	Copy       Config // Tables, chunking, rate; Pause and Verbatim are set by NewRole
	Reader     RoleReader
	Target     Target
	Mappings   []*transform.Mapping // compiled with lookup() reading the target
	ServerText bool                 // the reader's verbatim text is the server's own (PostgreSQL)
	// Encoder and TopicPrefix make the record a copied row would have been,
	// for its dead letter; DLQ is where dead letters go.
	Encoder     *change.Encoder
	TopicPrefix string
	DLQ         *kafka.DLQ
	Metrics     WriteMetrics
	// Lag is the stream's replication lag in this process; nil when the
	// process applies no mapping (then the copy cannot pause for lag).
	Lag           func() time.Duration
	MaxLagSeconds int // pause while Lag is above it; -1 never
	MaxSourceLoad int // pause while the source runs more statements; -1 never
	Log           *slog.Logger
	Registerer    prometheus.Registerer
}

// Role copies existing rows into the target, beside the stream.
type Role struct {
	runner *Runner
	reader RoleReader
	log    *slog.Logger
}

// NewRole prepares the copy of cfg: it finds the tables whose chunks can be
// copied verbatim, and builds the Runner.
func NewRole(ctx context.Context, cfg RoleConfig) (*Role, error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	w, verbatim, err := newCopyWriter(ctx, cfg.Target, cfg.Reader, cfg.Mappings, cfg.Copy.Tables, cfg.ServerText, log)
	if err != nil {
		return nil, err
	}
	w.enc, w.prefix, w.dlq, w.metrics = cfg.Encoder, cfg.TopicPrefix, cfg.DLQ, cfg.Metrics
	copyCfg := cfg.Copy
	copyCfg.Verbatim = verbatim
	copyCfg.Pause = pause(cfg)
	copyCfg.After = lookupOrder(cfg.Mappings, log)
	return &Role{runner: New(copyCfg, cfg.Reader, cfg.Target, w.write, log, NewMetrics(cfg.Registerer)), reader: cfg.Reader, log: log}, nil
}

// WriteTarget is what a copy writes to: a sink, and the types of its
// columns (to decide whether a chunk can be copied verbatim). A target
// that can also copy text (sink.TextCopier, PostgreSQL) gets verbatim
// chunks.
type WriteTarget interface {
	sink.Sink
	// ColumnTypes returns the SQL type of each column of table, lowercase.
	ColumnTypes(ctx context.Context, table string) (map[string]string, error)
}

// newCopyWriter returns the writer of a copy of tables into tgt by
// mappings, and the source columns to read of each table whose chunks can
// be copied verbatim (Config.Verbatim): none unless the reader reads
// verbatim chunks and tgt copies text. The writer's dead letters,
// encoder and metrics are for the caller to set.
func newCopyWriter(ctx context.Context, tgt WriteTarget, reader Reader, mappings []*transform.Mapping, tables []change.Table, serverText bool,
	log *slog.Logger) (*copyWriter, map[change.Table][]string, error) {
	w := &copyWriter{sink: tgt, log: log, mappings: map[change.Table][]*transform.Mapping{}, verbatim: map[change.Table]verbatimCopy{}}
	for _, m := range mappings {
		w.mappings[m.From] = append(w.mappings[m.From], m)
	}
	verbatim := map[change.Table][]string{}
	// Verbatim chunks need a target that copies text: an optional
	// capability (PostgreSQL's COPY).
	w.copier, _ = tgt.(sink.TextCopier)
	if _, ok := reader.(TextReader); !ok || w.copier == nil {
		return w, verbatim, nil
	}
	for _, t := range tables {
		v, ok, err := verbatimCopyOf(ctx, reader, tgt, w.mappings[t], t, serverText)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			w.verbatim[t], verbatim[t] = v, v.srcCols
			log.Info("backfill: the table's mapping copies columns unchanged: its chunks are copied as the source's text", "table", t.String(), "target", v.table)
		}
	}
	return w, verbatim, nil
}

// lookupOrder finds which tables must be copied before which: a table
// whose mapping looks up (lookup()) rows of a target table that another
// table's mapping writes is copied after that table, so that its lookups
// find the rows rather than dead-letter them until a replay. A lookup
// whose table is not a literal cannot be ordered: it is logged.
func lookupOrder(mappings []*transform.Mapping, log *slog.Logger) map[change.Table][]change.Table {
	writers := map[string][]change.Table{} // target table -> source tables whose mappings write it
	for _, m := range mappings {
		for _, o := range m.Outputs() {
			if !slices.Contains(writers[o.Table], m.From) {
				writers[o.Table] = append(writers[o.Table], m.From)
			}
		}
	}
	after := map[change.Table][]change.Table{}
	for _, m := range mappings {
		tables, any := m.LookedUp()
		if any {
			log.Warn("backfill: a lookup() of the mapping names its table by an expression, so the copy cannot order the tables it reads; misses are dead letters until `tandem dlq replay`",
				"mapping", m.Name, "table", m.From.String())
		}
		for _, t := range tables {
			for _, w := range writers[t] {
				if w != m.From && !slices.Contains(after[m.From], w) {
					after[m.From] = append(after[m.From], w)
				}
			}
		}
	}
	return after
}

// Close releases the source reader.
func (b *Role) Close() error { return b.reader.Close() }

// pause says why the copy should wait now, or "": the backfill pauses
// while the stream lags or the source is busy (max_lag_seconds and
// max_source_load; -1 never), the copy being the work that can wait.
func pause(cfg RoleConfig) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if cfg.Lag != nil && cfg.MaxLagSeconds >= 0 {
			if lag := cfg.Lag().Seconds(); lag > float64(cfg.MaxLagSeconds) {
				return fmt.Sprintf("replication lag %.0fs > backfill.max_lag_seconds %d", lag, cfg.MaxLagSeconds), nil
			}
		}
		if cfg.MaxSourceLoad >= 0 {
			n, err := cfg.Reader.Load(ctx)
			if err != nil {
				return "", err
			}
			if n > cfg.MaxSourceLoad {
				return fmt.Sprintf("source load: %d statements running > backfill.max_source_load %d", n, cfg.MaxSourceLoad), nil
			}
		}
		return "", nil
	}
}

// verbatimCopy is how a table's chunks are copied verbatim: the source's
// COPY text of srcCols goes into cols of the target table.
type verbatimCopy struct {
	table   string
	cols    []string
	srcCols []string
	key     []string // the target's key columns
	// text says where each line's key is (sink.TextKey); nil when it
	// cannot be read off the text (keys of other types than integers and
	// strings).
	text *sink.TextKey
}

// verbatimCopyOf says whether the chunks of source table t can be written
// as COPY text read by the source reader, and how: when that writes what
// the mapping would (transform.Writes, then the sink's pgtext.Encode of
// each value). It takes a PostgreSQL connect.Target, one mapping of the table with
// one output, without `when`, whose every column is a source column as it
// is (row.x), the source's key among them. A MySQL reader's text is the
// sink's own encoding of the decoded values. A PostgreSQL reader's text is
// the server's (serverText): each column must be of a type whose text the
// decoded value keeps (pgtext keeps the text of all but integers, floats,
// bools and bytea; integers and bytea come back as the same text) or, for
// floats and bools, go into a column of its own type, where the two texts
// are the same value.
func verbatimCopyOf(ctx context.Context, reader Reader, tgt WriteTarget, ms []*transform.Mapping, t change.Table, serverText bool) (verbatimCopy, bool, error) {
	if len(ms) != 1 {
		return verbatimCopy{}, false, nil
	}
	outs := ms[0].Outputs()
	if len(outs) != 1 || outs[0].Conditional {
		return verbatimCopy{}, false, nil
	}
	o := outs[0]
	st, err := reader.Describe(ctx, t)
	if err != nil {
		return verbatimCopy{}, false, fmt.Errorf("backfill %s: %w", t, err)
	}
	tt, err := tgt.ColumnTypes(ctx, o.Table)
	if err != nil {
		return verbatimCopy{}, false, fmt.Errorf("backfill %s: %w", t, err)
	}
	v := verbatimCopy{table: o.Table, cols: o.Columns, srcCols: make([]string, len(o.Columns)), key: o.Key}
	for i, c := range o.Columns {
		src, ok := o.Copied[c]
		if !ok {
			return verbatimCopy{}, false, nil
		}
		v.srcCols[i] = src
		if !serverText {
			continue
		}
		switch st.Types[src] {
		case change.TypeInt, change.TypeBytes, change.TypeString, change.TypeDecimal, change.TypeTime, change.TypeJSON:
		case change.TypeFloat:
			if tt[c] != "double precision" && tt[c] != "real" {
				return verbatimCopy{}, false, nil
			}
		case change.TypeBool:
			if tt[c] != "boolean" {
				return verbatimCopy{}, false, nil
			}
		default:
			return verbatimCopy{}, false, nil
		}
	}
	for _, k := range st.Key {
		if !slices.Contains(v.srcCols, k) {
			return verbatimCopy{}, false, nil
		}
	}
	v.text = textKey(v, st, tt)
	return v, true, nil
}

// textKey says where the target's key is in the lines of v's COPY text,
// when their text is the key's values: integers and strings. The lines
// are in the key's order (sink.TextKey.Ordered) when it is the source's
// primary key, column for column, of integers into integer columns: a
// chunk holds every source row from its first key to its last.
func textKey(v verbatimCopy, src *change.Schema, tgtTypes map[string]string) *sink.TextKey {
	k := &sink.TextKey{At: make([]int, len(v.key)), Ordered: len(v.key) == len(src.Key)}
	for i, c := range v.key {
		j := slices.Index(v.cols, c)
		if j < 0 {
			return nil
		}
		switch src.Types[v.srcCols[j]] {
		case change.TypeInt:
		case change.TypeString:
			k.Ordered = false
		default:
			return nil
		}
		k.At[i] = j
		integer := tgtTypes[c] == "bigint" || tgtTypes[c] == "integer" || tgtTypes[c] == "smallint"
		if k.Ordered && (i >= len(src.Key) || v.srcCols[j] != src.Key[i] || !integer) {
			k.Ordered = false
		}
	}
	return k
}

// copyWriter writes the backfill's chunks to the target: every mapping of
// the chunk's table maps its rows as apply maps the stream's
// (transform.Writes: "r" changes become change.WriteCopy writes), and one Apply
// writes them all, with the dead letters of rows no mapping could
// transform. Copies need no Kafka order with the stream: the target orders
// them (the package doc).
type copyWriter struct {
	mappings map[change.Table][]*transform.Mapping // by source table
	verbatim map[change.Table]verbatimCopy         // tables read verbatim
	sink     sink.Sink
	copier   sink.TextCopier // the same target, when it copies text; nil: none verbatim
	enc      *change.Encoder // for dead letters: the record the row would have been
	prefix   string
	dlq      *kafka.DLQ // nil: a trial copy, which leaves out rows it cannot write
	metrics  WriteMetrics
	log      *slog.Logger
}

// write writes one chunk and returns once it is committed. A chunk read
// verbatim goes in as it is, unless the sink finds it must not (a
// tombstone, a row there already): then it is decoded and written as any.
func (w *copyWriter) write(ctx context.Context, c Chunk) error {
	rows := c.Rows
	if c.Text != nil {
		v := w.verbatim[c.Table.Name]
		err := w.retry(ctx, func() error {
			return w.copier.CopyText(ctx, v.table, v.cols, c.Text.Data, v.text)
		})
		if err == nil {
			w.metrics.Rows.WithLabelValues(v.table, change.WriteCopy.String()).Add(float64(c.Text.Rows))
			return nil
		}
		// A row the target refuses is found among the decoded rows.
		if !errors.Is(err, sink.ErrNotVerbatim) && !sink.Rejected(err) {
			return err
		}
		if rows, err = c.Text.Decode(); err != nil {
			return err
		}
	}
	units, dead, err := w.transform(ctx, c.Table.Reads(rows))
	if err != nil {
		return err
	}
	if len(dead) > 0 {
		if err := w.dlq.Produce(ctx, dead); err != nil {
			return err
		}
		w.log.Warn("copied rows sent to the dead-letter topic", "count", len(dead), "topic", w.dlq.Topic())
	}
	return w.apply(ctx, units)
}

// copyUnit is what one mapping makes of one copied row: its writes, or
// the dead letter it became.
type copyUnit struct {
	mapping string
	ev      *change.Event
	writes  []change.Write
	dead    *sink.DeadLetter
}

// transform maps every row of events with every mapping of its table, and
// returns the units and the dead-letter records of the rows no mapping
// could transform.
func (w *copyWriter) transform(ctx context.Context, events []change.Event) ([]copyUnit, []*kgo.Record, error) {
	var (
		units []copyUnit
		dead  []*kgo.Record
	)
	for i := range events {
		ev := &events[i]
		for _, m := range w.mappings[ev.Table] {
			ws, reason, err := transform.Writes(ctx, m, ev)
			for errors.Is(err, transform.ErrLookupUnavailable) {
				// The target's trouble, not the row's: wait and map it again.
				if perr := poll.Sleep(ctx, time.Second); perr != nil {
					return nil, nil, perr
				}
				ws, reason, err = transform.Writes(ctx, m, ev)
			}
			u := copyUnit{mapping: m.Name, ev: ev, writes: ws}
			if err != nil && w.dlq == nil { // a trial copy (Estimate): the row is left out
				continue
			}
			if err != nil {
				rec, dl, rerr := w.deadLetter(m.Name, reason, err, ev)
				if rerr != nil {
					return nil, nil, rerr
				}
				dead = append(dead, rec)
				u.writes, u.dead = nil, dl
			}
			units = append(units, u)
		}
	}
	return units, dead, nil
}

// deadLetter is the dead letter of ev, which mapping failed on for reason
// with err: the record for the dead-letter topic and the one the target keeps.
func (w *copyWriter) deadLetter(mapping, reason string, err error, ev *change.Event) (*kgo.Record, *sink.DeadLetter, error) {
	rec, rerr := w.record(ev)
	if rerr != nil {
		return nil, nil, fmt.Errorf("mapping %s: %w (and the row cannot be kept as a dead letter: %v)", mapping, err, rerr)
	}
	dl := kafka.StoredDeadLetter(mapping, reason, err, rec)
	w.metrics.DLQ.WithLabelValues(mapping, reason).Inc()
	return w.dlq.Record(mapping, reason, err, rec), &dl, nil
}

// apply writes units in one Apply, with the dead letters among them. A
// chunk the target rejects for a row's values (sink.Rejected) is split in
// halves, each written on its own (copies are idempotent: a half written
// again changes nothing), down to the row at fault, which is dead-lettered
// as apply does with a streamed change (reason rejected), and the rest of
// the chunk is written.
func (w *copyWriter) apply(ctx context.Context, units []copyUnit) error {
	todo := [][]copyUnit{units}
	for len(todo) > 0 {
		us := todo[0]
		todo = todo[1:]
		var batch sink.Batch
		for _, u := range us {
			batch.Writes = append(batch.Writes, u.writes...)
			if u.dead != nil {
				batch.DeadLetters = append(batch.DeadLetters, *u.dead)
			}
		}
		err := w.retry(ctx, func() error { return w.sink.Apply(ctx, batch, sink.Checkpoint{}) })
		switch {
		case err == nil:
			counts := map[string]int{}
			for _, wr := range batch.Writes {
				counts[wr.Table]++
			}
			for table, n := range counts {
				w.metrics.Rows.WithLabelValues(table, change.WriteCopy.String()).Add(float64(n))
			}
		case !sink.Rejected(err):
			return err
		case len(us) > 1:
			todo = append([][]copyUnit{us[:len(us)/2], us[len(us)/2:]}, todo...)
		case w.dlq == nil: // a trial copy (Estimate): the row is left out
		default:
			u := us[0]
			cause := fmt.Errorf("the target refused the copy of source row %s: %w", change.KeyText(u.ev.Key, u.ev.After), err)
			rec, dl, derr := w.deadLetter(u.mapping, sink.DeadLetterRejected, cause, u.ev)
			if derr != nil {
				return derr
			}
			if err := w.dlq.Produce(ctx, []*kgo.Record{rec}); err != nil {
				return err
			}
			w.log.Warn("copied row refused by the target sent to the dead-letter topic", "mapping", u.mapping, "err", cause)
			todo = append([][]copyUnit{{{mapping: u.mapping, ev: u.ev, dead: dl}}}, todo...)
		}
	}
	return nil
}

// retry runs write, a chunk's write, until it works or fails for a reason
// waiting cannot mend: it retries a lost connection or a deadlock, while
// anything else (a missing table or column) ends the backfill with the
// error, and a re-run resumes after the last chunk written; a value the
// target refuses is returned at once, for apply to split the chunk.
func (w *copyWriter) retry(ctx context.Context, write func() error) error {
	backoff := poll.NewBackoff()
	for {
		err := write()
		if err == nil || errors.Is(err, sink.ErrNotVerbatim) {
			return err
		}
		table, reason := sink.Classify(err)
		w.metrics.Errors.WithLabelValues(table, string(reason)).Inc()
		if ctx.Err() != nil || !reason.Retryable() {
			return err
		}
		wait := backoff.NextBackOff()
		w.log.Warn("backfill: writing a chunk failed; retrying", "reason", reason, "err", err, "retry_in", wait)
		if err := poll.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// record is the Kafka record a copied row would be, for its dead letter:
// on the table's topic, at partition -1 (no partition holds it) and an
// offset that is a hash of its key, so that copying the row again keeps
// one dead letter. `tandem dlq replay` re-syncs it from the source.
func (w *copyWriter) record(ev *change.Event) (*kgo.Record, error) {
	key, err := w.enc.Key(ev)
	if err != nil {
		return nil, err
	}
	val, err := w.enc.Value(ev)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write(key)
	return &kgo.Record{Topic: kafka.Topic(w.prefix, ev.Table), Partition: -1, Offset: int64(h.Sum64() >> 1), Key: key, Value: val}, nil
}

// Run copies, then reports the summary. watch, if set, runs beside the
// copy and has returned before done is called.
func (b *Role) Run(ctx context.Context, watch func(context.Context, *Runner), done func(Summary)) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	stopWatch := func() {}
	if watch != nil {
		wctx, cancel := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watch(wctx, b.runner)
		}()
		stopWatch = sync.OnceFunc(func() { cancel(); <-watched })
	}
	defer stopWatch()
	sum, err := b.runner.Run(ctx)
	stopWatch()
	if cause := context.Cause(ctx); err != nil && cause != nil {
		err = cause
	}
	if err != nil {
		if ctx.Err() != nil {
			b.logStopped()
		}
		return fmt.Errorf("backfill: %w", err)
	}
	b.log.Info("backfill done", "tables", sum.Tables, "rows", sum.Rows, "took", sum.Took.Round(1e6).String(),
		"throttled", sum.Throttled.Round(1e6).String(), "skipped", len(sum.Skipped))
	if done != nil {
		done(sum)
	}
	return nil
}

// logStopped says where a copy stopped before its end (a signal, or the
// process stopping for another role's failure): the rows made durable,
// which the next run does not copy again, and the tables not yet done.
func (b *Role) logStopped() {
	var rows int64
	left := []string{}
	for _, p := range b.runner.Progress() {
		rows += p.Durable
		if p.State != StateDone && p.State != StateSkipped {
			left = append(left, p.Table.String())
		}
	}
	b.log.Warn("backfill interrupted; the next run resumes after the rows copied", "rows_copied", rows, "tables_left", left)
}
