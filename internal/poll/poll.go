// Package poll waits: for a condition, by checking it on a ticker until it
// holds or a deadline passes (how tests, the demo and the benchmarks wait
// for the pipeline, never with fixed sleeps), and for a duration that a
// context may cut short (backoffs, reconcile's settling).
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is wrapped by Until when the condition did not hold in time.
var ErrTimeout = errors.New("condition not met in time")

// Until calls cond at once and then every interval until it returns true or
// an error, within passes, or ctx ends. It returns the time taken just
// before the call that first returned true, so a query's snapshot is not
// later than that time.
func Until(ctx context.Context, every, within time.Duration, cond func() (bool, error)) (time.Time, error) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		at := time.Now()
		ok, err := cond()
		if err != nil {
			return at, err
		}
		if ok {
			return at, nil
		}
		select {
		case <-ctx.Done():
			return at, ctx.Err()
		case <-deadline.C:
			return at, fmt.Errorf("%w: %s", ErrTimeout, within)
		case <-tick.C:
		}
	}
}

// Sleep waits for d or until ctx ends, whichever is first, and returns
// ctx's error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Every calls fn every interval, the first time one interval from now,
// until ctx ends or fn returns false.
func Every(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !fn() {
			return
		}
	}
}
