// Package apply is the consumer loop of one mapping: it polls the mapping's
// source-table topic in a consumer group of its own, decodes and transforms
// each record (transform.Writes), and writes the batch with its Kafka
// offsets to the target in one transaction (the Sink contract), so a
// change is applied exactly as often as its offset says.
//
// Where a mapping pauses and resumes: Applier.retry. A batch the target
// refuses (a missing table, a lost connection, a lookup the target cannot
// answer) is retried with backoff (poll.Backoff) while tandem_mapping_paused
// is 1; the first attempt that succeeds resumes the mapping and logs it.
// A batch fenced off by another consumer (sink.ErrFenced) is dropped and
// consumption restarts from the stored offsets. A source schema change
// under a column the mapping reads stops the mapping for good (the schema
// guard) until it is restarted with a mapping that fits. A record that
// cannot be decoded or transformed is a dead letter (internal/kafka's DLQ
// and the target's dead-letter store), not a stall.
package apply
