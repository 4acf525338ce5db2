package reconcile

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Repair re-syncs each drifted row of rep (found with mappings) and returns
// how many it re-synced per report (MappingReport.Label). A forward report's row is re-synced from its source
// row: a missing or mismatched row from the source row read under a shared
// lock (internal/resync), so it converges with the live stream; an extra
// row is deleted, and the pass after the repair finds it again if a source
// row produced it meanwhile. It reads src and writes tgt. A reverse
// report's row is rebuilt from the target's current rows through back
// (see RepairBack); without back, its rows are left as they are.
func Repair(ctx context.Context, rep *Report, mappings []*transform.Mapping, src resync.RowLocker, tgt sink.Sink, back *Back) (map[string]int, error) {
	out := map[string]int{}
	for _, mr := range rep.Mappings {
		i := slices.IndexFunc(mappings, func(m *transform.Mapping) bool { return m.Name == mr.Mapping })
		if i < 0 {
			return out, fmt.Errorf("repair: the report is of mapping %s, which is not configured", mr.Mapping)
		}
		m := mappings[i]
		if mr.Direction == Reverse {
			if back == nil || len(mr.Drifted) == 0 {
				continue
			}
			n, err := back.repair(ctx, m, mr.Drifted, src)
			out[mr.Label()] += n
			if err != nil {
				return out, fmt.Errorf("repair mapping %s through the inverse: %w", m.Name, err)
			}
			continue
		}
		var rows []resync.Row
		var extras []change.Write
		for _, d := range mr.Drifted {
			if d.Kind == KindRoundTrip || d.Kind == KindUnmapped {
				continue // the mapping (or its inverse) fails on it: re-syncing cannot help
			}
			if d.SourceKey != nil {
				rows = append(rows, resync.Row{Key: d.SourceKey})
				continue
			}
			for _, o := range m.Outputs() {
				if o.Table == d.Table {
					extras = append(extras, change.Write{Table: d.Table, Op: change.WriteDelete, Key: o.Key, Row: d.Key})
					break
				}
			}
		}
		results, err := resync.Rows(ctx, src, m, tgt, rows, nil)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, r := range results {
			if r.Err != nil {
				errs = append(errs, r.Err)
				continue
			}
			out[m.Name]++
		}
		if len(extras) > 0 {
			if err := tgt.Apply(ctx, sink.Batch{Writes: extras}, sink.Checkpoint{}); err != nil {
				errs = append(errs, fmt.Errorf("delete extra rows of mapping %s: %w", m.Name, err))
			} else {
				out[m.Name] += len(extras)
			}
		}
		if err := errors.Join(errs...); err != nil {
			return out, fmt.Errorf("repair mapping %s: %w", m.Name, err)
		}
	}
	return out, nil
}

// Back is what Repair needs for the rows of cohorts the new side owns: it
// writes the source as the reverse stream does.
type Back struct {
	// Sink writes the source database: sink.Batch.Side old, so that only
	// the rows of cohorts the new side owns are written.
	Sink sink.Sink
	// Current reads the target's current rows, typed as the reverse
	// stream reads them.
	Current transform.CurrentRow
}

// backRetries is how many times repair rebuilds a source row whose target
// rows keep changing under it.
const backRetries = 3

// repair rebuilds the source row of each drifted row of mapping m's
// reverse report from the target's current rows (transform.Reverse.Rebuild)
// and writes it, and returns how many it wrote. It converges with the
// reverse stream without a lock: that stream rebuilds from the current
// rows too, so a write of it that lands after the repair's is no older
// than the rows the repair read, unless the rows changed while the repair
// read them; the rows are read again after the write, and a row whose
// target rows changed meanwhile is rebuilt again.
func (b *Back) repair(ctx context.Context, m *transform.Mapping, drifted []Drift, src resync.RowLocker) (int, error) {
	st, err := src.Describe(ctx, m.From)
	if err != nil {
		return 0, err
	}
	rev, err := transform.NewReverse(m, st.Key)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range drifted {
		if d.Kind == KindRoundTrip || d.Kind == KindUnmapped {
			continue // the inverse fails on it: rebuilding cannot help
		}
		for try := 0; ; try++ {
			before, _, err := rev.Current(ctx, d.SourceKey, b.Current)
			if err != nil {
				return n, err
			}
			ws, err := rev.Rebuild(ctx, d.SourceKey, d.Cohort, b.Current)
			if err != nil {
				return n, err
			}
			if err := b.Sink.Apply(ctx, sink.Batch{Writes: ws, Side: sink.SideOld}, sink.Checkpoint{}); err != nil {
				return n, fmt.Errorf("write %s %s: %w", m.From, change.KeyText(st.Key, d.SourceKey), err)
			}
			after, _, err := rev.Current(ctx, d.SourceKey, b.Current)
			if err != nil {
				return n, err
			}
			if reflect.DeepEqual(before, after) || try+1 == backRetries {
				break
			}
		}
		n++
	}
	return n, nil
}
