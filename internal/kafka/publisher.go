package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/repeat"
)

// Publisher streams source changes into Kafka and acknowledges source
// positions as the tracker finds them durable.
type Publisher struct {
	src       capture.Source
	enc       *change.Encoder
	prefix    string
	client    *kgo.Client
	tracker   *Tracker
	log       *slog.Logger
	fail      func(error) // stops the pipeline: a produce failed for good
	stops     *repeat.Log // the stream's failures, logged once per cause
	standby   bool
	onStandby func(bool)
	maxRecord int // kafka.max_record_bytes
}

// PublisherConfig is what a Publisher needs: the source, how its changes
// are encoded and where they go, and how a durable position is tracked.
type PublisherConfig struct {
	Source  capture.Source
	Encoder *change.Encoder
	Prefix  string // topic prefix: a table's topic is Topic(Prefix, table)
	Client  *kgo.Client
	Tracker *Tracker
	Log     *slog.Logger
	Fail    func(error) // called when a produce fails for good; stops the process
	// Standby makes a source held by another live reader
	// (capture.ErrSourceTaken: a second `tandem capture` of the same slot
	// or lease) a wait instead of the end of Run: the publisher tries
	// again every StandbyRetry, streaming reporting false, and takes over
	// as soon as the holder is gone. The slot or lease is the fence: the
	// source admits one reader at a time, so two publishers never read,
	// and produce, at once.
	Standby bool
	// OnStandby, if set, is told when the publisher starts waiting as a
	// standby (true) and when it takes over (false).
	OnStandby func(bool)
	// MaxRecordBytes is kafka.max_record_bytes (0: its default): a change
	// whose record would be larger is replaced by a marker (see emit).
	MaxRecordBytes int
}

// StandbyRetry is how often a standby publisher tries to take the source
// over: the most a takeover waits once the holder is gone, beyond
// connecting (a MySQL lease is waited on, so it is taken at once).
const StandbyRetry = 250 * time.Millisecond

// NewPublisher returns a Publisher of cfg.
func NewPublisher(cfg PublisherConfig) *Publisher {
	p := &Publisher{src: cfg.Source, enc: cfg.Encoder, prefix: cfg.Prefix, client: cfg.Client, tracker: cfg.Tracker, log: cfg.Log, fail: cfg.Fail,
		stops: repeat.New(cfg.Log, "capture stopped; reconnecting"), standby: cfg.Standby, onStandby: cfg.OnStandby,
		maxRecord: cmp.Or(cfg.MaxRecordBytes, config.DefaultMaxRecordBytes)}
	if p.onStandby == nil {
		p.onStandby = func(bool) {}
	}
	return p
}

// Run streams until ctx ends. A lost connection or a server restart is
// retried with backoff (poll.Backoff, reset after a minute of streaming),
// each distinct failure logged once with its count (repeat.Log) and an
// orderly server shutdown at Info; the slot (or the saved binlog position) replays whatever was not acknowledged, and replayed
// records are harmless downstream. streaming reports the state to /readyz.
// A Standby publisher waits while another reader holds the source, logged
// once, and logs its takeover; streaming then becomes true only once the
// source says it holds the stream (capture.Starter).
func (c *Publisher) Run(ctx context.Context, streaming func(bool)) error {
	backoff := poll.NewBackoff()
	var waiting time.Time // when this publisher became a standby; zero: it is not one
	if st, ok := c.src.(capture.Starter); ok {
		st.OnStart(func() { // called by Stream, on this goroutine
			streaming(true)
			if !waiting.IsZero() {
				c.onStandby(false)
				c.log.Info("took over the source: this capture is now the active one", "standby_for", time.Since(waiting).Round(time.Millisecond))
				waiting = time.Time{}
			}
		})
	}
	for {
		started := time.Now()
		if waiting.IsZero() {
			streaming(true)
		}
		err := c.src.Stream(ctx, c.emit)
		streaming(false)
		if time.Since(started) > time.Minute {
			c.stops.OK() // it streamed a while: what failed before is over
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.standby && errors.Is(err, capture.ErrSourceTaken) {
			if waiting.IsZero() {
				waiting = time.Now()
				c.onStandby(true)
				c.log.Info("another capture holds the source; waiting as its standby", "reason", err, "retry_every", StandbyRetry)
			}
			backoff.Reset()
			if err := poll.Sleep(ctx, StandbyRetry); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, capture.ErrPositionLost) || errors.Is(err, capture.ErrSourceTaken) {
			return err // retrying cannot help
		}
		if time.Since(started) > time.Minute {
			backoff.Reset()
		}
		wait := backoff.NextBackOff()
		if errors.Is(err, capture.ErrServerShutdown) {
			c.log.Info("the source server is shutting down; reconnecting", "err", err, "retry_in", wait)
		} else {
			c.stops.Fail(err, "retry_in", wait)
		}
		if err := poll.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// emit produces one batch asynchronously; kgo's buffer limit provides
// backpressure, and with the embedded broker the tracker's MaxHeld. Records of one key go to one partition (key hash), in order.
// With Encoder.Tombstones a delete is followed by a tombstone: its key and
// a null value, which lets log compaction drop the key.
//
// A change whose record would exceed kafka.max_record_bytes is not
// produced: a marker (change.Encoder.Marker) takes its place, in order,
// under its key, and the apply side dead-letters it, so the rest of the
// transaction and the stream go on (see oversize.go for a record the
// broker refuses).
func (c *Publisher) emit(ctx context.Context, b change.Batch) error {
	records := len(b.Events)
	if c.enc.Tombstones {
		for i := range b.Events {
			if b.Events[i].Op == change.OpDelete {
				records++
			}
		}
	}
	if err := c.tracker.room(ctx); err != nil {
		return err
	}
	tb := c.tracker.begin(b.Pos, records)
	for i := range b.Events {
		ev := &b.Events[i]
		key, err := c.enc.Key(ev)
		if err != nil {
			return err
		}
		val, err := c.enc.Value(ev)
		if err != nil {
			return err
		}
		rec := &kgo.Record{Topic: Topic(c.prefix, ev.Table), Key: key, Value: val}
		if n := RecordSize(rec); n > c.maxRecord {
			reason := fmt.Sprintf("record of %s bytes exceeds kafka.max_record_bytes %s", digits(n), digits(c.maxRecord))
			if rec, err = c.marker(ev, rec, reason); err != nil {
				return err
			}
		}
		c.produce(ctx, tb, ev.Table, rec)
		if ev.Op == change.OpDelete && c.enc.Tombstones {
			c.produce(ctx, tb, ev.Table, &kgo.Record{Topic: Topic(c.prefix, ev.Table), Key: key})
		}
	}
	c.tracker.seal(tb)
	return ctx.Err()
}

// produce sends one record of batch tb; the tracker counts it durable once
// the broker has it. A record the broker or the client refuses for its
// size is replaced (replace); any other failure stops the process.
func (c *Publisher) produce(ctx context.Context, tb *trackedBatch, table change.Table, rec *kgo.Record) {
	c.client.Produce(ctx, rec, func(r *kgo.Record, err error) {
		switch {
		case err == nil:
			c.tracker.produced(tb, r.Topic, r.Partition, r.Offset, len(r.Key)+len(r.Value))
		case ctx.Err() != nil:
			// Stopping: the batch stays pending, so its position is not
			// acknowledged and the source sends it again.
		case errors.Is(err, kerr.MessageTooLarge) && !isMarker(r):
			go c.replace(ctx, tb, r, err) // not from kgo's promise goroutine: Produce may block
		default:
			c.fail(fmt.Errorf("produce change of %s to %s: %w", table, r.Topic, err))
		}
	})
}
