// Package progress renders what `tandem backfill` is doing for a person
// watching: a live display with one line per table (rows copied of the
// estimate, a bar, rate, ETA, time throttled), redrawn in place on a
// terminal from backfill.Runner.Progress snapshots, and the table that
// `tandem backfill --estimate` prints. It only formats: the numbers come
// from package backfill, and cmd/tandem decides whether stdout is a
// terminal.
package progress
