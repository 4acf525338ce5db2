package apply

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the apply-side metrics named in CONTRACT.md, shared by the
// appliers and the backfill's writes.
type Metrics struct {
	Rows    *prometheus.CounterVec // tandem_apply_rows_total{table,op}
	Errors  *prometheus.CounterVec // tandem_apply_errors_total{table,reason}
	Lag     *prometheus.GaugeVec   // tandem_replication_lag_seconds{mapping,direction}
	DLQ     *prometheus.CounterVec // tandem_dlq_events_total{mapping,reason}
	Paused  *prometheus.GaugeVec   // tandem_mapping_paused{mapping}
	Batches *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_apply_rows_total",
			Help: "Target row writes committed, by target table and operation (upsert, insert_if_absent, delete).",
		}, []string{"table", "op"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_apply_errors_total",
			Help: "Failed attempts to apply a batch to the target, by target table and reason.",
		}, []string{"table", "reason"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_replication_lag_seconds",
			Help: "Now minus the source commit time of the last applied change; 0 when caught up and idle.",
		}, []string{"mapping", "direction"}),
		DLQ: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_dlq_events_total",
			Help: "Changes sent to the dead-letter topic, by mapping and reason.",
		}, []string{"mapping", "reason"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_mapping_paused",
			Help: "1 while a mapping is stopped by an error it retries, else 0.",
		}, []string{"mapping"}),
		Batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_apply_batch_duration_seconds",
			Help:    "Time to write one batch and its offsets to the target.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"mapping"}),
	}
	if reg != nil {
		reg.MustRegister(m.Rows, m.Errors, m.Lag, m.DLQ, m.Paused, m.Batches)
	}
	return m
}
