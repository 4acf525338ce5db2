package reconcile

import (
	"context"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

// DeadLetterReader is a target that stores dead letters (both sinks, as
// sink.DeadLetterStore): a Reconciler whose target is one says, for each
// unmapped row, whether a dead letter of it is stored (Drift.DeadLetter).
type DeadLetterReader interface {
	// DeadLetters returns the stored dead letters of mapping, oldest first
	// (limit 0: all of them). Blocks; safe for concurrent use.
	DeadLetters(ctx context.Context, mapping string, limit int) ([]sink.StoredDeadLetter, error)
}

// markDeadLetters sets DeadLetter on rep's unmapped rows, of mapping
// whose source table is st: whether a dead letter of the same source key
// is stored. Left unknown (nil) when the dead letters cannot be read.
func (r *Reconciler) markDeadLetters(ctx context.Context, mapping string, st *change.Schema, rep *MappingReport) {
	if r.dlq == nil || rep.Unmapped == 0 {
		return
	}
	dls, err := r.dlq.DeadLetters(ctx, mapping, 0)
	if err != nil {
		r.log.Warn("reconcile: cannot read the dead letters to tell which unmapped rows have one", "mapping", mapping, "err", err)
		return
	}
	keys := make(map[string]bool, len(dls))
	for _, d := range dls {
		ev, err := change.Decode(d.Key, d.Value)
		if err != nil || len(ev.Key) == 0 || ev.Table != st.Name {
			continue
		}
		keys[change.KeyText(ev.Key, ev.KeyRow())] = true
	}
	for _, ds := range [][]Drift{rep.Drifted, rep.Samples} {
		for k := range ds {
			if ds[k].Kind == KindUnmapped && ds[k].SourceKey != nil {
				has := keys[change.KeyText(st.Key, ds[k].SourceKey)]
				ds[k].DeadLetter = &has
			}
		}
	}
}
