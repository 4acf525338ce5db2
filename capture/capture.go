package capture

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tandemcdc/tandem/internal/change"
)

// Source streams committed changes from a source database.
type Source interface {
	// Stream blocks, calling emit with each committed transaction in commit
	// order, starting strictly after the last acknowledged position (a
	// capturer keeps that position where the source database keeps it, a
	// replication slot, or in its own checkpoint). A large transaction may
	// arrive as several batches: all but the last have a nil Pos. emit may
	// block to apply backpressure. Stream returns ctx.Err() when cancelled,
	// or the first error it cannot recover from. Not safe for concurrent use.
	Stream(ctx context.Context, emit func(context.Context, change.Batch) error) error
	// Ack records that every change up to and including pos is durable
	// downstream, so the source may release it. It does not block; the
	// capturer forwards it to the source on its own schedule. Positions must
	// be ones this Source emitted; an older position than one already acked
	// is ignored. Safe for concurrent use with Stream.
	Ack(pos change.Position) error
	// Close releases connections. Safe to call after Stream returned.
	Close() error
}

// ErrPositionLost is wrapped by Stream when the source no longer holds the
// changes after the acknowledged position (binlog purged, slot
// invalidated). Retrying cannot help: only a new backfill brings the target
// back in step, so the pipeline stops.
var ErrPositionLost = errors.New("the source no longer has the changes after tandem's position")

// ErrSourceTaken is wrapped by Stream when another live reader holds the
// source position: a second tandem on the same replication slot, or on the
// same capture lease of a binlog source. Taking it over would split the
// stream between two pipelines, so a `tandem run` stops instead of
// retrying, and a `tandem capture` waits as the holder's standby, trying
// again until the holder is gone (internal/kafka.PublisherConfig.Standby).
var ErrSourceTaken = errors.New("another live reader holds the source position")

// Starter is implemented by a Source that says when a Stream call has
// taken hold of the source (the replication slot acquired, the lease held)
// and reads its stream: a standby reports its takeover by it, even while
// the source is quiet and nothing is emitted.
type Starter interface {
	// OnStart sets f, which each later Stream call calls once, from its
	// own goroutine, when it starts reading the stream and before its
	// first batch. Call it before Stream, not concurrently with it.
	OnStart(f func())
}

// ErrServerShutdown is wrapped by Stream when the server ended the stream
// in order (a clean shutdown or restart: PostgreSQL's walsender sends
// CopyDone). It is not a fault: the stream is reopened, with backoff, as
// after any lost connection, and it is logged at Info.
var ErrServerShutdown = errors.New("the source server ended the stream in order (shutting down)")

// Metrics are the capture metrics named in CONTRACT.md, shared by all capturers.
type Metrics struct {
	Events            *prometheus.CounterVec // tandem_capture_events_total{table,op}
	Lag               prometheus.Gauge       // tandem_capture_lag_seconds
	RetentionHeadroom prometheus.Gauge       // tandem_source_retention_headroom_bytes
	// Streaming is tandem_capture_streaming: 1 while the capturer reads
	// the source's stream (or connects to it), 0 while it waits to
	// reconnect after losing it, or as a standby while another capture
	// holds the source. Set by the pipeline's capture loop.
	Streaming prometheus.Gauge
	// Standby is tandem_capture_standby: 1 while this capture waits as
	// the standby of another that holds the source (its slot or lease),
	// ready to take over; 0 otherwise. Set by the pipeline's capture loop.
	Standby prometheus.Gauge
	// RetentionSeconds is tandem_source_retention_headroom_seconds, for
	// sources that purge by age (MySQL binlog expiry); nil for others, so
	// they export no series.
	RetentionSeconds prometheus.Gauge
}

// NewMetrics creates the capture metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tandem_capture_events_total",
			Help: "Row changes read from the source, by source table and operation.",
		}, []string{"table", "op"}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_capture_lag_seconds",
			Help: "Now minus the source commit time of the last captured change; 0 when caught up and idle.",
		}),
		RetentionHeadroom: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_source_retention_headroom_bytes",
			Help: "How far the source may still move before tandem's position is purged or its slot invalidated (+Inf when unlimited).",
		}),
		Streaming: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_capture_streaming",
			Help: "1 while the capturer reads the source's change stream (or connects to it), 0 while it waits to reconnect after losing it.",
		}),
		Standby: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tandem_capture_standby",
			Help: "1 while this capture waits as the standby of another that holds the source (its slot or lease), ready to take over.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Lag, m.RetentionHeadroom, m.Streaming, m.Standby)
	}
	return m
}

// WithRetentionSeconds adds tandem_source_retention_headroom_seconds to m
// and registers it with reg (nil: not registered); it starts at +Inf
// (nothing known to expire).
func (m *Metrics) WithRetentionSeconds(reg prometheus.Registerer) *Metrics {
	m.RetentionSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tandem_source_retention_headroom_seconds",
		Help: "How long until the source may purge tandem's position by age (binlog expiry), at the latest; +Inf when it never expires.",
	})
	m.RetentionSeconds.Set(math.Inf(1))
	if reg != nil {
		reg.MustRegister(m.RetentionSeconds)
	}
	return m
}

// Counters caches tandem_capture_events_total's series by table and op, so
// a stream looks each one up once rather than once per change. The zero
// value is ready once Metrics is set; not safe for concurrent use.
type Counters struct {
	Metrics *Metrics
	byKey   map[tableOp]prometheus.Counter
}

type tableOp struct {
	table change.Table
	op    change.Op
}

// Inc counts one change of op to table.
func (c *Counters) Inc(t change.Table, op change.Op) {
	k := tableOp{t, op}
	ctr, ok := c.byKey[k]
	if !ok {
		if c.byKey == nil {
			c.byKey = map[tableOp]prometheus.Counter{}
		}
		ctr = c.Metrics.Events.WithLabelValues(t.String(), op.Name())
		c.byKey[k] = ctr
	}
	ctr.Inc()
}

// KeyChanged reports whether an update moved the row to another primary
// key. Values compare by their text, as the sinks compare keys.
func KeyChanged(key []string, before, after change.Row) bool {
	for _, k := range key {
		if fmt.Sprint(before[k]) != fmt.Sprint(after[k]) {
			return true
		}
	}
	return false
}

// KeyOnly returns the key columns of row.
func KeyOnly(key []string, row change.Row) change.Row {
	out := make(change.Row, len(key))
	for _, k := range key {
		out[k] = row[k]
	}
	return out
}
