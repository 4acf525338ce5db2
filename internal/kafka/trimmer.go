package kafka

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Trimmer frees the embedded broker's memory: it keeps every record it was
// given until DeleteRecords, so once every consumer group reading a topic
// has stored (in the target) offsets past some records, they are deleted.
// Nothing durable depends on them any more: the source was acknowledged
// for them and a restart replays from the target's offsets, which start
// after them. Without this a long run, or a backfill of millions of rows,
// holds everything it ever streamed.
type Trimmer struct {
	readers map[string][]string // topic -> groups reading it

	mu        sync.Mutex
	committed map[topicPartition]map[string]int64
	trimmed   map[topicPartition]int64
}

// NewTrimmer trims the topics of readers (topic -> the groups reading it).
func NewTrimmer(readers map[string][]string) *Trimmer {
	return &Trimmer{readers: readers, committed: map[topicPartition]map[string]int64{}, trimmed: map[topicPartition]int64{}}
}

// Commit records that group stored next for the partition.
func (t *Trimmer) Commit(group, topic string, partition int32, next int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := topicPartition{topic, partition}
	g := t.committed[tp]
	if g == nil {
		g = map[string]int64{}
		t.committed[tp] = g
	}
	g[group] = max(g[group], next)
}

// due returns, per topic and partition, the offset every reading group
// has passed, where it moved since the last trim.
func (t *Trimmer) due() map[string]map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]map[int32]int64{}
	for tp, groups := range t.committed {
		below := int64(-1)
		for _, g := range t.readers[tp.topic] {
			c, ok := groups[g]
			if !ok {
				below = -1
				break
			}
			if below < 0 || c < below {
				below = c
			}
		}
		if below <= t.trimmed[tp] {
			continue
		}
		if out[tp.topic] == nil {
			out[tp.topic] = map[int32]int64{}
		}
		out[tp.topic][tp.partition] = below
	}
	return out
}

func (t *Trimmer) done(trimmed map[string]map[int32]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, parts := range trimmed {
		for p, o := range parts {
			tp := topicPartition{topic, p}
			t.trimmed[tp] = max(t.trimmed[tp], o)
		}
	}
}

// Run trims every interval until ctx ends.
func (t *Trimmer) Run(ctx context.Context, cl *kgo.Client, every time.Duration, log *slog.Logger) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := t.due()
		if len(due) == 0 {
			continue
		}
		if err := Trim(ctx, cl, due); err != nil {
			if ctx.Err() == nil {
				log.Warn("free applied records from the embedded broker", "err", err)
			}
			continue
		}
		t.done(due)
	}
}
