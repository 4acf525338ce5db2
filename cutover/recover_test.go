package cutover

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/sink"
)

func TestRepair_DecidesEachStateAKilledSwitchLeaves(t *testing.T) {
	stale := time.Now().Add(-2 * StaleSwitching)
	young := time.Now()
	row := func(owner sink.Owner, to sink.Side, v int64, at time.Time) sink.Ownership {
		return sink.Ownership{Cohort: "7", Owner: owner, To: to, Version: v, ChangedAt: at}
	}
	none := sink.Ownership{}
	tests := []struct {
		name   string
		old    sink.Ownership
		new    sink.Ownership
		want   *Repair // nil: nothing written
		reason string
	}{
		{name: "killed before the fence committed, young: a live switch may own it", old: none, new: row(sink.OwnerSwitching, sink.SideNew, 1, young)},
		{name: "killed before the fence committed, stale: undone", old: none, new: row(sink.OwnerSwitching, sink.SideNew, 1, stale),
			want: &Repair{Side: sink.SideNew, Now: sink.Ownership{Owner: sink.OwnerOld, Version: 1}}},
		{name: "killed after the fence committed: finished", old: row(sink.OwnerNew, "", 1, young), new: row(sink.OwnerSwitching, sink.SideNew, 1, young),
			want: &Repair{Side: sink.SideNew, Now: sink.Ownership{Owner: sink.OwnerNew, Version: 1}}},
		{name: "a rollback killed after the fence committed: finished", old: row(sink.OwnerSwitching, sink.SideOld, 2, young), new: row(sink.OwnerOld, "", 2, young),
			want: &Repair{Side: sink.SideOld, Now: sink.Ownership{Owner: sink.OwnerOld, Version: 2}}},
		{name: "a rollback killed before the fence committed, stale: undone", old: row(sink.OwnerSwitching, sink.SideOld, 2, stale), new: row(sink.OwnerNew, "", 1, young),
			want: &Repair{Side: sink.SideOld, Now: sink.Ownership{Owner: sink.OwnerNew, Version: 2}}},
		{name: "an undone switch's later version is copied", old: row(sink.OwnerOld, "", 0, young), new: row(sink.OwnerOld, "", 1, young),
			want: &Repair{Side: sink.SideOld, Now: sink.Ownership{Owner: sink.OwnerOld, Version: 1}}},
		{name: "agreeing rows: nothing", old: row(sink.OwnerNew, "", 3, young), new: row(sink.OwnerNew, "", 3, young)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := repair("7", tt.old, tt.new)
			if tt.want == nil {
				if ok {
					t.Fatalf("repair = %+v, want none", r)
				}
				return
			}
			if !ok {
				t.Fatal("no repair, want one")
			}
			tt.want.Cohort, tt.want.Now.Cohort = "7", "7"
			got := Repair{Cohort: r.Cohort, Side: r.Side, Now: sink.Ownership{Cohort: r.Now.Cohort, Owner: r.Now.Owner, To: r.Now.To, Version: r.Now.Version}}
			if diff := cmp.Diff(*tt.want, got); diff != "" {
				t.Errorf("repair (-want +got):\n%s", diff)
			}
		})
	}
}
