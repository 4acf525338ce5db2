// Package postgres writes target rows to PostgreSQL: batched, idempotent
// upserts (INSERT ... ON CONFLICT DO UPDATE), inserts-if-absent (ON CONFLICT
// DO NOTHING) and deletes, each batch in one transaction together with the
// Kafka offsets that produced it (table tandem.kafka_offsets by default).
//
// Values travel as text and are cast to each target column's type in SQL
// (unnest($1::text[]::bigint[], ...)), so any type PostgreSQL can read from
// its text form works, one statement per table and column set per batch.
// MySQL's zero dates become NULL in date and timestamp columns (table.value
// has the rule); an error PostgreSQL raises for a row's values (class 22, a
// CHECK, NULL into a written NOT NULL column) is sink.Rejected (rowFault).
//
// Backfill (sink.BackfillStore): progress is kept in tandem.backfills.
// While a backfill is running or copied, each DELETE is followed, in the
// same transaction, by an INSERT of its keys into tandem.tombstones that
// checks tandem.backfills itself (INSERT ... SELECT ... WHERE EXISTS), and
// a copied row is inserted only where neither a row with its key nor its
// tombstone is. Copies are written with COPY FROM STDIN, after leaving out
// the tombstoned keys; when a row with one of the keys exists (a unique
// violation), the same rows are written instead by an INSERT ... SELECT
// ... WHERE NOT EXISTS (tombstone) ON CONFLICT DO NOTHING, back at a
// savepoint. A transaction-level advisory lock per table (the copy lock,
// keyed by the table's oid) keeps copies and the deletes of an active
// backfill apart: copies share it, such a delete takes it exclusive.
//
// In a two-way replication, a sink with an origin (Config.Origin) marks
// every transaction with a replication origin, which capture/postgres
// skips.
package postgres
