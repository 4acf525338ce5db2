package cutover

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/sink"
)

// Metrics are cutover's metrics named in CONTRACT.md.
type Metrics struct {
	Owner     *prometheus.GaugeVec     // tandem_cohort_owner{cohort,owner}
	Fence     *prometheus.HistogramVec // tandem_switch_fence_seconds{direction}
	Misrouted *prometheus.CounterVec   // tandem_cutover_misrouted_writes_total{cohort,side}
}

// NewMetrics registers the metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Owner: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tandem_cohort_owner",
			Help: "1 for the side (old, new, switching) that owns the cohort's writes now, as the new database stores it.",
		}, []string{"cohort", "owner"}),
		Fence: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tandem_switch_fence_seconds",
			Help:    "How long a switch fenced its cohorts' writes, by direction (forward: to the new schema, back: to the old).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10},
		}, []string{"direction"}),
		Misrouted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_cutover_misrouted_writes_total",
			Help: "Writes the application made on the side that does not own their cohort, by cohort and side.",
		}, []string{"cohort", "side"}),
	}
	if reg != nil {
		reg.MustRegister(m.Owner, m.Fence, m.Misrouted)
	}
	return m
}

// Init makes the fence histogram's series of both directions exist, at
// zero, so that dashboards and alert rules find them before the first
// switch.
func (m *Metrics) Init() {
	for _, dir := range []string{"forward", "back"} {
		m.Fence.WithLabelValues(dir)
	}
}

// InitWithoutCutover is Init for a migration without cutover: one cohort,
// "default", owned by the old side, with no misrouted write.
func (m *Metrics) InitWithoutCutover() {
	m.Init()
	m.SetOwners([]sink.Ownership{{Cohort: "default", Owner: sink.OwnerOld}})
	for _, side := range []sink.Side{sink.SideOld, sink.SideNew} {
		m.Misrouted.WithLabelValues("default", string(side))
	}
}

// SetOwners sets tandem_cohort_owner from the stored owners: 1 for each
// cohort's owner, 0 for the other two.
func (m *Metrics) SetOwners(owners []sink.Ownership) {
	for _, o := range owners {
		for _, ow := range []sink.Owner{sink.OwnerOld, sink.OwnerNew, sink.OwnerSwitching} {
			v := 0.0
			if o.Owner == ow {
				v = 1
			}
			m.Owner.WithLabelValues(o.Cohort, string(ow)).Set(v)
		}
	}
}
