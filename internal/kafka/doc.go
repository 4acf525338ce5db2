// Package kafka holds what tandem needs of Kafka beyond franz-go itself:
// topic naming (one topic per source table, a dead-letter topic), the
// embedded in-process broker used when no brokers are configured, client
// options, topic creation and the cluster identity that scopes stored offsets.
package kafka
