package cutover

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tandemcdc/tandem/sink"
)

// StaleSwitching is how long a cohort may stay switching before Recover
// takes the switch that marked it for dead: longer than any live switch's
// fence and drain (cutover.fence_timeout is seconds).
var StaleSwitching = time.Minute

// Repair is one cohort Recover set right.
type Repair struct {
	Cohort string
	Side   sink.Side      // the database whose row it wrote
	Was    sink.Ownership // that row before
	Now    sink.Ownership // and after
	Why    string
}

// Recover makes both databases agree on every cohort's owner after a
// switch was killed (see the package doc): a switching row whose other
// side has a lower version is undone once it is older than StaleSwitching
// (a younger one may belong to a switch still running); otherwise the
// row with the higher version is copied to the other database.
func Recover(ctx context.Context, oldStore, newStore sink.CohortStore, log *slog.Logger) ([]Repair, error) {
	read := func(s sink.CohortStore, side sink.Side) (map[string]sink.Ownership, error) {
		rows, err := s.Cohorts(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the cohorts' owners in the %s database: %w", side, err)
		}
		m := make(map[string]sink.Ownership, len(rows))
		for _, r := range rows {
			m[r.Cohort] = r
		}
		return m, nil
	}
	olds, err := read(oldStore, sink.SideOld)
	if err != nil {
		return nil, err
	}
	news, err := read(newStore, sink.SideNew)
	if err != nil {
		return nil, err
	}
	var cohorts []string
	for c := range olds {
		cohorts = append(cohorts, c)
	}
	for c := range news {
		if _, ok := olds[c]; !ok {
			cohorts = append(cohorts, c)
		}
	}
	slices.Sort(cohorts)
	var repairs []Repair
	for _, c := range cohorts {
		o, n := olds[c], news[c]
		if o.Owner == n.Owner && o.To == n.To && o.Version == n.Version {
			continue
		}
		r, ok := repair(c, o, n)
		if !ok {
			continue
		}
		store := oldStore
		if r.Side == sink.SideNew {
			store = newStore
		}
		if err := store.SetOwners(ctx, []sink.Ownership{r.Now}); err != nil {
			return repairs, fmt.Errorf("set cohort %s's owner right in the %s database: %w", c, r.Side, err)
		}
		log.Warn("cohort owner set right after an interrupted switch", "cohort", c, "database", r.Side,
			"was", string(r.Was.Owner), "now", string(r.Now.Owner), "version", r.Now.Version, "why", r.Why)
		repairs = append(repairs, r)
	}
	return repairs, nil
}

// repair decides what to write for cohort c whose rows are o (old
// database) and n (new database); ok is false when nothing may be written
// yet.
func repair(c string, o, n sink.Ownership) (Repair, bool) {
	stale := func(ow sink.Ownership) bool { return time.Since(ow.ChangedAt) > StaleSwitching }
	undo := func(side sink.Side, sw, other sink.Ownership) (Repair, bool) {
		if !stale(sw) {
			return Repair{}, false
		}
		now := sink.Ownership{Cohort: c, Owner: ownerOf(other), Version: sw.Version}
		return Repair{Cohort: c, Side: side, Was: sw, Now: now, Why: "a switch that never finished its drain is undone"}, true
	}
	finish := func(side sink.Side, sw sink.Ownership) (Repair, bool) {
		now := sink.Ownership{Cohort: c, Owner: sink.Owner(sw.To), Version: sw.Version}
		return Repair{Cohort: c, Side: side, Was: sw, Now: now, Why: "a switch whose fence committed is finished"}, true
	}
	switch {
	case n.Owner == sink.OwnerSwitching && o.Version == n.Version && ownerOf(o) == sink.Owner(n.To):
		return finish(sink.SideNew, n)
	case o.Owner == sink.OwnerSwitching && n.Version == o.Version && ownerOf(n) == sink.Owner(o.To):
		return finish(sink.SideOld, o)
	case n.Owner == sink.OwnerSwitching && o.Version < n.Version:
		return undo(sink.SideNew, n, o)
	case o.Owner == sink.OwnerSwitching && n.Version < o.Version:
		return undo(sink.SideOld, o, n)
	case n.Version > o.Version:
		now := n
		now.Cohort = c
		return Repair{Cohort: c, Side: sink.SideOld, Was: o, Now: now, Why: "the new database's later version is copied"}, true
	case o.Version > n.Version:
		now := o
		now.Cohort = c
		return Repair{Cohort: c, Side: sink.SideNew, Was: n, Now: now, Why: "the old database's later version is copied"}, true
	}
	return Repair{}, false // same version, both switching or equal owners: a live switch's
}

// ownerOf is the owner a row states, the old side for no row.
func ownerOf(ow sink.Ownership) sink.Owner {
	if ow.Owner == "" {
		return sink.OwnerOld
	}
	return ow.Owner
}
