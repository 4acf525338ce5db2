// Package mysql writes target rows to MySQL 8 or MariaDB 10.11: batched,
// idempotent upserts (INSERT ... ON DUPLICATE KEY UPDATE c = VALUES(c)),
// inserts-if-absent (ON DUPLICATE KEY UPDATE that changes nothing) and
// deletes, each batch in one transaction together with the Kafka offsets
// that produced it (database tandem by default, table kafka_offsets), the
// batch's dead letters (dead_letters), and, for the MySQL binlog capturer,
// its acknowledged source position (source_positions).
//
// Values travel as driver arguments of server-side prepared statements, one
// multi-row statement per table, operation and column set per compaction
// round, so decimals (strings), BIGINT UNSIGNED (uint64) and binary data
// arrive exactly. Sessions run in a strict sql_mode in UTC: a value the
// column cannot hold is an error, never a silent truncation; such an error
// of a row's values (rowFault: too long, out of range, NULL into NOT NULL,
// a CHECK, and a zero date, which strict mode refuses) is sink.Rejected, and
// apply dead-letters the row's change.
//
// ON DUPLICATE KEY UPDATE acts on a collision with any unique index, not
// only the write's key (PostgreSQL's ON CONFLICT names its index): Apply
// refuses a key that is not exactly a primary key or unique index
// (ErrNoUniqueKey), and Check warns about tables with other unique indexes.
//
// Backfill (sink.BackfillStore): progress is kept in table backfills of
// the state database. Each DELETE is followed, in the same transaction, by
// a multi-row INSERT of its keys into tombstones, when a read of backfills
// in that transaction finds a backfill running or copied. A tombstone's
// primary key is the target table and the SHA-256 of the key's
// change.KeyText (an index cannot hold every key's text), the text is kept
// beside it. A copied row is inserted unless a lookup of its tombstone in
// the transaction finds one, or a row with its key exists (as
// inserts-if-absent). The table's row in copy_locks keeps copies and the
// deletes of an active backfill apart: a batch that deletes upserts it
// first thing in its transaction (an exclusive row lock), a backfill's
// chunk reads it LOCK IN SHARE MODE, so that chunks of one table are
// written at once.
//
// The sink fences batches like the PostgreSQL sink: the stored offset rows
// are locked (SELECT ... FOR UPDATE) before anything is written, and a batch
// that starts before a stored offset of the same Kafka cluster is refused
// with sink.ErrFenced.
//
// In a two-way replication, a sink with an origin (Config.Origin) opens
// every transaction with a marker row in table origin of the state
// database, by which capture/mysql skips it.
package mysql
