// Package apply is the consumer loop of one mapping: it polls the mapping's
// source-table topic in a consumer group of its own, decodes and transforms
// each record (transform.Writes), and writes the batch with its Kafka
// offsets to the target in one transaction (the Sink contract), so a
// change is applied exactly as often as its offset says.
//
// Where a mapping pauses and resumes: Applier.retry. A batch the target
// refuses for its own sake (a missing table or column, a lost connection,
// a permission, a unique or foreign-key violation, a lookup the target
// cannot answer) is retried with backoff, at most maxRetryWait apart,
// while tandem_mapping_paused is 1; the first attempt that succeeds
// resumes the mapping and logs it, so a mapping resumes within seconds of
// its cause being fixed, without a restart. A batch fenced off by another
// consumer (sink.ErrFenced) is dropped and consumption restarts from the
// stored offsets. A source schema change under a column the mapping reads
// stops the mapping for good (the schema guard) until it is restarted with
// a mapping that fits.
//
// What becomes a dead letter (internal/kafka's DLQ and the target's
// dead-letter store, committed with the change's offset), not a stall: a
// record that cannot be decoded or transformed, and a change the target
// refuses for its values (sink.Rejected: too long, out of range, NULL into
// NOT NULL, a CHECK), found by splitting its batch (Applier.write, which
// also says why later changes of the key still apply: Applier.reject).
package apply
