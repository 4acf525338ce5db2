package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tandemcdc/tandem/sink"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ sends poison changes to <prefix>.dlq with the error and the original record.
type DLQ struct {
	client *kgo.Client
	topic  string
}

// NewDLQ writes dead letters to topic through client.
func NewDLQ(client *kgo.Client, topic string) *DLQ { return &DLQ{client: client, topic: topic} }

// Topic is the dead-letter topic.
func (d *DLQ) Topic() string { return d.topic }

// deadLetter is the value of a dead-letter record.
type deadLetter struct {
	Mapping   string          `json:"mapping"`
	Reason    string          `json:"reason"`
	Error     string          `json:"error"`
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	TsMs      int64           `json:"ts_ms"`
}

// Record is the dead-letter record of r, which mapping failed on for
// reason with err: the original key, and a JSON value with both.
func (d *DLQ) Record(mapping, reason string, err error, r *kgo.Record) *kgo.Record {
	v, _ := json.Marshal(deadLetter{
		Mapping: mapping, Reason: reason, Error: err.Error(), Topic: r.Topic, Partition: r.Partition,
		Offset: r.Offset, Key: rawOrString(r.Key), Value: rawOrString(r.Value), TsMs: time.Now().UnixMilli(),
	})
	return &kgo.Record{Topic: d.topic, Key: r.Key, Value: v, Headers: []kgo.RecordHeader{
		{Key: "tandem.reason", Value: []byte(reason)}, {Key: "tandem.mapping", Value: []byte(mapping)},
	}}
}

func rawOrString(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

// Produce writes recs to the dead-letter topic and waits until they are
// acknowledged. Blocks; safe for concurrent use.
func (d *DLQ) Produce(ctx context.Context, recs []*kgo.Record) error {
	if err := d.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", d.topic, err)
	}
	return nil
}

// StoredDeadLetter is the dead letter the target keeps with the batch:
// the record r that mapping failed on for reason with err.
func StoredDeadLetter(mapping, reason string, err error, r *kgo.Record) sink.DeadLetter {
	return sink.DeadLetter{Mapping: mapping, Reason: reason, Error: err.Error(), Topic: r.Topic,
		Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value}
}
