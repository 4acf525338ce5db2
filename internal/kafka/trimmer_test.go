package kafka

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTrimmer_TrimsOnlyWhatEveryReadingGroupApplied(t *testing.T) {
	tr := NewTrimmer(map[string][]string{"orders": {"g1", "g2"}, "customers": {"g3"}})
	tr.Commit("g1", "orders", 0, 10)
	tr.Commit("g3", "customers", 1, 7)
	if diff := cmp.Diff(map[string]map[int32]int64{"customers": {1: 7}}, tr.due()); diff != "" {
		t.Errorf("before g2 committed (-want +got):\n%s", diff)
	}
	tr.Commit("g2", "orders", 0, 4)
	tr.Commit("g1", "orders", 0, 8) // older: ignored
	due := tr.due()
	if diff := cmp.Diff(map[string]map[int32]int64{"orders": {0: 4}, "customers": {1: 7}}, due); diff != "" {
		t.Errorf("both committed (-want +got):\n%s", diff)
	}
	tr.done(due)
	if got := tr.due(); len(got) != 0 {
		t.Errorf("nothing moved since the trim, but due = %v", got)
	}
	tr.Commit("g2", "orders", 0, 12)
	if diff := cmp.Diff(map[string]map[int32]int64{"orders": {0: 10}}, tr.due()); diff != "" {
		t.Errorf("after g2 moved (-want +got):\n%s", diff)
	}
}
