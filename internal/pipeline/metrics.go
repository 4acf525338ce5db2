package pipeline

import "github.com/prometheus/client_golang/prometheus"

// applyMetrics are the apply-side metrics named in CONTRACT.md.
type applyMetrics struct {
	rows    *prometheus.CounterVec // tandem_apply_rows_total{table,op}
	errors  *prometheus.CounterVec // tandem_apply_errors_total{table,reason}
	lag     *prometheus.GaugeVec   // tandem_replication_lag_seconds{mapping}
	dlq     *prometheus.CounterVec // tandem_dlq_events_total{mapping,reason}
	paused  *prometheus.GaugeVec   // tandem_mapping_paused{mapping}
	batches *prometheus.HistogramVec
}

func newApplyMetrics(reg prometheus.Registerer) *applyMetrics {
	m := &applyMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_apply_rows_total",
			Help: "Target row writes committed, by target table and operation (upsert, insert_if_absent, delete).",
		}, []string{"table", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_apply_errors_total",
			Help: "Failed attempts to apply a batch to the target, by target table and reason.",
		}, []string{"table", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_replication_lag_seconds",
			Help: "Now minus the source commit time of the last applied change; 0 when caught up and idle.",
		}, []string{"mapping"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_dlq_events_total",
			Help: "Changes sent to the dead-letter topic, by mapping and reason.",
		}, []string{"mapping", "reason"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_mapping_paused",
			Help: "1 while a mapping is stopped by an error it retries, else 0.",
		}, []string{"mapping"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_apply_batch_duration_seconds",
			Help:    "Time to write one batch and its offsets to the target.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"mapping"}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.errors, m.lag, m.dlq, m.paused, m.batches)
	}
	return m
}
