// Package capture holds the contract every capturer implements (Source),
// the metrics they share, and what their table readers share (KeyBounds,
// the key range of a chunk query). A capturer reads a source database's change stream
// (PostgreSQL logical replication in capture/postgres, the MySQL binlog in
// capture/mysql) and hands committed transactions, in commit order, to an
// emit function; it acknowledges a position to the source only when told
// that everything up to it is durable downstream.
package capture
