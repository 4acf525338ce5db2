// Package sink holds the contract every target writer implements (Sink),
// the batch it applies (change.Write values and dead letters) and the Kafka
// offsets it stores beside them (Checkpoint), with the sink's other
// capabilities: dead letters (DeadLetterStore), backfill progress and
// tombstones (BackfillStore), and verbatim copies (TextCopier).
// Implementations live in sink/postgres and sink/mysql; they apply a batch
// and its checkpoint in one transaction, so a change is applied exactly as
// often as its offset says, and applying a change twice leaves the target
// as applying it once. Their shared SQL helpers are in sink/internal/sqlbatch.
// A failed Apply says whether the table or connection is at fault (the
// caller waits and retries) or a row's values (Rejected: the caller sets
// that row's change aside as a dead letter and writes the rest).
//
// Where a delete writes a tombstone: each implementation's Apply, in the
// same transaction as the delete, while a backfill is active (see
// BackfillStore; the protocol is written once in package backfill).
package sink
