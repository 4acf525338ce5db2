package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tandemcdc/tandem/internal/change"
)

// A change too large for Kafka never stops the stream. Two places find one:
//
//   - emit, before producing: a record over kafka.max_record_bytes is
//     replaced by its marker at once, in its place;
//   - the produce callback, when the broker refuses a record for its size
//     (MESSAGE_TOO_LARGE: a topic's max.message.bytes below ours; a batch
//     of several records refused whole has each replaced): replace
//     produces the marker then.
//
// Either way the marker counts as the change's record in its batch: the
// tracker holds the batch's source position back until the marker is
// durable, so a crash before then makes the source send the change again,
// and nothing is skipped unseen. The marker of a refused record lands
// after records produced meanwhile, possibly later changes of the same
// row; that is safe because a marker writes nothing: it is dead-lettered,
// and `tandem dlq replay` re-reads the row's current state. A refused
// record is never produced again as it is: arriving after a later change
// of its row it would roll the row back.

// marker returns the record that stands in for rec, the record of ev that
// is too large, for reason; an error when even the marker is over the
// limit (a key that large).
func (c *Publisher) marker(ev *change.Event, rec *kgo.Record, reason string) (*kgo.Record, error) {
	v, err := c.enc.Marker(ev, reason)
	if err != nil {
		return nil, fmt.Errorf("the change of %s key %s is too large for kafka (%s), and cannot be replaced by a marker: %w", ev.Table, rec.Key, reason, err)
	}
	m := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: v, Headers: []kgo.RecordHeader{{Key: change.OversizeHeader, Value: []byte(reason)}}}
	if n := RecordSize(m); n > c.maxRecord {
		return nil, fmt.Errorf("the change of %s is too large for kafka (%s), and so is its marker (%s bytes, its key %s bytes): raise kafka.max_record_bytes above %s",
			ev.Table, reason, digits(n), digits(len(rec.Key)), digits(n))
	}
	c.log.Warn("change too large for kafka: a marker in its place is dead-lettered in the target; `tandem dlq replay` re-syncs the row from the source once it fits",
		"table", ev.Table.String(), "key", string(rec.Key), "reason", reason)
	return m, nil
}

// replace produces the marker of r, a record of batch tb that Kafka
// refused with cause for its size. A tombstone has none to produce (it
// is a compaction hint, nothing to apply): it is dropped and said.
func (c *Publisher) replace(ctx context.Context, tb *trackedBatch, r *kgo.Record, cause error) {
	if r.Value == nil {
		c.log.Warn("kafka refused a tombstone for its size; dropped: log compaction keeps the key's last change", "topic", r.Topic, "key", string(r.Key), "err", cause)
		c.tracker.skipped(tb)
		return
	}
	ev, err := change.Decode(r.Key, r.Value)
	if err != nil {
		c.fail(fmt.Errorf("kafka refused a record of %s for its size (%w), and it does not decode to make its marker: %v", r.Topic, cause, err))
		return
	}
	reason := fmt.Sprintf("kafka refused the record of %s bytes: %v (the topic's max.message.bytes must be kafka.max_record_bytes %s plus %d at least)",
		digits(RecordSize(r)), cause, digits(c.maxRecord), RecordOverhead)
	m, err := c.marker(ev, r, reason)
	if err != nil {
		c.fail(err)
		return
	}
	c.produce(ctx, tb, ev.Table, m)
}

// isMarker reports whether r is a marker.
func isMarker(r *kgo.Record) bool {
	return slices.ContainsFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == change.OversizeHeader })
}

// digits writes n with thousands separators: 52,428,912.
func digits(n int) string {
	s := strconv.Itoa(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3+1)
	if neg {
		out = append(out, '-')
	}
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// ReasonOversize is the dead-letter reason of a marker, the reason label of
// tandem_dlq_events_total.
const ReasonOversize = "oversize"

// ErrOversize is wrapped by the dead-letter error of a marker.
var ErrOversize = errors.New("the change was too large for kafka and is not in the stream")

// OversizeError is the dead-letter error of ev, a decoded marker: what
// it stands in for, why, and how the row gets to the target.
func OversizeError(ev *change.Event) error {
	return fmt.Errorf("%w: the %s of a row of %s: %s; `tandem dlq replay` re-syncs the row from the source once it fits (raise kafka.max_record_bytes, or once the row is smaller)",
		ErrOversize, ev.Op.Name(), ev.Table, ev.Oversize)
}
