package reconcile

import (
	"context"
	"fmt"
)

// Querier runs a consistency query that returns one number.
type Querier interface {
	// QueryNumber runs query and returns the number in its first column of
	// its only row.
	QueryNumber(ctx context.Context, query string) (float64, error)
}

// Check is one consistency query (reconcile.checks): one number per side.
type Check struct {
	Name, Source, Target string
}

// CheckResult is what a consistency check found.
type CheckResult struct {
	Name           string
	Source, Target float64
	Err            error // the query failed on a side
}

// Differs reports whether the two sides disagree (or could not be read).
func (c CheckResult) Differs() bool { return c.Err != nil || c.Source != c.Target }

// RunChecks runs every check on both sides and exports each number as
// tandem_consistency_check_value{check,side}. A failing query is a result
// with Err, not an error: the other checks still run.
func (r *Reconciler) RunChecks(ctx context.Context, checks []Check, src, tgt Querier) []CheckResult {
	out := make([]CheckResult, 0, len(checks))
	for _, c := range checks {
		res := CheckResult{Name: c.Name}
		var err error
		if res.Source, err = src.QueryNumber(ctx, c.Source); err != nil {
			res.Err = fmt.Errorf("check %s: source query: %w", c.Name, err)
		} else if res.Target, err = tgt.QueryNumber(ctx, c.Target); err != nil {
			res.Err = fmt.Errorf("check %s: target query: %w", c.Name, err)
		}
		if res.Err == nil {
			r.metrics.CheckValue.WithLabelValues(c.Name, "source").Set(res.Source)
			r.metrics.CheckValue.WithLabelValues(c.Name, "target").Set(res.Target)
		}
		out = append(out, res)
	}
	return out
}
