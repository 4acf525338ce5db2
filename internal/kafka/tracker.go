package kafka

import (
	"context"
	"sync"

	"github.com/tandemcdc/tandem/internal/change"
)

// Tracker decides which source position may be acknowledged: the end of the
// longest prefix of emitted batches whose every record is durable.
//
// A record is durable when Kafka has acknowledged it (external cluster), or,
// with the embedded broker whose data dies with the process, when every
// consumer group that reads its topic has committed past its offset in the
// target. Batches are acknowledged strictly in emit order, so a slow
// partition holds back the position of later, already durable batches: the
// source may replay them after a crash, never skip them.
//
// With the embedded broker, records wait in memory (the broker's) until
// they are durable: MaxHeld bounds them, in bytes, so that a transaction
// of any size, captured faster than it is applied, is held a window at a
// time instead of whole.
type Tracker struct {
	mu               sync.Mutex
	durableOnProduce bool
	readers          map[string][]string // topic -> groups that consume it (embedded mode)
	items            []*trackedBatch
	parts            map[topicPartition]*partitionState
	ack              func(change.Position)

	maxHeld int64         // bytes of records produced and not durable that room waits below; 0: no bound
	held    int64         // bytes of the records in the partitions' queues
	freed   chan struct{} // closed when held drops below maxHeld; nil: nobody waits
}

// TrackerOption configures a Tracker.
type TrackerOption func(*Tracker)

// MaxHeld bounds the bytes (keys and values) of the records produced to
// the embedded broker and not yet durable: once they reach n, the
// publisher waits before its next batch until appliers commit some of
// them. The bound is soft by one batch. n <= 0: no bound. It has no effect
// when records are durable once produced (an external cluster, whose
// producer buffer bounds them instead).
func MaxHeld(n int64) TrackerOption { return func(t *Tracker) { t.maxHeld = max(n, 0) } }

type trackedBatch struct {
	pos     change.Position // nil for all but a transaction's last batch
	pending int             // records produced but not durable yet
	sealed  bool            // every record of the batch has been handed to the producer
}

type topicPartition struct {
	topic     string
	partition int32
}

type partitionState struct {
	queue     []trackedRecord  // produced, not yet durable, in offset order
	committed map[string]int64 // group -> next offset committed in the target
	durable   int64            // every offset below is durable
}

type trackedRecord struct {
	offset int64
	size   int64 // bytes of key and value, counted in held
	batch  *trackedBatch
}

// NewTracker tracks batches for a capturer whose ack acknowledges a source
// position. durableOnProduce: a record is durable once Kafka acknowledged
// it (an external cluster); otherwise once every group of readers[topic]
// committed past it in the target (the embedded broker).
func NewTracker(durableOnProduce bool, readers map[string][]string, ack func(change.Position), opts ...TrackerOption) *Tracker {
	t := &Tracker{durableOnProduce: durableOnProduce, readers: readers, parts: map[topicPartition]*partitionState{}, ack: ack}
	for _, o := range opts {
		o(t)
	}
	return t
}

// room blocks while the records produced and not yet durable hold MaxHeld
// bytes or more, until appliers commit some of them or ctx ends (its
// error). Called before a batch is produced.
func (t *Tracker) room(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.maxHeld == 0 || t.held < t.maxHeld {
			t.mu.Unlock()
			return nil
		}
		if t.freed == nil {
			t.freed = make(chan struct{})
		}
		freed := t.freed
		t.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// begin registers a batch about to be produced.
func (t *Tracker) begin(pos change.Position, records int) *trackedBatch {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := &trackedBatch{pos: pos, pending: records}
	t.items = append(t.items, b)
	return b
}

// seal marks that every record of b has been handed to the producer.
func (t *Tracker) seal(b *trackedBatch) {
	t.mu.Lock()
	b.sealed = true
	pos := t.advance()
	t.mu.Unlock()
	t.report(pos)
}

// produced records that Kafka acknowledged a record of b of size bytes
// (key and value) at offset.
func (t *Tracker) produced(b *trackedBatch, topic string, partition int32, offset int64, size int) {
	t.mu.Lock()
	if t.durableOnProduce || len(t.readers[topic]) == 0 {
		b.pending--
	} else {
		ps := t.partition(topic, partition)
		if offset < ps.durable {
			b.pending--
		} else {
			ps.queue = append(ps.queue, trackedRecord{offset: offset, size: int64(size), batch: b})
			t.held += int64(size)
		}
	}
	pos := t.advance()
	t.mu.Unlock()
	t.report(pos)
}

// skipped records that a record of b will never be produced, and needs
// not be: a dropped tombstone.
func (t *Tracker) skipped(b *trackedBatch) {
	t.mu.Lock()
	b.pending--
	pos := t.advance()
	t.mu.Unlock()
	t.report(pos)
}

// Committed records that group stored next as its offset for the partition in the target.
func (t *Tracker) Committed(group, topic string, partition int32, next int64) {
	if t.durableOnProduce {
		return
	}
	t.mu.Lock()
	ps := t.partition(topic, partition)
	if next > ps.committed[group] {
		ps.committed[group] = next
	}
	durable := next
	for _, g := range t.readers[topic] {
		if c := ps.committed[g]; c < durable {
			durable = c
		}
	}
	if durable > ps.durable {
		ps.durable = durable
		i := 0
		for ; i < len(ps.queue) && ps.queue[i].offset < durable; i++ {
			ps.queue[i].batch.pending--
			t.held -= ps.queue[i].size
		}
		ps.queue = append(ps.queue[:0], ps.queue[i:]...)
		if t.freed != nil && t.held < t.maxHeld {
			close(t.freed)
			t.freed = nil
		}
	}
	pos := t.advance()
	t.mu.Unlock()
	t.report(pos)
}

func (t *Tracker) partition(topic string, partition int32) *partitionState {
	k := topicPartition{topic, partition}
	ps, ok := t.parts[k]
	if !ok {
		ps = &partitionState{committed: map[string]int64{}}
		t.parts[k] = ps
	}
	return ps
}

// advance pops the durable prefix and returns the last position in it, or nil.
func (t *Tracker) advance() change.Position {
	var pos change.Position
	i := 0
	for ; i < len(t.items) && t.items[i].sealed && t.items[i].pending == 0; i++ {
		if t.items[i].pos != nil {
			pos = t.items[i].pos
		}
	}
	if i > 0 {
		clear(t.items[:i])
		t.items = t.items[i:]
	}
	return pos
}

func (t *Tracker) report(pos change.Position) {
	if pos != nil {
		t.ack(pos)
	}
}

// inFlight returns how many batches are not yet durable.
func (t *Tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.items)
}
