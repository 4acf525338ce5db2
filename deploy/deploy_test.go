// Package deploy holds what operators deploy beside tandem: Prometheus alert
// rules (deploy/prometheus) with their promtool unit tests. Its Go test runs
// the real promtool, so `make test` fails when a rule breaks.
package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run `make deps` (scripts/deps.sh installs Debian's prometheus package)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func TestAlertRules_PassPromtoolCheckAndUnitTests(t *testing.T) {
	promtool(t, "check", "rules", "tandem-alerts.yml")
	promtool(t, "test", "rules", "tandem-alerts_test.yml")
}

// The rules may only use metric names tandem exports (CONTRACT.md), so a
// renamed metric cannot silently disable an alert.
func TestAlertRules_UseOnlyContractMetrics(t *testing.T) {
	known := map[string]bool{
		"tandem_capture_events_total": true, "tandem_capture_lag_seconds": true, "tandem_replication_lag_seconds": true,
		"tandem_apply_rows_total": true, "tandem_apply_errors_total": true, "tandem_dlq_events_total": true,
		"tandem_backfill_rows_total": true, "tandem_backfill_rows_estimated": true, "tandem_drift_rows": true,
		"tandem_reconcile_rows_checked_total": true, "tandem_reconcile_last_success_timestamp_seconds": true,
		"tandem_consistency_check_value": true, "tandem_source_retention_headroom_bytes": true, "tandem_mapping_paused": true,
		// Added with the MySQL source (binlogs expire by age); not yet in CONTRACT.md's table.
		"tandem_source_retention_headroom_seconds": true,
	}
	rules, err := os.ReadFile("prometheus/tandem-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`tandem_[a-z_]+`).FindAllString(string(rules), -1) {
		if !known[name] {
			t.Errorf("rule uses %s, which is not a CONTRACT.md metric", name)
		}
	}
}
