package reconcile

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the reconciler's metrics (CONTRACT.md names, plus
// tandem_reconcile_unsettled_rows, which keeps rows still in flight or
// changing out of the drift gauge that alerts read).
type Metrics struct {
	Drift       *prometheus.GaugeVec   // tandem_drift_rows{mapping,kind}: a DriftKind
	RuleRows    *prometheus.GaugeVec   // tandem_reconcile_rule_rows{mapping,rule}: differences each rule absorbed in the last sweep
	Unsettled   *prometheus.GaugeVec   // tandem_reconcile_unsettled_rows{mapping,state}: state in_flight or suspended
	Checked     *prometheus.CounterVec // tandem_reconcile_rows_checked_total{mapping}
	LastSuccess *prometheus.GaugeVec   // tandem_reconcile_last_success_timestamp_seconds{mapping}
	CheckValue  *prometheus.GaugeVec   // tandem_consistency_check_value{check,side}
	Interval    *prometheus.GaugeVec   // tandem_reconcile_interval_seconds{mapping}: reconcile.interval
	Duration    *prometheus.GaugeVec   // tandem_reconcile_sweep_duration_seconds{mapping}: the last completed sweep's
}

// DriftKind says how a row drifted: the kind label of tandem_drift_rows.
type DriftKind string

// Drift kinds.
const (
	KindMissing  DriftKind = "missing"  // the source row maps to a target row that is not there
	KindExtra    DriftKind = "extra"    // a target row no source row maps to
	KindMismatch DriftKind = "mismatch" // the target row is there with other values
	// KindRoundTrip is a source row the target rows, equal to what the
	// mapping makes of it, do not give back through the mapping's inverse
	// (only for mappings with an inverse).
	KindRoundTrip DriftKind = "round_trip"
	// KindUnmapped is a source row the mapping fails on (an evaluation
	// error): the target should have its rows and cannot. Its change may
	// be a dead letter, or one dropped, or the row failed in the backfill.
	KindUnmapped DriftKind = "unmapped"
)

// NewMetrics registers the reconciler's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_drift_rows",
			Help: "Rows that differ between the source (mapped) and the target after the pipeline caught up, by mapping and kind (missing, extra, mismatch; unmapped: source rows the mapping fails on; round_trip for a mapping with an inverse: source rows it does not give back), as of the last completed sweep.",
		}, []string{"mapping", "kind"}),
		RuleRows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_reconcile_rule_rows",
			Help: "Differences each known-difference rule of a mapping (its rules) absorbed in the last completed sweep, by mapping and rule: a rule that hides too much shows here.",
		}, []string{"mapping", "rule"}),
		Unsettled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_reconcile_unsettled_rows",
			Help: "Rows that differed but not for long enough to be drift, by mapping and state: in_flight (the stream caught up and fixed them) or suspended (the source row kept changing while re-checked).",
		}, []string{"mapping", "state"}),
		Checked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_reconcile_rows_checked_total",
			Help: "Source and target rows compared, by mapping.",
		}, []string{"mapping"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_reconcile_last_success_timestamp_seconds",
			Help: "Unix time at which the last full sweep of a mapping completed.",
		}, []string{"mapping"}),
		CheckValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_consistency_check_value",
			Help: "The number a consistency query (reconcile.checks) returned, by check and side (source, target).",
		}, []string{"check", "side"}),
		Interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_reconcile_interval_seconds",
			Help: "reconcile.interval: how often sweeps of a mapping start (a sweep longer than it starts when the last one ends).",
		}, []string{"mapping"}),
		Duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_reconcile_sweep_duration_seconds",
			Help: "How long the last completed sweep of a mapping took, re-checks included.",
		}, []string{"mapping"}),
	}
	if reg != nil {
		reg.MustRegister(m.Drift, m.RuleRows, m.Unsettled, m.Checked, m.LastSuccess, m.CheckValue, m.Interval, m.Duration)
	}
	return m
}

// Init creates a mapping's series, so dashboards and alerts see them (at 0)
// before its first sweep ends.
func (m *Metrics) Init(mapping string) {
	for _, k := range []DriftKind{KindMissing, KindExtra, KindMismatch, KindUnmapped} {
		m.Drift.WithLabelValues(mapping, string(k))
	}
	for _, s := range []string{StateInFlight, StateSuspended} {
		m.Unsettled.WithLabelValues(mapping, s)
	}
	m.Checked.WithLabelValues(mapping)
}

// InitRules creates the series of a mapping's rules, by name, at 0.
func (m *Metrics) InitRules(mapping string, rules []string) {
	for _, r := range rules {
		m.RuleRows.WithLabelValues(mapping, r)
	}
}
