package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/resync"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Repair re-syncs each drifted row of rep: a missing or mismatched row from its
// source row, read under a shared lock (internal/resync), so it converges
// with the live stream; an extra row is deleted, and the pass after the
// repair finds it again if a source row produced it meanwhile.
// (found with mappings, in their order) and returns how many it re-synced
// per mapping: it reads src and writes tgt.
func Repair(ctx context.Context, rep *Report, mappings []*transform.Mapping, src resync.RowLocker, tgt sink.Sink) (map[string]int, error) {
	out := map[string]int{}
	for i, mr := range rep.Mappings {
		m := mappings[i]
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
