package reconcile

import (
	"context"
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/transform"
)

// Verify re-compares the target rows of source rows the stream has just
// applied (their primary keys), so a missed or wrong apply is caught within
// seconds instead of at the next sweep. Each row is read again at the
// source, mapped, and compared with the target; differences are re-checked
// as a sweep's are, and the ones that last are added to tandem_drift_rows
// (the next full sweep sets it afresh) and returned.
//
// A source row that no longer exists is skipped: its delete is a later
// change, which Verify sees when it is applied, and a sweep finds what a
// lost delete leaves behind. A row the mapping fails on is KindUnmapped (its
// change was dead-lettered); one an ignore_rows rule matches is skipped;
// the column rules apply as in a sweep (nothing is counted for them: the
// rule gauge is a sweep's).
func (r *Reconciler) Verify(ctx context.Context, mapping string, keys []change.Row) ([]Drift, error) {
	i := -1
	for j, m := range r.mappings {
		if m.Name == mapping {
			i = j
		}
	}
	if i < 0 || len(keys) == 0 {
		return nil, nil
	}
	m := r.mappings[i]
	st, err := r.src.Describe(ctx, m.From)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", m.Name, err)
	}
	outputs := m.Outputs()
	columns := map[string]map[string]column{}
	want := make([]map[string]*suspect, len(outputs))
	for j, o := range outputs {
		want[j] = map[string]*suspect{}
		if _, ok := columns[o.Table]; ok {
			continue
		}
		if columns[o.Table], err = r.columnsOf(ctx, o.Table); err != nil {
			return nil, fmt.Errorf("verify %s: %w", m.Name, err)
		}
	}
	var suspects []*suspect
	absent := map[int][]*suspect{} // per output: rows whose `when` is false, which the target must not have
	for _, key := range keys {
		if err := r.limiter.WaitN(ctx, min(1, r.limiter.Burst())); err != nil {
			return nil, err
		}
		cur, err := r.src.Row(ctx, st, key)
		if err != nil {
			return nil, fmt.Errorf("verify %s: re-read source %s: %w", m.Name, m.From, err)
		}
		if cur == nil || r.ignored(i, cur) != nil {
			continue
		}
		mapped, err := m.Apply(ctx, cur)
		if err != nil {
			suspects = append(suspects, unmapped(i, m, st, cur, err))
			continue
		}
		all, err := m.Keys(ctx, cur)
		if err != nil {
			continue
		}
		for j, o := range outputs {
			var row *transform.Row
			for k := range mapped {
				if mapped[k].Table == o.Table {
					row = &mapped[k]
				}
			}
			if row != nil {
				want[j][change.RowID(o.Table, o.Key, row.Columns)] = &suspect{
					Drift:   Drift{Table: o.Table, Key: pick(row.Columns, o.Key), SourceKey: pick(cur, st.Key), Want: row.Columns},
					mapping: i, output: j, src: st, seen: cur}
				continue
			}
			for _, k := range all {
				if k.Table == o.Table {
					absent[j] = append(absent[j], &suspect{Drift: Drift{Table: o.Table, Key: k.Columns, SourceKey: pick(cur, st.Key)},
						mapping: i, output: j, src: st, seen: cur})
				}
			}
		}
	}
	for j, o := range outputs {
		s, err := r.compare(ctx, i, o, want[j], columns[o.Table])
		if err != nil {
			return nil, err
		}
		suspects = append(suspects, s...)
		extra, err := r.stillThere(ctx, o, absent[j])
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", m.Name, err)
		}
		suspects = append(suspects, extra...)
	}
	reports := make([]MappingReport, len(r.mappings))
	// The rows of cohorts the new side owns are the reverse stream's: a
	// sweep compares them through the inverse.
	if _, err := r.settle(ctx, suspects, columns, reports); err != nil {
		return nil, err
	}
	rep := reports[i]
	r.markDeadLetters(ctx, m.Name, st, &rep)
	r.metrics.Drift.WithLabelValues(m.Name, string(KindUnmapped)).Add(float64(rep.Unmapped))
	r.metrics.Drift.WithLabelValues(m.Name, string(KindMissing)).Add(float64(rep.Missing))
	r.metrics.Drift.WithLabelValues(m.Name, string(KindExtra)).Add(float64(rep.Extra))
	r.metrics.Drift.WithLabelValues(m.Name, string(KindMismatch)).Add(float64(rep.Mismatch))
	r.metrics.Checked.WithLabelValues(m.Name).Add(float64(len(keys)))
	return rep.Drifted, nil
}

// stillThere returns the rows of absent (rows of output o whose `when` is
// false, which the target must not have) that the target has: extra.
func (r *Reconciler) stillThere(ctx context.Context, o transform.Output, absent []*suspect) ([]*suspect, error) {
	if len(absent) == 0 {
		return nil, nil
	}
	keys := make([]map[string]any, len(absent))
	for k, s := range absent {
		keys[k] = s.Key
	}
	got, err := r.tgt.ReadKeys(ctx, o.Table, o.Key, o.Columns, keys)
	if err != nil {
		return nil, fmt.Errorf("read target table %s: %w", o.Table, err)
	}
	present := map[string]map[string]any{}
	for _, g := range got {
		present[change.RowID(o.Table, o.Key, g)] = g
	}
	var extra []*suspect
	for _, s := range absent {
		if g, ok := present[change.RowID(o.Table, o.Key, s.Key)]; ok {
			s.Kind, s.Got = KindExtra, g
			extra = append(extra, s)
		}
	}
	return extra, nil
}
