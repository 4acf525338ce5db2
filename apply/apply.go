package apply

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/repeat"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Applier consumes one mapping's topic in its own consumer group, so a
// mapping that fails (its target table missing, a permission error) retries
// on its own while the others go on.
type Applier struct {
	mapping     *transform.Mapping
	name        string // the mapping label of its metrics and logs
	direction   string // forward or reverse
	topics      []string
	transformFn Transformer
	prepareFn   func(ctx context.Context, evs []*change.Event) error
	side        sink.Side
	group       string
	epoch       string
	seeds       []string
	clientOpt   []kgo.Opt
	sink        Sink
	dlq         *kafka.DLQ
	metrics     *Metrics
	log         *slog.Logger
	committed   func(group, topic string, partition int32, next int64)
	applied     func(mapping string, keys []change.Row)
	maxPoll     int
	joined      atomic.Bool
	paused      atomic.Bool   // tandem_mapping_paused, for readiness
	writing     atomic.Bool   // a batch is being written (or retried)
	target      string        // the target's host:port, in log lines
	timeout     time.Duration // Config.WriteTimeout
	guard       *schemaGuard
	lagMillis   atomic.Int64 // the lag last set, owned here; the gauge mirrors it
	// pending holds, oldest first, the oldest source commit time of each
	// batch polled and not yet written (zero: a batch without changes).
	pendingMu sync.Mutex
	pending   []time.Time
	lagGauge  prometheus.Gauge // tandem_replication_lag_seconds{mapping}, looked up once
}

// topicPartition names one partition of a topic.
type topicPartition struct {
	topic     string
	partition int32
}

// Sink is what an Applier needs of the target.
type Sink interface {
	sink.Sink
	// Forget drops what the sink cached of the target's tables, so a
	// retry after a failure reads them again (a column added meanwhile).
	Forget()
}

// Config says what an Applier consumes and where it writes.
type Config struct {
	Mapping *transform.Mapping
	Topic   string // the mapping's source table's topic
	// Reverse makes the Applier the mapping's reverse stream: it consumes
	// Topics (the new schema's tables) and Transform turns their changes
	// into writes of the old schema's rows. The source-schema guard does
	// not apply. Its metrics' mapping label is "reverse:<mapping>" but for
	// the lag, labelled direction="reverse".
	Reverse   bool
	Topics    []string    // with Reverse: the topics consumed instead of Topic
	Transform Transformer // nil: transform.Writes of the mapping
	// Prepare, if set, is called once per polled batch with its decoded
	// changes, in the order polled, before Transform is called for any of
	// them: for work better done once for many changes (the reverse
	// stream reads the current rows all of them need, one query a table).
	// An error is the target's trouble, never the changes': Prepare is
	// retried (the mapping paused meanwhile, as for a failed lookup) until
	// it succeeds or ctx ends; no change is dead-lettered for it.
	Prepare func(ctx context.Context, evs []*change.Event) error
	// Side is the side of the migration the Sink writes, when cutover is
	// configured: each batch is written with it (sink.Batch.Side), so only
	// the writes of cohorts this direction owns are applied.
	Side       sink.Side
	Group      string   // the consumer group, one per mapping
	Epoch      string   // the Kafka cluster's identity, scoping stored offsets
	Seeds      []string // the brokers
	ClientOpts []kgo.Opt
	Sink       Sink
	DLQ        *kafka.DLQ
	Metrics    *Metrics
	Log        *slog.Logger
	// Committed, if set, is told each partition's next offset once it is
	// stored in the target (ack tracking, trimming).
	Committed func(group, topic string, partition int32, next int64)
	// Applied, if set, is given the source keys of the stream's inserts
	// and updates once they are in the target (re-verification).
	Applied func(mapping string, keys []change.Row)
	MaxPoll int // records per poll; 0: 10,000
	// WriteTimeout bounds each attempt of a request to the target (a
	// batch with its offsets, a dead letter stored, the stored offsets
	// read): one the target has not answered by then is cancelled and
	// retried, the mapping paused meanwhile, so that a hung target, or a
	// lock held that long, shows. 0: none.
	WriteTimeout time.Duration
	// Target names the target (host:port, never the DSN) in log lines.
	Target string
}

// Transformer turns one change into target writes; reason and poison say
// why a change cannot be, for its dead letter (see transform.Writes).
type Transformer func(ctx context.Context, ev *change.Event) (ws []change.Write, reason string, poison error)

// Directions of a stream, the direction label of tandem_replication_lag_seconds.
const (
	Forward = "forward" // old schema -> new schema
	Reverse = "reverse" // new schema -> old schema, through the inverse
)

// New returns an Applier of cfg.
func New(cfg Config) *Applier {
	a := &Applier{mapping: cfg.Mapping, name: cfg.Mapping.Name, direction: Forward, topics: []string{cfg.Topic},
		transformFn: cfg.Transform, prepareFn: cfg.Prepare, side: cfg.Side, group: cfg.Group, epoch: cfg.Epoch, seeds: cfg.Seeds,
		clientOpt: cfg.ClientOpts, sink: cfg.Sink, dlq: cfg.DLQ, metrics: cfg.Metrics, log: cfg.Log,
		committed: cfg.Committed, applied: cfg.Applied, maxPoll: cfg.MaxPoll, guard: newSchemaGuard(cfg.Mapping),
		target: cfg.Target, timeout: cfg.WriteTimeout}
	if a.maxPoll <= 0 {
		a.maxPoll = 10_000
	}
	if cfg.Reverse {
		a.name, a.direction, a.topics, a.guard = Reverse+":"+cfg.Mapping.Name, Reverse, cfg.Topics, nil
	}
	if a.transformFn == nil {
		m := cfg.Mapping
		a.transformFn = func(ctx context.Context, ev *change.Event) ([]change.Write, string, error) {
			return transform.Writes(ctx, m, ev)
		}
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.committed == nil {
		a.committed = func(string, string, int32, int64) {}
	}
	a.lagGauge = a.metrics.Lag.WithLabelValues(a.mapping.Name, a.direction)
	return a
}

// Mapping is the name of the Applier in metrics and logs: the mapping's,
// or "reverse:<mapping>" for its reverse stream.
func (a *Applier) Mapping() string { return a.name }

// Stream names the Applier's stream in heartbeats: "<direction>:<mapping>".
func (a *Applier) Stream() string { return a.direction + ":" + a.mapping.Name }

// Joined reports whether the consumer has been assigned its partitions.
func (a *Applier) Joined() bool { return a.joined.Load() }

// Paused reports whether the mapping is paused (tandem_mapping_paused):
// retrying a failing or hung request to the target, or stopped by a
// schema change.
func (a *Applier) Paused() bool { return a.paused.Load() }

// setPaused sets Paused and tandem_mapping_paused.
func (a *Applier) setPaused(on bool) {
	a.paused.Store(on)
	v := 0.0
	if on {
		v = 1
	}
	a.metrics.Paused.WithLabelValues(a.name).Set(v)
}

// bounded runs fn, a request to the target, under Config.WriteTimeout; an
// attempt cut short by it says so, naming the target.
func (a *Applier) bounded(ctx context.Context, fn func(ctx context.Context) error) error {
	if a.timeout <= 0 {
		return fn(ctx)
	}
	bctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	err := fn(bctx)
	if err != nil && ctx.Err() == nil && bctx.Err() != nil {
		return fmt.Errorf("the target %s did not answer within %s (target.write_timeout); cancelled: %w", a.target, a.timeout, err)
	}
	return err
}

// Lag is tandem_replication_lag_seconds of the mapping, as last set.
func (a *Applier) Lag() time.Duration {
	return time.Duration(a.lagMillis.Load()) * time.Millisecond
}

// setLag sets the mapping's lag, in seconds (negative: 0), in the Applier
// and its gauge.
func (a *Applier) setLag(seconds float64) {
	seconds = max(0, seconds)
	a.lagMillis.Store(int64(seconds * 1000))
	a.lagGauge.Set(seconds)
}

// Run consumes until ctx ends. Two stages overlap: one goroutine polls,
// decodes and transforms the next records while the other writes the
// previous batch to the target. A batch fenced off by the target (a
// rebalance moved its partition while it was in flight) is dropped, and
// consumption restarts from the offsets stored in the target.
func (a *Applier) Run(ctx context.Context) error { return a.RunUntil(ctx, nil) }

// RunUntil is Run that drains when stop is closed: it polls nothing more,
// writes and commits the batches it has already polled, and returns nil.
// ctx bounds the whole, the drain included: when it ends first, the batch
// being written is rolled back (its records are read again by whoever
// consumes the partition next) and RunUntil returns ctx.Err(). A nil stop
// never drains.
func (a *Applier) RunUntil(ctx context.Context, stop <-chan struct{}) error {
	a.setPaused(false)
	for {
		err := a.consume(ctx, stop)
		if !errors.Is(err, sink.ErrFenced) {
			return err
		}
		a.log.Warn("batch fenced off by offsets stored by another consumer; resuming from the stored offsets", "mapping", a.name)
	}
}

// groupSessionTimeout is how long a consumer group waits for a member that
// stopped heartbeating before it moves the member's partitions to the
// others: a killed apply process (kill -9, an OOM kill, a lost node: no
// LeaveGroup) stalls its partitions that long, and a process joining
// meanwhile stalls the whole group, which waits for the dead member to
// rejoin. Kafka's default is 45 s; 10 s is within every broker's default
// bounds (group.min.session.timeout.ms is 6 s) and still far above a
// heartbeat's round trip, so a busy process is not taken for dead.
const groupSessionTimeout = 10 * time.Second

// groupHeartbeat is how often a member heartbeats: a third of Kafka's
// ratio, so a rebalance (a process added or gone) reaches every member
// within a second.
const groupHeartbeat = time.Second

// The consumer's fetch sizes bound its memory, not its speed: a fetch
// brings at most fetchMaxBytes (fetchMaxPartitionBytes of one partition),
// compressed, enough for a poll of MaxPoll records of a narrow table.
// Decompressed, it is many times larger: the records of a large DELETE
// compress about 14 to 1 under zstd, and two 4 MiB fetches held 113 MiB
// of decompressed batches (tandem apply peaked at 277 MiB on a 1M-row
// DELETE; 222 MiB with these, and no slower). Both are soft in Kafka's fetch protocol: the first record batch
// of a fetch comes whatever its size, so a wide row (a multi-megabyte
// text, up to Kafka's record limit) does not stall its partition; it
// comes alone.
const (
	fetchMaxBytes          = 1 << 20
	fetchMaxPartitionBytes = 256 << 10
	// maxConcurrentFetches bounds the fetches in flight or buffered at
	// once (by default one per broker).
	maxConcurrentFetches = 2
)

func (a *Applier) consume(ctx context.Context, stop <-chan struct{}) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(a.seeds...),
		kgo.ConsumerGroup(a.group),
		kgo.SessionTimeout(groupSessionTimeout), kgo.HeartbeatInterval(groupHeartbeat),
		kgo.ConsumeTopics(a.topics...),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		// What a consumer holds before it polls: fetchMaxBytes per
		// fetch, decompressed, maxConcurrentFetches of them buffered.
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes), kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.MaxConcurrentFetches(maxConcurrentFetches),
		kgo.AdjustFetchOffsetsFn(a.storedOffsets),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { a.joined.Store(true) }),
	}, a.clientOpt...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("mapping %s: create consumer: %w", a.name, err)
	}
	defer cl.Close()
	g, gctx := errgroup.WithContext(ctx)
	// The poller stops at stop; the writer goes on with what it was
	// handed, under gctx.
	pctx, stopPolling := context.WithCancel(gctx)
	defer stopPolling()
	if stop != nil {
		go func() {
			select {
			case <-stop:
				stopPolling()
			case <-pctx.Done():
			}
		}()
	}
	ready := make(chan *prepared, 1)
	g.Go(func() error {
		defer close(ready)
		err := a.poll(pctx, cl, ready)
		if gctx.Err() == nil && pctx.Err() != nil {
			return nil // stopped: drain
		}
		return err
	})
	wctx, writerDone := context.WithCancel(gctx) // the lag is watched while the writer writes
	g.Go(func() error {
		defer writerDone()
		for p := range ready {
			if err := a.write(gctx, p); err != nil {
				return err
			}
			a.written()
		}
		return nil
	})
	g.Go(func() error { a.watchLag(wctx, time.Second); return nil })
	return g.Wait()
}

// watchLag sets the lag every interval while a batch is pending, from the
// oldest change polled and not yet written, until ctx ends: so the lag
// grows in real time while the stream waits, whatever it waits on (a paused
// mapping, a hung target, a lookup, a fence), not only when a batch is
// attempted.
func (a *Applier) watchLag(ctx context.Context, interval time.Duration) {
	poll.Every(ctx, interval, func() bool {
		if oldest, ok := a.oldestPending(); ok {
			a.setLag(time.Since(oldest).Seconds())
		}
		return true
	})
}

// polled records a batch polled, whose oldest change was committed at
// oldest (zero: it has none).
func (a *Applier) polled(oldest time.Time) {
	a.pendingMu.Lock()
	a.pending = append(a.pending, oldest)
	a.pendingMu.Unlock()
}

// written drops the oldest batch polled: it is written.
func (a *Applier) written() {
	a.pendingMu.Lock()
	if len(a.pending) > 0 {
		a.pending = a.pending[1:]
	}
	a.pendingMu.Unlock()
}

// oldestPending returns the commit time of the oldest change polled and not
// yet written; false when there is none.
func (a *Applier) oldestPending() (time.Time, bool) {
	a.pendingMu.Lock()
	defer a.pendingMu.Unlock()
	for _, t := range a.pending {
		if !t.IsZero() {
			return t, true
		}
	}
	return time.Time{}, false
}

// poll fetches, decodes and transforms records and hands them to the writer.
func (a *Applier) poll(ctx context.Context, cl *kgo.Client, ready chan<- *prepared) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollRecords(pctx, a.maxPoll)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var recs []*kgo.Record
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				a.log.Warn("fetch error", "mapping", a.name, "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) == 0 {
			if len(ready) == 0 && !a.writing.Load() {
				a.setLag(0) // caught up and idle
			}
			continue
		}
		p, stop, err := a.prepare(ctx, recs)
		if err != nil {
			return err
		}
		select {
		case ready <- p:
		case <-ctx.Done():
			return ctx.Err()
		}
		if stop != nil {
			return a.halt(ctx, stop)
		}
	}
}

// halt stops the mapping for good (until restarted) after a schema change
// under it: paused, counted, said once, and nothing after the change is
// applied or acknowledged, so nothing is lost.
func (a *Applier) halt(ctx context.Context, stop *schemaChangeError) error {
	a.setPaused(true)
	a.metrics.Errors.WithLabelValues(stop.Table, "schema_changed").Inc()
	a.log.Error("mapping stopped: source schema changed", "mapping", a.name, "table", stop.Table, "column", stop.Column, "err", stop)
	<-ctx.Done()
	return ctx.Err()
}

// storedOffsets starts each assigned partition where the target says this
// group stands in this cluster, or at the start of the topic.
func (a *Applier) storedOffsets(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var stored []sink.Offset
	err := a.retry(ctx, "read stored offsets", func() error {
		var err error
		return a.bounded(ctx, func(ctx context.Context) error {
			stored, err = a.sink.Offsets(ctx, a.group, a.epoch)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	next := map[topicPartition]int64{}
	for _, o := range stored {
		next[topicPartition{o.Topic, o.Partition}] = o.Next
	}
	for topic, parts := range assigned {
		for p := range parts {
			if n, ok := next[topicPartition{topic, p}]; ok {
				parts[p] = kgo.NewOffset().At(n)
			} else {
				parts[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	return assigned, nil
}

// unit is one polled record as the writer applies it: the target writes
// its change maps to, or the dead letter it became.
type unit struct {
	rec    *kgo.Record
	writes []change.Write
	dead   *sink.DeadLetter // a change that could not be decoded, transformed or written
	key    change.Row       // the source row of an insert or update, for re-verification; nil: none
}

// prepared is a polled batch, transformed, ready to write: its records in
// the order polled (each partition's in offset order).
type prepared struct {
	units  []unit
	newest time.Time
}

// prepare transforms the records once and sends poison ones to the
// dead-letter topic (retrying that until it works). A change that a schema
// change makes unsafe to transform ends the batch before it; stop says why.
func (a *Applier) prepare(ctx context.Context, recs []*kgo.Record) (p *prepared, stop *schemaChangeError, err error) {
	var dead []*kgo.Record
	p = &prepared{units: make([]unit, 0, len(recs))}
	// Decode first, so Prepare sees every change before any is
	// transformed: evs[i] is the change of recs[i], nil for a tombstone;
	// errs[i] why it could not be decoded.
	evs := make([]*change.Event, 0, len(recs))
	errs := make([]error, 0, len(recs))
	var decoded []*change.Event
	for _, r := range recs {
		var ev *change.Event
		var err error
		if r.Value != nil { // nil: a tombstone after a delete, for log compaction: nothing to apply
			ev, err = change.Decode(nil, r.Value)
		}
		if err == nil && ev != nil && ev.Oversize != "" {
			ev, err = nil, kafka.OversizeError(ev) // a marker: dead-lettered whole, nothing to check or prepare
		}
		if err == nil && ev != nil && a.guard != nil {
			if err := a.guard.check(ev); err != nil {
				stop = err.(*schemaChangeError)
				break
			}
		}
		if err == nil && ev != nil {
			decoded = append(decoded, ev)
		}
		evs, errs = append(evs, ev), append(errs, err)
	}
	var oldest time.Time
	for _, ev := range decoded {
		if !ev.Commit.IsZero() && (oldest.IsZero() || ev.Commit.Before(oldest)) {
			oldest = ev.Commit
		}
	}
	a.polled(oldest)
	if a.prepareFn != nil && len(decoded) > 0 {
		if err := a.retry(ctx, "prepare batch", func() error { return a.prepareFn(ctx, decoded) }); err != nil {
			return nil, nil, err
		}
	}
	for i, ev := range evs {
		r, err := recs[i], errs[i]
		u := unit{rec: r}
		if ev == nil && err == nil {
			p.units = append(p.units, u) // a tombstone: its offset is consumed, nothing to write
			continue
		}
		reason := "decode"
		if errors.Is(err, kafka.ErrOversize) {
			reason = kafka.ReasonOversize
		}
		if err == nil {
			if ev.Commit.After(p.newest) {
				p.newest = ev.Commit
			}
			var fatal error
			if u.writes, reason, err, fatal = a.transform(ctx, ev); fatal != nil {
				return nil, nil, fatal
			}
		}
		if err != nil {
			dead = append(dead, a.dlq.Record(a.name, reason, err, r))
			dl := kafka.StoredDeadLetter(a.name, reason, err, r)
			u.writes, u.dead = nil, &dl
		} else if a.applied != nil && (ev.Op == change.OpCreate || ev.Op == change.OpUpdate) {
			u.key = ev.After // the records carry no key names: Verify picks the key
		}
		p.units = append(p.units, u)
	}
	if len(dead) > 0 {
		if err := a.retry(ctx, "write dead letters", func() error { return a.dlq.Produce(ctx, dead) }); err != nil {
			return nil, nil, err
		}
		for _, d := range dead {
			a.metrics.DLQ.WithLabelValues(a.name, string(d.Headers[0].Value)).Inc()
		}
		a.log.Warn("changes sent to the dead-letter topic", "mapping", a.name, "count", len(dead), "topic", a.dlq.Topic())
	}
	return p, stop, nil
}

// transform maps ev to its target writes (transform.Writes); poison says
// why a poison change cannot be, for its dead letter. A lookup the target
// could not answer is the target's trouble, not the change's: it is
// retried (the mapping shows paused) instead of sending the change to the
// dead-letter topic; err is set only when ctx ends meanwhile.
func (a *Applier) transform(ctx context.Context, ev *change.Event) (ws []change.Write, reason string, poison, err error) {
	ws, reason, poison = a.transformFn(ctx, ev)
	if errors.Is(poison, transform.ErrLookupUnavailable) {
		err = a.retry(ctx, "look up target rows", func() error {
			ws, reason, poison = a.transformFn(ctx, ev)
			if errors.Is(poison, transform.ErrLookupUnavailable) {
				return poison
			}
			return nil
		})
	}
	return ws, reason, poison, err
}

// span is the units [lo, hi) of a prepared batch.
type span struct{ lo, hi int }

// batch is what the units of sp write and the dead letters they keep, with
// the offsets that cover them: on each partition, from the first of them
// to after the last.
func (a *Applier) batch(p *prepared, sp span) (sink.Batch, sink.Checkpoint) {
	b := sink.Batch{Side: a.side}
	cp := sink.Checkpoint{Group: a.group, Epoch: a.epoch}
	at := map[topicPartition]int{} // partition -> its place in cp.Offsets
	for _, u := range p.units[sp.lo:sp.hi] {
		b.Writes = append(b.Writes, u.writes...)
		if u.dead != nil {
			b.DeadLetters = append(b.DeadLetters, *u.dead)
		}
		tp := topicPartition{u.rec.Topic, u.rec.Partition}
		if i, ok := at[tp]; ok {
			cp.Offsets[i].Next = u.rec.Offset + 1
			continue
		}
		at[tp] = len(cp.Offsets)
		cp.Offsets = append(cp.Offsets, sink.Offset{Topic: u.rec.Topic, Partition: u.rec.Partition, From: u.rec.Offset, Next: u.rec.Offset + 1})
	}
	return b, cp
}

// write applies a prepared batch with its offsets, retrying while the
// target fails for its own sake (the mapping is paused meanwhile) until it
// works or the target fences it off.
//
// A batch the target rejects for a row's values (sink.Rejected) fails the
// same way however often it is retried, so it is split instead: each half
// is applied on its own, in order, each in one transaction with the
// offsets of its records (so they stay exactly-once: a half committed is
// never applied again, and the fence refuses it if it were), and a half
// that is rejected too is split again, down to the one change at fault.
// That change is dead-lettered (reject) and the rest of the batch goes on.
// A batch with one bad row in n costs about 2·log2(n) transactions more.
func (a *Applier) write(ctx context.Context, p *prepared) error {
	a.writing.Store(true)
	defer a.writing.Store(false)
	todo := []span{{0, len(p.units)}}
	for len(todo) > 0 {
		sp := todo[0]
		todo = todo[1:]
		rejected, err := a.apply(ctx, p, sp)
		switch {
		case err != nil:
			return err
		case rejected == nil:
		case sp.hi-sp.lo > 1:
			mid := (sp.lo + sp.hi) / 2
			todo = append([]span{{sp.lo, mid}, {mid, sp.hi}}, todo...)
			continue
		default:
			if err := a.reject(ctx, p, sp.lo, rejected); err != nil {
				return err
			}
		}
		a.done(p, sp)
	}
	return nil
}

// apply writes the units of sp with their offsets, retrying until it works
// (nil, nil), the target rejects a row's values (the rejection, nil: nothing
// was written) or ctx ends or the target fences it off (nil, the error).
func (a *Applier) apply(ctx context.Context, p *prepared, sp span) (rejected, err error) {
	b, cp := a.batch(p, sp)
	err = a.retry(ctx, "apply batch", func() error {
		rejected = nil
		if !p.newest.IsZero() {
			a.setLag(time.Since(p.newest).Seconds()) // grows while the batch waits
		}
		start := time.Now()
		err := a.bounded(ctx, func(ctx context.Context) error { return a.sink.Apply(ctx, b, cp) })
		if sink.Rejected(err) {
			rejected = err
			return nil // not to wait out: write splits the batch
		}
		if err == nil {
			a.metrics.Batches.WithLabelValues(a.name).Observe(time.Since(start).Seconds())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if rejected != nil {
		table, reason := sink.Classify(rejected)
		a.metrics.Errors.WithLabelValues(cmp.Or(table, a.mapping.From.String()), string(reason)).Inc()
	}
	return rejected, nil
}

// reject makes a dead letter of the change of p.units[i], which the target
// refused for its values (cause): produced to the dead-letter topic with
// the database's error and the row's keys, then stored in the target with
// the change's offset instead of its writes, so the mapping goes on.
//
// Later changes of the same key are applied as they come: each write
// carries every column its mapping writes (the whole new row of the
// source, not a difference to the one refused), so the target row becomes
// what the later change says, as it would had the refused one been
// applied; until then the row is stale, which reconcile reports, and
// `tandem dlq replay` re-syncs it from the source's current row. Holding
// back the key's later changes instead would freeze the row even once the
// source fixed the value, and would need a durable per-key block. Within
// one batch a later change of the key is merged over the refused one
// (sqlbatch.Compact), so a value fixed in the same batch is no dead letter.
func (a *Applier) reject(ctx context.Context, p *prepared, i int, cause error) error {
	u := &p.units[i]
	err := fmt.Errorf("the target refused the change of source key %s (%s): %w", u.rec.Key, targetKeys(u.writes), cause)
	rec := a.dlq.Record(a.name, sink.DeadLetterRejected, err, u.rec)
	if err := a.retry(ctx, "write dead letters", func() error { return a.dlq.Produce(ctx, []*kgo.Record{rec}) }); err != nil {
		return err
	}
	a.metrics.DLQ.WithLabelValues(a.name, sink.DeadLetterRejected).Inc()
	a.log.Warn("change refused by the target sent to the dead-letter topic", "mapping", a.name,
		"topic", a.dlq.Topic(), "partition", u.rec.Partition, "offset", u.rec.Offset, "err", err)
	dl := kafka.StoredDeadLetter(a.name, sink.DeadLetterRejected, err, u.rec)
	u.writes, u.dead, u.key = nil, &dl, nil
	b, cp := a.batch(p, span{i, i + 1})
	return a.retry(ctx, "store a dead letter", func() error {
		return a.bounded(ctx, func(ctx context.Context) error { return a.sink.Apply(ctx, b, cp) })
	})
}

// targetKeys names the target rows writes write: "table key [..]", comma-separated.
func targetKeys(writes []change.Write) string {
	names := make([]string, len(writes))
	for i, w := range writes {
		names[i] = w.Table + " key " + change.KeyText(w.Key, w.Row)
	}
	return strings.Join(names, ", ")
}

// done accounts for the units of sp once they are committed: rows counted,
// lag set, offsets and re-verification keys handed on.
func (a *Applier) done(p *prepared, sp span) {
	type tableOp struct {
		table string
		op    change.WriteOp
	}
	counts := map[tableOp]int{}
	var keys []change.Row
	for _, u := range p.units[sp.lo:sp.hi] {
		for _, w := range u.writes {
			counts[tableOp{w.Table, w.Op}]++
		}
		if u.key != nil {
			keys = append(keys, u.key)
		}
	}
	for k, n := range counts {
		a.metrics.Rows.WithLabelValues(k.table, k.op.String()).Add(float64(n))
	}
	if !p.newest.IsZero() {
		a.setLag(time.Since(p.newest).Seconds())
	}
	_, cp := a.batch(p, sp)
	for _, o := range cp.Offsets {
		a.committed(a.group, o.Topic, o.Partition, o.Next)
	}
	if a.applied != nil && len(keys) > 0 {
		a.applied(a.name, keys)
	}
}

// maxRetryWait is the longest a paused mapping waits between attempts:
// it resumes within about that long (±50%) of its cause being fixed (a
// table created, a column added or widened, a permission granted). An
// attempt that still fails costs little: the missing table or column is
// found before any row is sent, a lost connection before the batch is.
const maxRetryWait = 2 * time.Second

// retry runs fn until it succeeds or ctx ends. While it fails the mapping is
// paused: tandem_mapping_paused is 1, its failures are summarised
// (repeat.Log: each cause once, with a count), and attempts back off
// (poll.Backoff, at most maxRetryWait apart). Before each new attempt the
// sink forgets the tables it described, so it sees the target as it is now.
func (a *Applier) retry(ctx context.Context, what string, fn func() error) error {
	backoff := poll.NewBackoff()
	backoff.MaxInterval = maxRetryWait
	failures := repeat.New(a.log, "mapping paused: "+what+" failed; retrying")
	for attempt := 0; ; attempt++ {
		err := fn()
		if errors.Is(err, sink.ErrFenced) {
			// Not a failure to wait out: the batch must be dropped. An
			// earlier attempt that timed out may have committed after
			// all (its offsets are what fenced this one): the pause ends.
			if attempt > 0 {
				a.setPaused(false)
				failures.OK("mapping", a.name, "after_attempts", attempt, "outcome", "fenced: the batch is read again")
			}
			return err
		}
		if err == nil {
			if attempt > 0 {
				a.setPaused(false)
				failures.OK("mapping", a.name, "after_attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		table, reason := sink.Classify(err)
		if table == "" {
			table = a.mapping.From.String()
		}
		a.metrics.Errors.WithLabelValues(table, string(reason)).Inc()
		a.setPaused(true)
		failures.Fail(err, "mapping", a.name, "reason", reason, "target", a.target)
		a.sink.Forget()
		if err := poll.Sleep(ctx, backoff.NextBackOff()); err != nil {
			return err
		}
	}
}
