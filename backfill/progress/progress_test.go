package progress

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/change"
)

func tbl(name string) change.Table { return change.Table{Schema: "shop", Name: name} }

func TestLines_BarPercentRateAndETA(t *testing.T) {
	tests := []struct {
		name string
		p    backfill.TableProgress
		want string
	}{
		{"copying: durable, in flight, ETA from the rate",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateCopying, Durable: 250, Emitted: 500, Estimated: 1000, RowsPerSecond: 50},
			"shop.orders [#######++++++++...............]  25%      250 / 1000           50/s  ETA 15s"},
		{"unknown estimate: no bar, no ETA",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateCopying, Durable: 40, Emitted: 40, RowsPerSecond: 10},
			"shop.orders [..............................]    ?       40 / ?              10/s  ETA ?"},
		{"stale statistics (copied more than estimated): unknown",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateCopying, Durable: 120, Emitted: 150, Estimated: 100, RowsPerSecond: 10},
			"shop.orders [..............................]    ?      120 / ?              10/s  ETA ?"},
		{"no rate yet",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateCopying, Emitted: 100, Estimated: 1000},
			"shop.orders [+++...........................]   0%        0 / 1000            0/s  ETA ?"},
		{"0 rows, done",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateDone, Elapsed: 30 * time.Millisecond},
			"shop.orders [##############################] 100%        0 / 0               0/s  done in 30ms"},
		{"done, stale estimate: measured against the rows copied, throttled shown",
			backfill.TableProgress{Table: tbl("orders"), State: backfill.StateDone, Durable: 2_500_000, Emitted: 2_500_000, Estimated: 2_000_000,
				RowsPerSecond: 41_666.6, Elapsed: 60 * time.Second, Throttled: 12_345 * time.Millisecond},
			"shop.orders [##############################] 100%     2.5M / 2.5M        41667/s  done in 1m0s  throttled 12s"},
		{"waiting", backfill.TableProgress{Table: tbl("orders"), State: backfill.StateWaiting, Estimated: 12_000_000},
			"shop.orders [..............................]   0%        0 / 12.0M           0/s  waiting"},
		{"flushing", backfill.TableProgress{Table: tbl("orders"), State: backfill.StateFlushing, Durable: 90, Emitted: 100, Estimated: 100, RowsPerSecond: 9, Throttled: 1500 * time.Millisecond},
			"shop.orders [###########################+++]  90%       90 / 100             9/s  flushing  throttled 1.5s"},
		{"skipped", backfill.TableProgress{Table: tbl("orders"), State: backfill.StateSkipped, Durable: 7, Emitted: 7, Estimated: 7},
			"shop.orders [##############################] 100%        7 / 7               0/s  copied before (--restart copies it again)"},
		{"failed", backfill.TableProgress{Table: tbl("orders"), State: backfill.StateFailed, Durable: 10, Emitted: 20, Estimated: 40},
			"shop.orders [#######++++++++...............]  25%       10 / 40              0/s  failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Lines([]backfill.TableProgress{tc.p})
			if diff := cmp.Diff([]string{tc.want}, got); diff != "" {
				t.Errorf("frame (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLines_SeveralTablesAlignAndTotal(t *testing.T) {
	got := Lines([]backfill.TableProgress{
		{Table: tbl("orders"), State: backfill.StateCopying, Durable: 300, Emitted: 300, Estimated: 600, RowsPerSecond: 100},
		{Table: tbl("customers"), State: backfill.StateDone, Durable: 100, Emitted: 100, Estimated: 90, RowsPerSecond: 50, Elapsed: 2 * time.Second},
		{Table: tbl("payments"), State: backfill.StateWaiting, Estimated: 300},
	})
	want := []string{
		"shop.orders    [###############...............]  50%      300 / 600           100/s  ETA 3s",
		"shop.customers [##############################] 100%      100 / 100            50/s  done in 2s",
		"shop.payments  [..............................]   0%        0 / 300             0/s  waiting",
		// 400 of 1000 at 150 rows/s: 4 s to go.
		"total          [############..................]  40%      400 / 1000          150/s  ETA 4s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
}

func TestDisplay_RedrawsInPlaceAndKeepsLogsAbove(t *testing.T) {
	var out, logs bytes.Buffer
	d := NewDisplay(&out)
	p := backfill.TableProgress{Table: tbl("orders"), State: backfill.StateCopying, Durable: 0, Emitted: 0, Estimated: 100}
	if err := d.Draw([]backfill.TableProgress{p}); err != nil {
		t.Fatal(err)
	}
	first := "\x1b[2Kshop.orders [..............................]   0%        0 / 100             0/s  ETA ?\n\x1b[J"
	if diff := cmp.Diff(first, out.String()); diff != "" {
		t.Errorf("first frame (-want +got):\n%q", diff)
	}
	out.Reset()
	p.Durable, p.Emitted, p.RowsPerSecond = 50, 50, 25
	if err := d.Draw([]backfill.TableProgress{p}); err != nil {
		t.Fatal(err)
	}
	second := "\x1b[1A\x1b[2Kshop.orders [###############...............]  50%       50 / 100            25/s  ETA 2s\n\x1b[J"
	if diff := cmp.Diff(second, out.String()); diff != "" {
		t.Errorf("second frame: cursor up one line, then the line again (-want +got):\n%s", diff)
	}
	// A log line: the frame is erased, the line written, the frame drawn under it.
	out.Reset()
	if _, err := d.Above(&logs).Write([]byte("level=INFO msg=hello\n")); err != nil {
		t.Fatal(err)
	}
	if logs.String() != "level=INFO msg=hello\n" {
		t.Errorf("log written %q", logs.String())
	}
	redrawn := "\x1b[1A\x1b[J\x1b[2Kshop.orders [###############...............]  50%       50 / 100            25/s  ETA 2s\n\x1b[J"
	if diff := cmp.Diff(redrawn, out.String()); diff != "" {
		t.Errorf("around a log line (-want +got):\n%s", diff)
	}
}

func TestDisplay_WatchDrawsAFinalFrameWhenStopped(t *testing.T) {
	var out bytes.Buffer
	d := NewDisplay(&out)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped at once: one frame, then the final one
	calls := 0
	d.Watch(ctx, time.Hour, func() []backfill.TableProgress {
		calls++
		return []backfill.TableProgress{{Table: tbl("orders"), State: backfill.StateDone, Durable: 3, Emitted: 3, Elapsed: time.Second}}
	})
	if calls != 2 || !strings.HasSuffix(out.String(), "done in 1s\n\x1b[J") {
		t.Errorf("%d snapshots, output %q; want 2 and a final done frame", calls, out.String())
	}
}

func TestPrintEstimate(t *testing.T) {
	rep := &backfill.EstimateReport{
		Tables: []backfill.TableEstimate{
			{Table: tbl("orders"), Rows: 1_000_000, Sampled: 30_000, SampleTook: 3 * time.Second, RowsPerSecond: 10_000, BytesPerRow: 120.4,
				Projected: 100 * time.Second, Limited: 1000 * time.Second},
			{Table: tbl("customers"), Rows: 300, Exact: true, Sampled: 300, SampleTook: 20 * time.Millisecond, RowsPerSecond: 15_000, BytesPerRow: 64,
				Projected: 20 * time.Millisecond, Limited: 300 * time.Millisecond},
			{Table: tbl("notes"), Rows: 5000, AtLeast: true, Sampled: 5000, SampleTook: 3 * time.Second, RowsPerSecond: 1666.7, BytesPerRow: 2048,
				Projected: 3 * time.Second, Limited: 5 * time.Second},
		},
		Rows: 1_005_300, Projected: 100 * time.Second, Limited: 1005 * time.Second, Parallel: 4,
	}
	var out bytes.Buffer
	if err := PrintEstimate(&out, rep, 1000); err != nil {
		t.Fatal(err)
	}
	want := `table           rows                     sampled      read rate  bytes/row  projected  at max 1000/s
shop.orders     ~1.0M                    30000 in 3s  10000/s    120        1m40s      16m40s
shop.customers  300 (exact)              300 in 20ms  15000/s    64         20ms       300ms
shop.notes      >= 5000 (no statistics)  5000 in 3s   1667/s     2048       3s         5s
total           1.0M                                                        1m40s      16m45s
Projections count reading the source only, 4 tables at once, largest first: writing to the
target comes on top, so the copy takes at least this long (the live display of ` + "`tandem backfill`" + `
shows the real rate within seconds). Nothing was written.
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("estimate (-want +got):\n%s", diff)
	}
}
