package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Directions of a MappingReport.
const (
	Forward = "forward" // cohorts the old side owns: the target checked against the source
	Reverse = "reverse" // cohorts the new side owns: the source checked against the target, through the inverse
)

// Label names the report in text and metrics: the mapping's name, or
// "reverse:<mapping>" for a reverse report (Repair's counts are by it).
func (r MappingReport) Label() string {
	if r.Direction == Reverse {
		return backName(r.Mapping)
	}
	return r.Mapping
}

// backName is the mapping label of a mapping's reverse report in the
// metrics, as the reverse stream's own metrics name it.
func backName(mapping string) string { return Reverse + ":" + mapping }

// reversesOf runs the mappings backwards for the cohorts the new side
// owns: only with Config.Owners, and only the mappings that can be (see
// transform.NewReverse; a cutover config that cannot is refused before).
func (r *Reconciler) reversesOf(sources []*change.Schema) []*transform.Reverse {
	out := make([]*transform.Reverse, len(r.mappings))
	if r.cfg.Owners == nil {
		return out
	}
	for i, m := range r.mappings {
		if m.HasInverse() {
			out[i], _ = transform.NewReverse(m, sources[i].Key)
		}
	}
	return out
}

// owners reads the cohorts' owners; nil without Config.Owners.
func (r *Reconciler) owners(ctx context.Context) (map[string]sink.Owner, error) {
	if r.cfg.Owners == nil {
		return nil, nil
	}
	list, err := r.cfg.Owners(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read the cohorts' owners: %w", err)
	}
	out := make(map[string]sink.Owner, len(list))
	for _, o := range list {
		out[o.Cohort] = o.Owner
	}
	return out, nil
}

// ownerOf sets the cohort of s, a settled difference, and returns the
// owner of it: the source row's cohort, or the target row's for a row
// without one. A row the mapping or its inverse fails on is the mapping's
// fault, whoever owns it: it stays in the forward report (OwnerOld).
func (r *Reconciler) ownerOf(s *suspect, owners map[string]sink.Owner) sink.Owner {
	if r.cfg.Owners == nil {
		return sink.OwnerOld
	}
	m := r.mappings[s.mapping]
	switch {
	case !m.HasCohort():
		s.Cohort = config.DefaultCohort
	case s.seen != nil:
		s.Cohort = transform.CohortOf(s.seen[m.CohortColumn()])
	default:
		row := s.Got
		if row == nil {
			row = s.Want
		}
		col, _ := m.OutputCohortColumn(s.Table)
		s.Cohort = transform.CohortOf(row[col])
	}
	if s.Kind == KindUnmapped || s.Kind == KindRoundTrip || owners[s.Cohort] == "" {
		return sink.OwnerOld
	}
	return owners[s.Cohort]
}

// cohortOf is the cohort of source row row of mapping i; "" without
// Config.Owners (no cutover: cohorts mean nothing).
func (r *Reconciler) cohortOf(i int, row change.Row) string {
	m := r.mappings[i]
	if r.cfg.Owners == nil {
		return ""
	}
	if !m.HasCohort() || row == nil {
		return config.DefaultCohort
	}
	return transform.CohortOf(row[m.CohortColumn()])
}

// settleBack compares through the inverse the rows of the differences
// settle found in cohorts the new side owns, and files those that differ
// in a reverse report per mapping. The new side is the truth for them:
// the source row must be what the inverse makes of the target's current
// rows. A forward difference is needed for a reverse one (a source row
// whose target rows are what the mapping makes of it, and that comes back
// through the inverse, is what the inverse makes of them), so these rows
// are all there is to compare; settle has waited for the streams, the
// reverse one included, to catch up with them.
func (r *Reconciler) settleBack(ctx context.Context, back []*suspect, sources []*change.Schema, columns map[string]map[string]column) ([]MappingReport, error) {
	reports := map[int]*MappingReport{}
	for i, rev := range r.reverses {
		if rev != nil { // a report, empty or not, wherever the new side may own rows
			reports[i] = &MappingReport{Mapping: r.mappings[i].Name, Direction: Reverse}
		}
	}
	done := map[string]bool{}
	current := r.current(columns)
	for _, s := range back {
		i, m := s.mapping, r.mappings[s.mapping]
		rep := reports[i]
		if rep == nil {
			rep = &MappingReport{Mapping: m.Name, Direction: Reverse}
			reports[i] = rep
		}
		rev := r.reverses[i]
		if rev == nil { // cannot be compared through an inverse: as found
			rep.Checked++
			rep.add(s.Drift)
			continue
		}
		key := s.SourceKey
		if key == nil {
			k, err := rev.OldKey(s.Table, s.Got)
			if err != nil {
				return nil, fmt.Errorf("reconcile %s: %w", m.Name, err)
			}
			key = k
		}
		id := change.RowID(m.From.String(), sources[i].Key, key)
		if done[id] {
			continue
		}
		done[id] = true
		rep.Checked++
		d, drifted, err := r.compareBack(ctx, i, sources[i], rev, key, s.Cohort, current)
		if err != nil {
			return nil, err
		}
		if drifted {
			rep.add(d)
		}
	}
	var out []MappingReport
	for i := range r.mappings {
		if rep := reports[i]; rep != nil {
			sortDrift(rep.Drifted)
			rep.Samples = samples(rep.Drifted, r.cfg.Samples)
			out = append(out, *rep)
		}
	}
	return out, nil
}

// compareBack compares the source row of mapping i with key with what the
// inverse makes of the target's current rows: KindExtra when the target
// has no primary row for it (to[0]) and the source row exists, KindMissing
// the other way round, KindMismatch when the source row is not what the
// inverse gives back (under the tolerance rules, as the round trip is
// compared), KindRoundTrip when the inverse fails on the target's rows.
// Want is what the inverse gives back, Got the source row.
func (r *Reconciler) compareBack(ctx context.Context, i int, st *change.Schema, rev *transform.Reverse, key map[string]any,
	cohort string, current transform.CurrentRow) (Drift, bool, error) {
	m := r.mappings[i]
	if err := r.limiter.WaitN(ctx, min(1+len(m.Outputs()), r.limiter.Burst())); err != nil {
		return Drift{}, false, err
	}
	rows, primary, err := rev.Current(ctx, key, current)
	if err != nil {
		return Drift{}, false, fmt.Errorf("reconcile %s through the inverse: %w", m.Name, err)
	}
	old, err := r.src.Row(ctx, st, change.Row(key))
	if err != nil {
		return Drift{}, false, fmt.Errorf("reconcile %s: read source %s: %w", m.Name, m.From, err)
	}
	d := Drift{Table: m.From.String(), Key: key, SourceKey: change.Row(key), Cohort: cohort}
	switch {
	case !primary && old == nil:
		return d, false, nil
	case !primary:
		d.Kind, d.Got = KindExtra, old
		return d, true, nil
	case old == nil:
		want, err := m.Inverse(ctx, rows)
		if err != nil {
			d.Kind, d.Error = KindRoundTrip, err.Error()
			return d, true, nil
		}
		maps.Copy(want, key)
		d.Kind, d.Want = KindMissing, want
		return d, true, nil
	}
	trip, differs, _ := r.roundTrip(ctx, i, st, old, rows)
	if !differs {
		return d, false, nil
	}
	d.Kind, d.Columns, d.Error = KindMismatch, trip.Columns, trip.Error
	if d.Error != "" {
		d.Kind = KindRoundTrip
	}
	d.Want, d.Got = trip.Got, trip.Want // the round trip's "want" is the source's
	return d, true, nil
}

// current reads the target's current rows for the inverse, with every
// column of their tables (columns, as the sweep classified them).
func (r *Reconciler) current(columns map[string]map[string]column) transform.CurrentRow {
	return func(ctx context.Context, table string, key map[string]any) (map[string]any, bool, error) {
		cols := slices.Sorted(maps.Keys(columns[table]))
		rows, err := r.tgt.ReadKeys(ctx, table, slices.Sorted(maps.Keys(key)), cols, []map[string]any{key})
		if err != nil || len(rows) == 0 {
			return nil, false, err
		}
		return rows[0], true, nil
	}
}
