// Package reconcile compares the source, mapped through the same compiled
// transform the sink is fed by, with the target, and reports drift: rows
// missing from the target, extra in it, there with other values, that
// do not come back through the mapping's inverse, or that the mapping
// fails on (unmapped: never skipped, so "no drift" is never said over a
// row the target lacks). A mapping's rules (rules.go) declare known
// differences, applied wherever rows are compared and counted.
//
// Where drift is classified: Reconciler.Sweep walks the source in key
// order beside the target rows each chunk should produce (or compares
// server-side summaries of both where the databases can, hashed.go);
// every difference is a suspect, re-checked after the stream has had time
// to apply it (settling: Settle plus the replication lag), and only a
// difference that lasts is counted, as a DriftKind (recheck). Loop runs
// sweeps every reconcile.interval and re-verifies rows as the stream
// applies them (VerifyQueue); Repair re-syncs drifted rows from the
// source under a row lock (internal/resync). The drift metrics are
// exported here (metrics.go).
package reconcile
