package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Applier consumes one mapping's topic in its own consumer group, so a
// mapping that fails (its target table missing, a permission error) retries
// on its own while the others go on.
type Applier struct {
	mapping   *transform.Mapping
	topic     string
	group     string
	epoch     string
	seeds     []string
	clientOpt []kgo.Opt
	sink      Sink
	dlq       *kafka.DLQ
	metrics   *Metrics
	log       *slog.Logger
	committed func(group, topic string, partition int32, next int64)
	applied   func(mapping string, keys []change.Row)
	maxPoll   int
	joined    atomic.Bool
	writing   atomic.Bool // a batch is being written (or retried)
	guard     *schemaGuard
	lagMillis atomic.Int64 // the lag last set, owned here; the gauge mirrors it
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
	Mapping    *transform.Mapping
	Topic      string   // the mapping's source table's topic
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
}

// New returns an Applier of cfg.
func New(cfg Config) *Applier {
	a := &Applier{mapping: cfg.Mapping, topic: cfg.Topic, group: cfg.Group, epoch: cfg.Epoch, seeds: cfg.Seeds,
		clientOpt: cfg.ClientOpts, sink: cfg.Sink, dlq: cfg.DLQ, metrics: cfg.Metrics, log: cfg.Log,
		committed: cfg.Committed, applied: cfg.Applied, maxPoll: cfg.MaxPoll, guard: newSchemaGuard(cfg.Mapping)}
	if a.maxPoll <= 0 {
		a.maxPoll = 10_000
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.committed == nil {
		a.committed = func(string, string, int32, int64) {}
	}
	return a
}

// Mapping is the name of the mapping the Applier applies.
func (a *Applier) Mapping() string { return a.mapping.Name }

// Joined reports whether the consumer has been assigned its partitions.
func (a *Applier) Joined() bool { return a.joined.Load() }

// Lag is tandem_replication_lag_seconds of the mapping, as last set.
func (a *Applier) Lag() time.Duration {
	return time.Duration(a.lagMillis.Load()) * time.Millisecond
}

// setLag sets the mapping's lag, in seconds (negative: 0), in the Applier
// and its gauge.
func (a *Applier) setLag(seconds float64) {
	seconds = max(0, seconds)
	a.lagMillis.Store(int64(seconds * 1000))
	a.metrics.Lag.WithLabelValues(a.mapping.Name).Set(seconds)
}

// Run consumes until ctx ends. Two stages overlap: one goroutine polls,
// decodes and transforms the next records while the other writes the
// previous batch to the target. A batch fenced off by the target (a
// rebalance moved its partition while it was in flight) is dropped, and
// consumption restarts from the offsets stored in the target.
func (a *Applier) Run(ctx context.Context) error {
	a.metrics.Paused.WithLabelValues(a.mapping.Name).Set(0)
	for {
		err := a.consume(ctx)
		if !errors.Is(err, sink.ErrFenced) {
			return err
		}
		a.log.Warn("batch fenced off by offsets stored by another consumer; resuming from the stored offsets", "mapping", a.mapping.Name)
	}
}

func (a *Applier) consume(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(a.seeds...),
		kgo.ConsumerGroup(a.group),
		kgo.ConsumeTopics(a.topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		// Wide rows (a multi-megabyte text) must not stall a partition:
		// fetch up to 32 MiB per partition (Kafka's record limit applies).
		kgo.FetchMaxPartitionBytes(32 << 20), kgo.FetchMaxBytes(64 << 20),
		kgo.AdjustFetchOffsetsFn(a.storedOffsets),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { a.joined.Store(true) }),
	}, a.clientOpt...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("mapping %s: create consumer: %w", a.mapping.Name, err)
	}
	defer cl.Close()
	g, gctx := errgroup.WithContext(ctx)
	ready := make(chan *prepared, 1)
	g.Go(func() error {
		defer close(ready)
		return a.poll(gctx, cl, ready)
	})
	g.Go(func() error {
		for p := range ready {
			if err := a.write(gctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	return g.Wait()
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
				a.log.Warn("fetch error", "mapping", a.mapping.Name, "topic", t, "partition", p, "err", err)
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
	a.metrics.Paused.WithLabelValues(a.mapping.Name).Set(1)
	a.metrics.Errors.WithLabelValues(stop.Table, "schema_changed").Inc()
	a.log.Error("mapping stopped: source schema changed", "mapping", a.mapping.Name, "table", stop.Table, "column", stop.Column, "err", stop)
	<-ctx.Done()
	return ctx.Err()
}

// storedOffsets starts each assigned partition where the target says this
// group stands in this cluster, or at the start of the topic.
func (a *Applier) storedOffsets(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var stored []sink.Offset
	err := a.retry(ctx, "read stored offsets", func() error {
		var err error
		stored, err = a.sink.Offsets(ctx, a.group, a.epoch)
		return err
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

// prepared is a polled batch, transformed, ready to write.
type prepared struct {
	writes []change.Write
	keys   []change.Row      // source keys of the stream's inserts and updates, for re-verification
	dead   []sink.DeadLetter // stored in the target with the batch
	cp     sink.Checkpoint
	newest time.Time
}

// prepare transforms the records once and sends poison ones to the
// dead-letter topic (retrying that until it works). A change that a schema
// change makes unsafe to transform ends the batch before it; stop says why.
func (a *Applier) prepare(ctx context.Context, recs []*kgo.Record) (p *prepared, stop *schemaChangeError, err error) {
	var (
		dead   []*kgo.Record
		ranges = map[topicPartition]*sink.Offset{}
	)
	p = &prepared{cp: sink.Checkpoint{Group: a.group, Epoch: a.epoch}}
	for _, r := range recs {
		var ev *change.Event
		var err error
		tombstone := r.Value == nil // after a delete, for log compaction: nothing to apply
		if !tombstone {
			ev, err = change.Decode(nil, r.Value)
		}
		if err == nil && !tombstone && a.guard != nil {
			if err := a.guard.check(ev); err != nil {
				stop = err.(*schemaChangeError)
				break
			}
		}
		tp := topicPartition{r.Topic, r.Partition}
		if o, ok := ranges[tp]; ok {
			o.Next = r.Offset + 1
		} else {
			ranges[tp] = &sink.Offset{Topic: r.Topic, Partition: r.Partition, From: r.Offset, Next: r.Offset + 1}
		}
		if tombstone {
			continue
		}
		if err != nil {
			dead = append(dead, a.dlq.Record(a.mapping.Name, "decode", err, r))
			p.dead = append(p.dead, kafka.StoredDeadLetter(a.mapping.Name, "decode", err, r))
			continue
		}
		if ev.Commit.After(p.newest) {
			p.newest = ev.Commit
		}
		ws, reason, err := transform.Writes(ctx, a.mapping, ev)
		if errors.Is(err, transform.ErrLookupUnavailable) {
			// A lookup the target could not answer is the target's trouble,
			// not the change's: retry it (the mapping shows paused) instead
			// of sending the change to the dead-letter topic.
			if rerr := a.retry(ctx, "look up target rows", func() error {
				ws, reason, err = transform.Writes(ctx, a.mapping, ev)
				if errors.Is(err, transform.ErrLookupUnavailable) {
					return err
				}
				return nil
			}); rerr != nil {
				return nil, nil, rerr
			}
		}
		if err != nil {
			dead = append(dead, a.dlq.Record(a.mapping.Name, reason, err, r))
			p.dead = append(p.dead, kafka.StoredDeadLetter(a.mapping.Name, reason, err, r))
			continue
		}
		p.writes = append(p.writes, ws...)
		if a.applied != nil && (ev.Op == change.OpCreate || ev.Op == change.OpUpdate) {
			p.keys = append(p.keys, ev.After) // the records carry no key names: Verify picks the key
		}
	}
	for _, o := range ranges {
		p.cp.Offsets = append(p.cp.Offsets, *o)
	}
	if len(dead) > 0 {
		if err := a.retry(ctx, "write dead letters", func() error { return a.dlq.Produce(ctx, dead) }); err != nil {
			return nil, nil, err
		}
		for _, d := range dead {
			a.metrics.DLQ.WithLabelValues(a.mapping.Name, string(d.Headers[0].Value)).Inc()
		}
		a.log.Warn("changes sent to the dead-letter topic", "mapping", a.mapping.Name, "count", len(dead), "topic", a.dlq.Topic())
	}
	return p, stop, nil
}

// write applies a prepared batch with its offsets, retrying until it works
// (the mapping is paused meanwhile) or the target fences it off.
func (a *Applier) write(ctx context.Context, p *prepared) error {
	a.writing.Store(true)
	defer a.writing.Store(false)
	err := a.retry(ctx, "apply batch", func() error {
		if !p.newest.IsZero() {
			a.setLag(time.Since(p.newest).Seconds()) // grows while the batch waits
		}
		start := time.Now()
		err := a.sink.Apply(ctx, sink.Batch{Writes: p.writes, DeadLetters: p.dead}, p.cp)
		if err == nil {
			a.metrics.Batches.WithLabelValues(a.mapping.Name).Observe(time.Since(start).Seconds())
		}
		return err
	})
	if err != nil {
		return err
	}
	type tableOp struct {
		table string
		op    change.WriteOp
	}
	counts := map[tableOp]int{}
	for _, w := range p.writes {
		counts[tableOp{w.Table, w.Op}]++
	}
	for k, n := range counts {
		a.metrics.Rows.WithLabelValues(k.table, k.op.String()).Add(float64(n))
	}
	if !p.newest.IsZero() {
		a.setLag(time.Since(p.newest).Seconds())
	}
	for _, o := range p.cp.Offsets {
		a.committed(a.group, o.Topic, o.Partition, o.Next)
	}
	if a.applied != nil && len(p.keys) > 0 {
		a.applied(a.mapping.Name, p.keys)
	}
	return nil
}

// retry runs fn until it succeeds or ctx ends. While it fails the mapping is
// paused: tandem_mapping_paused is 1, each distinct error is logged once, and
// attempts back off (poll.Backoff).
func (a *Applier) retry(ctx context.Context, what string, fn func() error) error {
	paused := a.metrics.Paused.WithLabelValues(a.mapping.Name)
	backoff := poll.NewBackoff()
	lastMsg := ""
	for attempt := 0; ; attempt++ {
		err := fn()
		if errors.Is(err, sink.ErrFenced) {
			return err // not a failure to wait out: the batch must be dropped
		}
		if err == nil {
			if attempt > 0 {
				paused.Set(0)
				a.log.Info("mapping resumed", "mapping", a.mapping.Name, "after_attempts", attempt)
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
		paused.Set(1)
		if msg := err.Error(); msg != lastMsg {
			a.log.Error("mapping paused: "+what+" failed; retrying", "mapping", a.mapping.Name, "reason", reason, "err", err)
			lastMsg = msg
		}
		a.sink.Forget()
		if err := poll.Sleep(ctx, backoff.NextBackOff()); err != nil {
			return err
		}
	}
}
