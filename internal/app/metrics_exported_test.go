package app_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/app/apptest"
	"github.com/tandemcdc/tandem/internal/fixture/shop"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// The alert rules and the dashboard may only read metrics tandem really
// exports: these tests run tandem, scrape its /metrics over HTTP, and look
// for every tandem_* series name that deploy/prometheus/tandem-alerts.yml
// and deploy/grafana/tandem.json use (deploy's own test checks them against
// a list; this one against the real process).
//
// Some metrics only some processes export; each has its own test here:
var (
	// binlogOnly: only a MySQL / MariaDB source has an age-based retention.
	binlogOnly = []string{"tandem_source_retention_headroom_seconds"}
	// backfillOnly: only `tandem backfill` (a run with a copy) counts rows copied.
	backfillOnly = []string{"tandem_backfill_rows_total", "tandem_backfill_rows_estimated"}
	// rulesOnly: only mappings with rules have rule series
	// (TestReconcile_RulesAbsorbKnownDifferencesInReverificationSweepAndRoundTrip
	// finds them in a run).
	rulesOnly = []string{"tandem_reconcile_rule_rows"}
)

var deployedMetric = regexp.MustCompile(`\btandem_[a-z0-9_]+`)

// deployedMetrics returns the tandem_* series names the alert rules and the
// dashboard use.
func deployedMetrics(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"../../deploy/prometheus/tandem-alerts.yml", "../../deploy/grafana/tandem.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range deployedMetric.FindAllString(string(b), -1) {
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	if len(out) < 10 {
		t.Fatalf("only %d tandem metrics in the rules and the dashboard: %v", len(out), out)
	}
	return out
}

// scrapeSeries GETs http://addr/metrics and returns each series name with the
// value of its first sample: histograms as their _bucket, _sum and _count
// series, as Prometheus stores them, and under their family name too (with
// the _count), which panel descriptions name.
func scrapeSeries(addr string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	histograms := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[3] == "histogram" {
			histograms[f[2]] = true
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			rest = line[strings.LastIndexByte(line, '}')+1:]
		}
		if _, seen := out[name]; seen {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", line, err)
		}
		out[name] = v
		if base, ok := strings.CutSuffix(name, "_count"); ok && histograms[base] {
			out[base] = v
		}
	}
	return out, sc.Err()
}

// missingSeries returns the names of want that the scrape has no sample of.
func missingSeries(got map[string]float64, want []string) []string {
	var out []string
	for _, name := range want {
		if _, ok := got[name]; !ok {
			out = append(out, name)
		}
	}
	return out
}

// waitExported scrapes addr until every name of want has a sample, and
// fails t with the names still missing when within passes.
func waitExported(t *testing.T, addr string, want []string, within time.Duration) map[string]float64 {
	t.Helper()
	var got map[string]float64
	var scrapeErr error
	_, err := poll.Until(context.Background(), 250*time.Millisecond, within, func() (bool, error) {
		got, scrapeErr = scrapeSeries(addr)
		return scrapeErr == nil && len(missingSeries(got, want)) == 0, nil
	})
	if err != nil {
		t.Fatalf("after %s, /metrics (scrape error: %v) has no sample of %d names the alert rules or the dashboard use: %v",
			within, scrapeErr, len(missingSeries(got, want)), missingSeries(got, want))
	}
	return got
}

func metricsConfig(m *shop.Migration, slot string) string {
	return fmt.Sprintf(`source:
  kind: postgres
  dsn: %q
  tables: [shop.customers, shop.orders]
  postgres: { slot: %s, publication: %s }
target:
  kind: postgres
  dsn: %q
http:
  listen: 127.0.0.1:0
reconcile:
  interval: 1s
  checks:
    - name: orders_count
      source: SELECT count(*) FROM shop.orders WHERE status <> 'poison'
      target: SELECT count(*) FROM public.orders
    - name: orders_cents
      source: SELECT coalesce(sum(total * 100), 0) FROM shop.orders
      target: SELECT coalesce(sum(total_cents), 0) FROM public.orders
mappings:
  - from: shop.customers
    to:
      - table: public.customers
        key: [id]
        columns:
          id: row.id
          full_name: row.name
          email: row.email
          created_at: row.created_at
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          customer_id: row.customer_id
          # An order with status "poison" divides by zero: a dead letter.
          total_cents: 'int(decimal_round(decimal_mul(row.total, 100), 0)) / (row.status == "poison" ? 0 : 1)'
          status: 'row.status == "" ? "pending" : row.status'
          created_at: row.created_at
      - table: public.payments
        key: [order_id]
        when: row.payment_method != ""
        columns:
          order_id: row.id
          kind: row.payment_method
          card_last4: row.card_last4
`, m.SrcDSN, slot, slot, m.TgtDSN)
}

// A `tandem run` from PostgreSQL exports every metric the rules and the
// dashboard use, except the binlog-only and backfill-only ones, which it
// must not export (or they belong in no list). Changes flow through it,
// including a dead letter and a failing write (some counters have no series
// until their first event), and reconcile runs.
func TestMetricsExported_RunFromPostgres(t *testing.T) {
	ctx := context.Background()
	m := newMigration(t)
	r := start(t, parseConfig(t, metricsConfig(m, slotFor(t, m))))

	// A failing write: customers' target table is away, then back.
	if _, err := m.Tgt.Exec(ctx, `ALTER TABLE public.customers RENAME TO customers_away`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.customers (name, email) VALUES ('Ada', 'ada@example.com')`); err != nil {
		t.Fatal(err)
	}
	waitExported(t, r.Addr, []string{"tandem_apply_errors_total"}, 30*time.Second)
	testenv.WaitFor(t, "tandem_mapping_paused{mapping=shop.customers} to be 1 while its table is away", 30*time.Second, func() (bool, error) {
		v, _ := apptest.Metric(r.Reg, "tandem_mapping_paused", map[string]string{"mapping": "shop.customers"})
		return v == 1, nil
	})
	if _, err := m.Tgt.Exec(ctx, `ALTER TABLE public.customers_away RENAME TO customers`); err != nil {
		t.Fatal(err)
	}
	// An order, and a poison one for the dead-letter topic.
	if _, err := m.Src.Exec(ctx, `INSERT INTO shop.orders (customer_id, total, status, payment_method, card_last4)
		VALUES (1, 12.50, 'paid', 'card', '4242'), (1, 3.00, 'poison', '', NULL)`); err != nil {
		t.Fatal(err)
	}

	var want, notHere []string
	for _, name := range deployedMetrics(t) {
		if slices.Contains(binlogOnly, name) || slices.Contains(backfillOnly, name) || slices.Contains(rulesOnly, name) {
			notHere = append(notHere, name)
		} else {
			want = append(want, name)
		}
	}
	t.Logf("asserting %d names: %v", len(want), want)
	got := waitExported(t, r.Addr, want, 45*time.Second)
	for _, name := range notHere {
		if _, ok := got[name]; ok {
			t.Errorf("a PostgreSQL `tandem run` exports %s, listed as binlog-only or backfill-only here: move it", name)
		}
	}

	// The values of the counters and gauges the alerts use, not only their
	// series: one customer and two orders captured and written (the poison
	// one dead-lettered, its payment row not written), the failed writes
	// counted, the pause over.
	wantValues := map[string]map[string]float64{
		"tandem_capture_events_total": {"op=insert,table=shop.customers": 1, "op=insert,table=shop.orders": 2},
		"tandem_apply_rows_total":     {"op=upsert,table=public.customers": 1, "op=upsert,table=public.orders": 1, "op=upsert,table=public.payments": 1},
		"tandem_dlq_events_total":     {"mapping=shop.orders,reason=transform": 1},
		"tandem_mapping_paused":       {"mapping=shop.customers": 0, "mapping=shop.orders": 0},
	}
	gotValues := map[string]map[string]float64{}
	if _, err := poll.Until(ctx, 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		for name := range wantValues {
			gotValues[name] = apptest.Series(r.Reg, name)
		}
		return cmp.Equal(wantValues, gotValues), nil
	}); err != nil {
		t.Errorf("metric values (-want +got):\n%s", cmp.Diff(wantValues, gotValues))
	}
	if errs := apptest.Series(r.Reg, "tandem_apply_errors_total"); len(errs) != 1 || errs["reason=table_missing,table=public.customers"] < 1 {
		t.Errorf("tandem_apply_errors_total = %v, want the failed writes of public.customers only", errs)
	}

	// The consistency checks' values, per side: the poison order counts in
	// orders_cents' source side only (1250 + 300 cents against 1250).
	wantChecks := map[[2]string]float64{
		{"orders_count", "source"}: 1, {"orders_count", "target"}: 1,
		{"orders_cents", "source"}: 1550, {"orders_cents", "target"}: 1250,
	}
	gotChecks := map[[2]string]float64{}
	if _, err := poll.Until(ctx, 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		for k := range wantChecks {
			gotChecks[k], _ = apptest.Metric(r.Reg, "tandem_consistency_check_value", map[string]string{"check": k[0], "side": k[1]})
		}
		return cmp.Equal(wantChecks, gotChecks), nil
	}); err != nil {
		t.Errorf("tandem_consistency_check_value{check,side} (-want +got):\n%s", cmp.Diff(wantChecks, gotChecks))
	}

	// TandemCaptureStalled relies on the capture lag going back to 0 once a
	// PostgreSQL source has nothing more to send.
	_, err := poll.Until(ctx, 250*time.Millisecond, 45*time.Second, func() (bool, error) {
		got, err := scrapeSeries(r.Addr)
		return err == nil && got["tandem_capture_lag_seconds"] == 0, nil
	})
	if err != nil {
		t.Errorf("tandem_capture_lag_seconds did not go back to 0 on a quiet source: %v", err)
	}
}

// A MariaDB (binlog) source also exports the binlog-only metrics.
func TestMetricsExported_RunFromMariaDBHasBinlogRetention(t *testing.T) {
	m := newCartMigration(t, "postgres")
	r := start(t, m.cfg)
	if err := cartWorkload(context.Background(), m.src, 5, 20, 0); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range deployedMetrics(t) {
		if slices.Contains(binlogOnly, name) {
			want = append(want, name)
		}
	}
	if len(want) != len(binlogOnly) {
		t.Errorf("the rules and the dashboard use %v of the binlog-only metrics %v: drop the others from the list", want, binlogOnly)
	}
	waitExported(t, r.Addr, append(want, "tandem_capture_events_total", "tandem_apply_rows_total"), 45*time.Second)
}

// `tandem backfill` exports the backfill-only metrics while it copies; they
// are scraped as the copy ends, before its HTTP server stops.
func TestMetricsExported_BackfillHasProgress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := newMigration(t)
	w := &shop.Workload{Src: m.Src, Seed: 3}
	if err := w.History(ctx, 30); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range deployedMetrics(t) {
		if slices.Contains(backfillOnly, name) {
			want = append(want, name)
		}
	}
	if len(want) != len(backfillOnly) {
		t.Errorf("the rules and the dashboard use %v of the backfill-only metrics %v: drop the others from the list", want, backfillOnly)
	}
	cfg := parseConfig(t, shop.Config(shop.ConfigOptions{Slot: slotFor(t, m), SourceDSN: m.SrcDSN, TargetDSN: m.TgtDSN}))
	addr := make(chan string, 1)
	var got map[string]float64
	var scrapeErr error
	err := app.Run(ctx, cfg, app.Options{
		Roles:  app.Roles{Capture: true, Apply: true},
		Logger: slog.New(slog.NewTextHandler(apptest.LogWriter{TB: t}, nil)),
		Ready:  func(a string) { addr <- a },
		Backfill: &app.BackfillOptions{Done: func(backfill.Summary) {
			select {
			case a := <-addr:
				got, scrapeErr = scrapeSeries(a)
			case <-ctx.Done():
				scrapeErr = ctx.Err()
			}
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if scrapeErr != nil {
		t.Fatal(scrapeErr)
	}
	if miss := missingSeries(got, want); len(miss) > 0 {
		t.Errorf("`tandem backfill`'s /metrics has no sample of %v", miss)
	}
	if got["tandem_backfill_rows_total"] == 0 {
		t.Error("tandem_backfill_rows_total is 0 after copying the history")
	}
}
