package reconcile

import (
	"context"
	"sort"

	"github.com/tandemcdc/tandem/internal/change"
)

// mergePaged compares, in key order, what source rows should be in output
// j of mapping i (pages from nextWant) with the target's rows (pages from
// nextGot), each read a page at a time, and hands each merged stretch's
// differences to emit. It holds at most a page of each side: a side that
// has more pages is merged up to its page's last key, so a target that
// holds a million rows its source no longer has (a large DELETE not yet
// applied), or a source range that grew by a large INSERT since it was
// summarised, costs a page at a time, not the whole range. next returns a
// page in key order and whether more may follow.
func (r *Reconciler) mergePaged(ctx context.Context, i, j int, st *change.Schema, cols map[string]column,
	nextWant func(context.Context) ([]expected, bool, error),
	nextGot func(context.Context) ([]map[string]any, bool, error),
	emit func([]*suspect) error) error {
	key := r.mappings[i].Outputs()[j].Key
	var (
		want              []expected
		got               []map[string]any
		wantMore, gotMore = true, true
		err               error
	)
	for {
		for len(want) == 0 && wantMore {
			if want, wantMore, err = nextWant(ctx); err != nil {
				return err
			}
		}
		for len(got) == 0 && gotMore {
			if got, gotMore, err = nextGot(ctx); err != nil {
				return err
			}
		}
		if len(want) == 0 && len(got) == 0 {
			return nil
		}
		// Merge up to the lower of the last keys of the sides with more
		// pages: everything of either side up to it is in hand.
		var bound map[string]any
		if wantMore {
			bound = want[len(want)-1].want
		}
		if gotMore && (bound == nil || compareKeys(got[len(got)-1], bound, key) < 0) {
			bound = got[len(got)-1]
		}
		wantHead, gotHead := want, got
		if bound == nil {
			want, got = nil, nil
		} else {
			n := sort.Search(len(want), func(k int) bool { return compareKeys(want[k].want, bound, key) > 0 })
			wantHead, want = want[:n], want[n:]
			n = sort.Search(len(got), func(k int) bool { return compareKeys(got[k], bound, key) > 0 })
			gotHead, got = got[:n], got[n:]
		}
		if err := emit(r.mergeRows(i, j, st, wantHead, gotHead, cols)); err != nil {
			return err
		}
	}
}
