// Package postgres captures changes from PostgreSQL through logical
// replication with the built-in pgoutput plugin (protocol version 1).
//
// Setup creates (or reuses) the publication and the logical replication
// slot. Stream decodes Relation, Begin, Origin, Insert, Update, Delete,
// Truncate and Commit messages into change.Batches, one per transaction
// (of a transaction whose origin is skipped, Config.SkipOrigins, only its
// position), answers
// keepalives and sends standby status updates. The slot's confirmed flush
// LSN only ever moves to a position passed to Ack, or, when every emitted
// transaction has been acknowledged and no transaction is open, to the
// server's sent position reported by a keepalive: so after a crash the slot
// replays every transaction that was not yet durable downstream.
package postgres
