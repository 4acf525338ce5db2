// Package postgres writes target rows to PostgreSQL: batched, idempotent
// upserts (INSERT ... ON CONFLICT DO UPDATE), inserts-if-absent (ON CONFLICT
// DO NOTHING) and deletes, each batch in one transaction together with the
// Kafka offsets that produced it (table tandem.kafka_offsets by default).
//
// Values travel as text and are cast to each target column's type in SQL
// (unnest($1::text[]::bigint[], ...)), so any type PostgreSQL can read from
// its text form works, one statement per table and column set per batch.
package postgres
