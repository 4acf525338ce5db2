// Package kafka is the Kafka side of tandem: topic naming (one topic per
// source table, a dead-letter topic), the Publisher that streams a
// capturer's changes into the topics, the Tracker that decides when a source
// position may be acknowledged, the Trimmer that frees the embedded broker's
// applied records, the DLQ writer, the embedded in-process broker used when
// no brokers are configured, topic creation and the cluster identity that
// scopes stored offsets. A change too large for a record is produced as a
// marker in its place (oversize.go says how, and why that loses nothing).
//
// Where the source position is acknowledged, and why then: Tracker (see its
// doc). A position is acknowledged only once every record of every batch up
// to it is durable: acknowledged by an external cluster, or, with the
// embedded broker whose records die with the process, committed past by
// every consumer group that reads its topic, in the target.
package kafka
