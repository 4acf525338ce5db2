// Package cutover moves cohorts' writes between the old schema and the new
// one, with a way back: `tandem switch`.
//
// # Owners
//
// Each cohort (a tenant, a merchant: the value of a mapping's cohort
// column; "default" without one) is owned by one side: the old schema's
// database or the new one's. The forward stream (old -> new) applies only
// the changes of cohorts the old side owns, the reverse stream (new -> old,
// through the mappings' inverse) only those the new side owns; each reads
// the owners inside the transaction that writes, share-locking their rows
// (sink.Batch.Side). Both databases keep the owners in
// <state_schema>.cohorts, so that an application's routing flag can read
// them wherever it runs.
//
// # A switch, from side F to side T
//
//  1. Gates: each must pass, or the switch refuses (ErrRefused) and
//     changes nothing.
//  2. T's database: the cohorts become switching (to T), version v+1.
//  3. F's database: a fence, a transaction holding the cohorts' owner rows
//     locked: the guard triggers on F's tables make the application's
//     writes of those cohorts wait for it.
//  4. Drain: P is where F's log ends now; the switch waits until the
//     stream reading F has acknowledged P (everything before it applied),
//     at most cutover.fence_timeout, else it undoes 2 and 3.
//  5. F's database: the cohorts are owned by T, version v+1, committed with
//     the fence, which lifts it. The application's writes that waited now
//     find T the owner (and are recorded or refused as misrouted); the
//     stream from T, whose batches waited on the locked rows, applies
//     them.
//  6. T's database: the cohorts are owned by T, version v+1. The stream
//     from F, which had nothing left to apply of them (F's side refuses
//     the application's writes and tandem's own are never captured),
//     stops applying them.
//
// # Crashes
//
// A kill at any point leaves the two databases' rows such that Recover,
// run by every switch and every few seconds by `tandem run`, finishes or
// undoes it:
//   - killed before 5: T's row says switching at v+1, F's says F at v (the
//     fence died with its connection). The drain was not known to be
//     complete: the switch is undone once the row is older than any live
//     switch (StaleSwitching), or redone by the next switch. Meanwhile F
//     still owns the cohort: its stream applies it (T's row lets the
//     draining stream apply) and F's guard lets the application write.
//   - killed between 5 and 6: F's row says T at v+1 (written only after
//     the drain), T's says switching to T at v+1: Recover finishes it.
//     Meanwhile the application's writes are refused on both sides (F's
//     row says T, T's says switching), never lost.
//   - otherwise the row with the higher version is copied to the other
//     side.
//
// So a cohort's changes are never applied by the stream that does not own
// it, and a write of the application is never lost: it lands on the side
// that owns the cohort, waits, or is refused (guard: reject) or recorded
// (report).
package cutover
