// Package sink holds the contract every target writer implements (Sink),
// the target-row changes it applies (Write, Batch) and the Kafka offsets it
// stores beside them (Checkpoint). Implementations live in sink/postgres and
// sink/mysql; they apply a batch and its checkpoint in one transaction, so a
// change is applied exactly as often as its offset says, and applying a
// change twice leaves the target as applying it once.
package sink
