package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse_CutoverAndCohorts(t *testing.T) {
	c := mustParse(t, head+`mappings:
  - from: shop.orders
    cohort: row.merchant_id
    to:
      - table: public.orders
        key: [id]
        cohort: row.shop_id
        columns: {id: row.id, shop_id: row.merchant_id}
  - from: shop.customers
    to:
      - table: public.customers
        key: [id]
        columns: {id: row.id}
cutover:
  guard: reject
`, nil)
	want := &Cutover{
		FenceTimeout:  2 * time.Second,
		Guard:         GuardReject,
		MaxLagSeconds: 5,
		Reverse: Reverse{
			Postgres: ReversePostgres{Slot: "tandem_back", Publication: "tandem_back"},
			MySQL:    ReverseMySQL{ServerID: 4243},
		},
		Pos: at(22, 3),
	}
	if diff := cmp.Diff(want, c.Cutover); diff != "" {
		t.Errorf("cutover mismatch (-want +got):\n%s", diff)
	}
	cohorts := []*Expr{c.Mappings[0].Cohort, c.Mappings[0].To[0].Cohort, c.Mappings[1].Cohort, c.Mappings[1].To[0].Cohort}
	wantCohorts := []*Expr{{Text: "row.merchant_id", Pos: at(10, 13)}, {Text: "row.shop_id", Pos: at(14, 17)}, nil, nil}
	if diff := cmp.Diff(wantCohorts, cohorts); diff != "" {
		t.Errorf("cohorts mismatch (-want +got):\n%s", diff)
	}
}

func TestParse_NoCutoverSectionIsNil(t *testing.T) {
	if c := mustParse(t, head, nil); c.Cutover != nil {
		t.Errorf("Cutover = %+v, want nil without a cutover section", c.Cutover)
	}
}
