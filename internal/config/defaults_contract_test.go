package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// An empty cutover section takes CONTRACT.md's defaults, written out here
// as literals ("fence_timeout: 2s", "guard: report", "max_lag_seconds: 5",
// the reverse stream's tandem_back slot and publication and server_id
// 4243), not read from the code under test: TestParse_CutoverAndCohorts
// sets guard itself, so no test held guard's default before.
func TestParse_EmptyCutoverSectionTakesTheContractsDefaults(t *testing.T) {
	for _, section := range []string{"cutover: {}\n", "cutover:\n  reverse: {}\n"} {
		c := mustParse(t, minimal+section, nil)
		want := &Cutover{
			FenceTimeout:  2 * time.Second,
			Guard:         "report",
			MaxLagSeconds: 5,
			Reverse: Reverse{
				Postgres: ReversePostgres{Slot: "tandem_back", Publication: "tandem_back"},
				MySQL:    ReverseMySQL{ServerID: 4243},
			},
			Pos: at(15, 10),
		}
		if section != "cutover: {}\n" {
			want.Pos = at(16, 3)
		}
		if diff := cmp.Diff(want, c.Cutover); diff != "" {
			t.Errorf("%q: cutover (-contract +got):\n%s", section, diff)
		}
	}
}
