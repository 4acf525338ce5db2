// Package change defines the change event every capturer emits and every
// applier consumes, and its Kafka encoding: a record key holding the source
// primary key and a Debezium-compatible JSON envelope as the value.
//
// It is a leaf: capturers (capture/...) produce Events, internal/kafka moves
// their encoded form, transform and the sinks read them back. Nothing else is
// shared between the capture side and the apply side.
package change
