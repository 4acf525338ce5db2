package backfill

import (
	"context"
	"testing"
	"time"
)

// loadOnly is a RoleReader whose only method pause calls is Load: the
// statements the source runs, counted (the real readers' Load is tested
// against their servers: TestTableReader_LoadCounts...).
type loadOnly struct {
	RoleReader // nil: any other call panics
	n          int
	calls      *int
}

func (r loadOnly) Load(context.Context) (int, error) {
	*r.calls++
	return r.n, nil
}

// The copy pauses while the stream lags more than backfill.max_lag_seconds
// or the source runs more statements than backfill.max_source_load, each
// limit itself not a pause, and -1 turning either check off (README: "-1
// turning either off"); without a lag in this process it pauses for load
// only.
func TestPause_ForLagOrSourceLoadAboveTheirLimitsAndNeverAtMinusOne(t *testing.T) {
	for _, tc := range []struct {
		name          string
		lag           time.Duration // -1: no lag in this process
		maxLag, load  int
		maxLoad       int
		want          string
		wantLoadReads int // a lag over its limit needs no look at the load; -1 never looks
	}{
		{"both under", 29 * time.Second, 30, 31, 32, "", 1},
		{"both at their limits", 30 * time.Second, 30, 32, 32, "", 1},
		{"lag over", 31 * time.Second, 30, 0, 32, "replication lag 31s > backfill.max_lag_seconds 30", 0},
		{"load over", 0, 30, 33, 32, "source load: 33 statements running > backfill.max_source_load 32", 1},
		{"lag off at -1", time.Hour, -1, 0, 32, "", 1},
		{"load off at -1", 0, 30, 1000, -1, "", 0},
		{"both off", time.Hour, -1, 1000, -1, "", 0},
		{"no lag in this process", -1, 30, 0, 32, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			cfg := RoleConfig{Reader: loadOnly{n: tc.load, calls: &calls}, MaxLagSeconds: tc.maxLag, MaxSourceLoad: tc.maxLoad}
			if tc.lag >= 0 {
				cfg.Lag = func() time.Duration { return tc.lag }
			}
			got, err := pause(cfg)(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("pause = %q, want %q", got, tc.want)
			}
			if calls != tc.wantLoadReads {
				t.Errorf("the source's load read %d times, want %d", calls, tc.wantLoadReads)
			}
		})
	}
}
