package app

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/sink"
)

// Status is what `tandem status` shows of a migration, read from its
// databases: the streams' heartbeats (what runs, and its lag), the cohorts'
// owners in both databases, the last reconcile sweep's drift, dead letters
// and backfill progress.
type Status struct {
	Streams     []StreamStatus          `json:"streams"`
	Cohorts     []CohortStatus          `json:"cohorts"`
	Drift       []DriftStatus           `json:"drift"`        // by mapping ("reverse:<mapping>" through the inverse) and kind
	DeadLetters map[string]int          `json:"dead_letters"` // by database: target, source
	Backfill    []sink.BackfillProgress `json:"backfill"`
}

// StreamStatus is one stream as its heartbeat says.
type StreamStatus struct {
	Stream     string  `json:"stream"` // forward:<mapping> or reverse:<mapping>
	LagSeconds float64 `json:"lag_seconds"`
	AgeSeconds float64 `json:"age_seconds"` // since the heartbeat
	Running    bool    `json:"running"`     // the heartbeat is recent
}

// DriftStatus is the drifted rows of one kind the last reconcile sweep of a
// mapping found.
type DriftStatus struct {
	Mapping string    `json:"mapping"`
	Kind    string    `json:"kind"`
	Rows    int       `json:"rows"`
	Swept   time.Time `json:"swept_at"`
}

// CohortStatus is one cohort's owner as each database stores it.
type CohortStatus struct {
	Cohort  string    `json:"cohort"`
	Owner   string    `json:"owner"`      // old, new, switching; "disagree" while both databases differ
	Old     string    `json:"old_db"`     // the owner the old database stores
	New     string    `json:"new_db"`     // the owner the new database stores
	Version int64     `json:"version"`    // the higher of both
	Changed time.Time `json:"changed_at"` // in the database whose version is higher
}

// ReadStatus reads the migration's status from its databases.
func ReadStatus(ctx context.Context, cfg *config.Config) (*Status, error) {
	tgt, err := connect.OpenTargetReadOnly(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer tgt.Close()
	st := &Status{DeadLetters: map[string]int{}}
	if st.Backfill, err = tgt.BackfillProgress(ctx); err != nil {
		return nil, fmt.Errorf("read backfill progress: %w", err)
	}
	n, err := tgt.CountDeadLetters(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	st.DeadLetters["target"] = n
	drift, err := tgt.Drift(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the last reconcile's drift: %w", err)
	}
	for _, d := range drift {
		st.Drift = append(st.Drift, DriftStatus{Mapping: d.Mapping, Kind: d.Kind, Rows: d.Rows, Swept: d.Swept})
	}
	if cfg.Cutover == nil {
		return st, nil
	}
	old, err := connect.OpenOld(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer old.Close()
	if n, err = old.CountDeadLetters(ctx, ""); err != nil {
		return nil, fmt.Errorf("count the reverse stream's dead letters: %w", err)
	}
	st.DeadLetters["source"] = n
	newSide := tgt.(connect.Side)
	for _, s := range []sink.CohortStore{newSide, old} {
		hb, err := s.Heartbeats(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the streams' heartbeats: %w", err)
		}
		for _, h := range hb {
			age := time.Since(h.Updated)
			st.Streams = append(st.Streams, StreamStatus{Stream: h.Stream, LagSeconds: h.Lag.Seconds(),
				AgeSeconds: age.Round(time.Millisecond).Seconds(), Running: age < heartbeatMaxAge})
		}
	}
	byCohort := map[string]*CohortStatus{}
	for _, side := range []struct {
		store sink.CohortStore
		old   bool
	}{{old, true}, {newSide, false}} {
		owners, err := side.store.Cohorts(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the cohorts' owners: %w", err)
		}
		for _, o := range owners {
			c := byCohort[o.Cohort]
			if c == nil {
				c = &CohortStatus{Cohort: o.Cohort, Old: string(sink.OwnerOld), New: string(sink.OwnerOld)}
				byCohort[o.Cohort] = c
			}
			if side.old {
				c.Old = string(o.Owner)
			} else {
				c.New = string(o.Owner)
			}
			if o.Version >= c.Version {
				c.Version, c.Changed = o.Version, o.ChangedAt
			}
		}
	}
	for _, c := range byCohort {
		c.Owner = c.New
		if c.Old != c.New {
			c.Owner = "switching"
			if c.Old != string(sink.OwnerSwitching) && c.New != string(sink.OwnerSwitching) {
				c.Owner = "disagree"
			}
		}
		st.Cohorts = append(st.Cohorts, *c)
	}
	slices.SortFunc(st.Cohorts, func(a, b CohortStatus) int { return strings.Compare(a.Cohort, b.Cohort) })
	slices.SortFunc(st.Streams, func(a, b StreamStatus) int { return strings.Compare(a.Stream, b.Stream) })
	return st, nil
}
