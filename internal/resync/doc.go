// Package resync makes the target rows of chosen source rows equal to what
// the current mapping makes of those rows' current state, while the stream
// runs: `tandem dlq replay` re-syncs the rows of dead letters once their
// mapping is fixed (Replay), and the reconciler's repair can re-sync rows
// found drifted (Rows).
//
// # Why not replay the stored change
//
// A dead letter holds an old change. Later changes of the same row may have
// been applied since (an update that the mapping handled, a delete), and
// writing the old image again would roll the target back. So a re-sync
// never writes a stored image: it reads the row as it is now.
//
// # How a re-sync converges with the stream
//
// For one source row R with primary key K, of mapping M:
//
//  1. In a source transaction, read R by K with a shared row lock
//     (PostgreSQL SELECT ... FOR SHARE, MySQL/MariaDB LOCK IN SHARE MODE).
//     Until that transaction ends no writer can update or delete R.
//  2. Compute the target writes from the current R with the current M, by
//     the stream's own rule (transform.Writes of an update to R): upserts of
//     what R produces, deletes of outputs whose `when` is false. Add the
//     deletes of the target keys that earlier images of R (the dead
//     letters' before and after) map to and R no longer produces: a key
//     that moved, an output that no longer matches. Apply them to the
//     target (no Kafka offsets: this is not the stream's progress) and
//     commit; then drop the dead letters; then end the source transaction.
//  3. Any change of R commits after the lock is released, so it reaches
//     Kafka, and then the target, after the re-sync's writes are committed:
//     the stream applies it on top of the re-synced row, as it would have
//     without the re-sync. Changes of R committed before the lock and not
//     yet applied carry images no newer than the one read, in commit order,
//     and the last of them is the one read: applying them after the re-sync
//     moves the target through older states back to the same one.
//
// So whatever the interleaving, once the stream has applied everything the
// target holds what the stream alone would give had the mapping never
// failed, provided the stream runs the same (fixed) mapping. A re-sync run
// twice writes the same rows twice: harmless.
//
// PostgreSQL cannot lock a row that does not exist. A row absent at the
// source gets its target rows deleted (the keys its images map to, and the
// keys of its primary key alone when the mapping's target keys read only
// primary key columns), then is read again: still absent, no insert had
// committed before that read, so any later insert is applied after the
// deletes; present, it is re-synced under its lock as above.
//
// If the mapping still fails on a row, or a write fails, the row is not
// re-synced and nothing of it changes; the caller keeps its dead letters.
package resync
