package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/repeat"
)

// This file runs reconcile continuously: a sweep every interval, and the
// re-verification of rows the stream just applied.

// Result is one reconcile pass: the row comparison and the
// consistency checks.
type Result struct {
	Report *Report
	Checks []CheckResult
	// Repaired counts the drifted rows a repair re-synced, by mapping.
	Repaired map[string]int
}

// Drift reports whether anything differs.
func (r *Result) Drift() bool {
	for _, c := range r.Checks {
		if c.Differs() {
			return true
		}
	}
	return r.Report.Drift() > 0
}

// Session is a Reconciler with the connections a pass needs: the
// consistency checks and the databases they query. The wiring opens it
// (internal/connect knows the databases).
type Session struct {
	Reconciler *Reconciler
	Checks     []Check
	Source     Querier // runs the checks' source queries
	Target     Querier // runs the checks' target queries
	// Close releases the connections; nil: nothing to release.
	Closer func()
}

// Close releases the session's connections.
func (s *Session) Close() {
	if s.Closer != nil {
		s.Closer()
	}
}

// Opener opens a Session.
type Opener func(ctx context.Context) (*Session, error)

// Pass is one sweep and the consistency checks.
func (s *Session) Pass(ctx context.Context) (*Result, error) {
	rep, err := s.Reconciler.Sweep(ctx)
	if err != nil {
		return nil, err
	}
	return &Result{Report: rep, Checks: s.Reconciler.RunChecks(ctx, s.Checks, s.Source, s.Target)}, nil
}

// applied is a batch of source rows the stream has just applied, for
// event-driven re-verification.
type applied struct {
	mapping string
	keys    []change.Row
}

// verifyPerBatch bounds the rows of one applied batch re-verified: a
// sample, so re-verification reads the source at a small fraction of the
// stream's rate.
const verifyPerBatch = 100

// VerifyQueue holds applied batches until the reconciler re-verifies them;
// when it is full, batches are dropped (the next sweep still sees every
// row), so the stream never waits for reconcile.
type VerifyQueue chan applied

// NewVerifyQueue holds up to n applied batches.
func NewVerifyQueue(n int) VerifyQueue { return make(VerifyQueue, n) }

// Add queues keys, source rows mapping applied, for re-verification: a
// sample of at most verifyPerBatch of them. It never blocks; a nil queue
// takes nothing.
func (q VerifyQueue) Add(mapping string, keys []change.Row) {
	if q == nil || len(keys) == 0 {
		return
	}
	if len(keys) > verifyPerBatch { // a sample, spread over the batch
		sample := make([]change.Row, verifyPerBatch)
		for i := range sample {
			sample[i] = keys[i*len(keys)/verifyPerBatch]
		}
		keys = sample
	}
	select {
	case q <- applied{mapping, keys}:
	default:
	}
}

// Loop sweeps every interval, the first time at once when now is set,
// until ctx ends, with a Session from open (opened when first needed and
// again after a failure); beside it, what verify brings is re-verified (its
// own connections, so a sweep's settling does not hold it back, nor it a
// sweep). A failed pass is logged and tried again at the next interval:
// tandem_reconcile_last_success goes stale, which the alert watches.
func Loop(ctx context.Context, open Opener, interval time.Duration, now bool, verify VerifyQueue, log *slog.Logger) {
	if verify != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			runVerify(ctx, open, verify, log)
		}()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	env := newLazySession(open, "reconcile", log)
	defer env.close()
	for {
		if !now {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		now = false
		e := env.get(ctx)
		if e == nil {
			continue
		}
		start := time.Now()
		res, err := e.Pass(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			env.fail(err)
			continue
		}
		env.ok()
		switch {
		case res.Drift():
			var first []string
			for _, mr := range res.Report.Mappings {
				for _, d := range mr.Samples {
					if len(first) < 5 {
						first = append(first, fmt.Sprintf("%s %s %v %v", d.Kind, d.Table, d.Key, d.Columns))
					}
				}
			}
			log.Warn("reconcile found drift", "rows", res.Report.Drift(), "first", first, "took", time.Since(start).Round(time.Millisecond))
		default:
			log.Info("reconcile: no drift", "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// runVerify re-verifies applied rows as they come, until ctx ends.
func runVerify(ctx context.Context, open Opener, verify VerifyQueue, log *slog.Logger) {
	env := newLazySession(open, "re-verifying applied rows", log)
	defer env.close()
	for {
		var batch applied
		select {
		case <-ctx.Done():
			return
		case batch = <-verify:
		}
		e := env.get(ctx)
		if e == nil {
			continue
		}
		drift, err := e.Reconciler.Verify(ctx, batch.mapping, batch.keys)
		if err != nil {
			env.fail(err)
			continue
		}
		env.ok()
		for _, d := range drift {
			log.Warn("reconcile: a row the stream just applied differs from its source", "mapping", batch.mapping,
				"kind", d.Kind, "table", d.Table, "key", d.Key, "columns", d.Columns)
		}
	}
}

// lazySession opens a Session when first needed, and again after a
// failure. Failures are logged once per distinct cause, with a count and
// when they began (repeat.Log): a database restarting under a stream that
// re-verifies every batch would otherwise log one line per batch.
type lazySession struct {
	open     Opener
	log      *slog.Logger
	opening  *repeat.Log // the session cannot be opened
	failures *repeat.Log // a pass on an open session failed
	s        *Session
}

// newLazySession returns a lazySession for what.
func newLazySession(open Opener, what string, log *slog.Logger) *lazySession {
	return &lazySession{open: open, log: log,
		opening:  repeat.New(log, what+": cannot open the databases; trying again later", repeat.WithLevel(slog.LevelWarn)),
		failures: repeat.New(log, what+" failed; trying again later", repeat.WithLevel(slog.LevelWarn))}
}

func (l *lazySession) get(ctx context.Context) *Session {
	if l.s == nil {
		s, err := l.open(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.opening.Fail(err)
			}
			return nil
		}
		l.opening.OK()
		l.s = s
	}
	return l.s
}

// ok records a pass that worked.
func (l *lazySession) ok() { l.failures.OK() }

func (l *lazySession) fail(err error) {
	if !errors.Is(err, context.Canceled) {
		l.failures.Fail(err)
	}
	l.close()
}

func (l *lazySession) close() {
	if l.s != nil {
		l.s.Close()
		l.s = nil
	}
}
