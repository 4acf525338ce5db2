package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/transform"
)

// Roles says which parts of the pipeline a process runs.
type Roles struct {
	Capture bool
	Apply   bool
}

// BackfillOptions ask Run to copy the existing rows of the source tables
// into the target, beside the roles, and to stop once that copy is durable.
type BackfillOptions struct {
	Tables  []string // source tables to copy ("schema.table"); empty: all configured
	Restart bool     // forget saved progress and copy everything again
	// Done, if set, receives the summary before Run returns.
	Done func(backfill.Summary)
	// Watch, if set, runs beside the copy with its Runner, e.g. to draw
	// Runner.Progress live; its ctx ends when the copy does, and it has
	// returned before Done is called.
	Watch func(ctx context.Context, r *backfill.Runner)
	// LogEvery is how often progress is logged: 0 every 10 s, negative
	// never (a live display shows it instead).
	LogEvery time.Duration
}

// Options configure Run.
type Options struct {
	Roles    Roles
	Logger   *slog.Logger
	Version  string
	Registry *prometheus.Registry // nil: a new one
	// Ready, if set, is called once every role has started (tests, demos).
	Ready func(httpAddr string)
	// Backfill, if set, copies existing rows into the target; Run returns
	// once they are written there instead of running on.
	Backfill *BackfillOptions
}

// ErrEmbeddedNeedsRun is returned when a split role is asked to use the
// embedded broker, which lives inside one process.
var ErrEmbeddedNeedsRun = errors.New("the embedded Kafka broker (kafka.brokers empty) lives inside one process: use `tandem run`, or set kafka.brokers to run capture and apply separately")

// TuneRuntime sets the garbage collector for tandem's heap, unless GOGC is
// set: a small live heap (batches in flight) churned by short-lived
// per-row values, where Go's default (GOGC=100) collects hundreds of times
// a second. At 400 capture takes about a third less CPU per row (measured
// on the binlog path). Call it once, from main or a benchmark.
//
// A soft memory limit of 512 MiB (unless GOMEMLIMIT is set) keeps GOGC=400
// from letting a large live heap (a backfill in full flow) grow five-fold:
// near the limit the collector runs more often instead.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(512 << 20)
	}
}

// CompileMappings compiles every mapping of the config.
func CompileMappings(cfg *config.Config, opts ...transform.Option) ([]*transform.Mapping, error) {
	var errs []error
	out := make([]*transform.Mapping, 0, len(cfg.Mappings))
	for i, m := range cfg.Mappings {
		tm, err := transform.Compile(i, m, opts...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, tm)
	}
	return out, errors.Join(errs...)
}

// Run runs the configured roles until ctx ends or a role fails for good.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	mappings, err := CompileMappings(cfg)
	if err != nil {
		return err
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	tables := connect.SourceTables(cfg)
	topics := make([]string, 0, len(tables)+1)
	for _, t := range tables {
		topics = append(topics, kafka.Topic(cfg.Kafka.TopicPrefix, t))
	}
	dlqTopic := kafka.DLQTopic(cfg.Kafka.TopicPrefix)
	topics = append(topics, dlqTopic)

	// Kafka: the configured cluster, or an embedded broker for this process.
	seeds, embedded := cfg.Kafka.Brokers, len(cfg.Kafka.Brokers) == 0
	var epoch string
	if embedded {
		if !opts.Roles.Capture || !opts.Roles.Apply {
			return ErrEmbeddedNeedsRun
		}
		broker, err := kafka.StartEmbedded(cfg.Kafka.Partitions, topics...)
		if err != nil {
			return err
		}
		defer broker.Close()
		seeds, epoch = broker.Addrs(), broker.ClusterID()
		log.Info("embedded kafka broker started", "addr", strings.Join(seeds, ","), "cluster_id", epoch)
	}
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(2*time.Millisecond),
		kgo.MaxBufferedRecords(50_000), kgo.ProducerBatchMaxBytes(4<<20))
	if err != nil {
		return fmt.Errorf("create kafka producer: %w", err)
	}
	defer producer.Close()
	if !embedded {
		if err := kafka.EnsureTopics(ctx, producer, cfg.Kafka.Partitions, topics...); err != nil {
			return err
		}
		if epoch, err = kafka.ClusterID(ctx, producer); err != nil {
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	gctx, failWith := context.WithCancelCause(gctx)
	defer failWith(nil)
	status := &readiness{}

	// Apply: one consumer group per mapping.
	readers := map[string][]string{}
	var appliers []*apply.Applier
	var tr *kafka.Tracker   // the stream's
	var trim *kafka.Trimmer // frees the embedded broker's applied records
	if embedded {
		trim = kafka.NewTrimmer(readers)
	}
	var tgt connect.Target
	if opts.Roles.Apply || opts.Backfill != nil || (opts.Roles.Capture && connect.SourceNeedsStore(cfg)) {
		if tgt, err = connect.OpenTarget(ctx, cfg); err != nil {
			return err
		}
		defer tgt.Close()
	}
	var verify reconcile.VerifyQueue
	if opts.Roles.Apply && opts.Backfill == nil {
		verify = reconcile.NewVerifyQueue(64)
	}
	var am *apply.Metrics
	dlq := kafka.NewDLQ(producer, dlqTopic)
	if opts.Roles.Apply || opts.Backfill != nil {
		// Again, with lookup() reading the target.
		if mappings, err = CompileMappings(cfg, transform.WithLookup(tgt)); err != nil {
			return err
		}
		am = apply.NewMetrics(reg)
	}
	if opts.Roles.Apply {
		for _, m := range mappings {
			topic := kafka.Topic(cfg.Kafka.TopicPrefix, m.From)
			group := cfg.Kafka.Group + "." + m.Name
			readers[topic] = append(readers[topic], group)
			var applied func(string, []change.Row)
			if verify != nil {
				applied = verify.Add
			}
			appliers = append(appliers, apply.New(apply.Config{
				Mapping: m, Topic: topic, Group: group, Epoch: epoch, Seeds: seeds,
				Sink: tgt, DLQ: dlq, Metrics: am, Log: log, Applied: applied,
				Committed: func(group, topic string, p int32, next int64) {
					if trim != nil {
						trim.Commit(group, topic, p, next)
					}
					if tr != nil {
						tr.Committed(group, topic, p, next)
					}
				},
			}))
		}
	}

	// Capture: source -> Kafka.
	var src connect.Source
	if opts.Roles.Capture {
		cm := capture.NewMetrics(reg)
		if connect.SourceNeedsStore(cfg) {
			cm.WithRetentionSeconds(reg) // binlogs expire by age
		}
		if src, err = connect.OpenSource(cfg, tgt, log, cm); err != nil {
			return err
		}
		defer src.Close()
		if err := src.Setup(ctx); err != nil {
			return err
		}
		tr = kafka.NewTracker(!embedded, readers, func(p change.Position) {
			if err := src.Ack(p); err != nil {
				log.Error("acknowledge source position", "pos", p.String(), "err", err)
			}
		})
		cr := kafka.NewPublisher(kafka.PublisherConfig{
			Source: src, Prefix: cfg.Kafka.TopicPrefix, Client: producer, Tracker: tr, Log: log, Encoder: connect.Encoder(cfg, opts.Version),
			Fail: func(err error) { failWith(err) },
		})
		g.Go(func() error {
			return cr.Run(gctx, func(on bool) {
				status.capturing.Store(on)
				if on {
					cm.Streaming.Set(1)
				} else {
					cm.Streaming.Set(0)
				}
			})
		})
	}

	// Backfill: existing rows -> target, beside the stream.
	var backfillDone chan struct{}
	if opts.Backfill != nil {
		var lag func() time.Duration
		if opts.Roles.Apply {
			lag = maxLag(appliers)
		}
		bf, err := newBackfill(ctx, cfg, opts, tgt, src != nil, mappings, dlq, am, lag, log, reg)
		if err != nil {
			return err
		}
		defer bf.Close()
		backfillDone = make(chan struct{})
		g.Go(func() error {
			defer close(backfillDone)
			return bf.Run(gctx, opts.Backfill.Watch, opts.Backfill.Done)
		})
	}
	for _, a := range appliers {
		g.Go(func() error { return a.Run(gctx) })
	}
	if opts.Roles.Apply && opts.Backfill == nil {
		// Reconcile: compare the source, mapped, with the target every
		// reconcile.interval, at a bounded read rate, and re-verify rows
		// as the stream applies them.
		rm := reconcile.NewMetrics(reg)
		for _, m := range mappings {
			rm.Init(m.Name)
			rm.Interval.WithLabelValues(m.Name).Set(cfg.Reconcile.Interval.Seconds())
		}
		g.Go(func() error {
			reconcile.Loop(gctx, reconcileOpener(cfg, ReconcileOptions{Metrics: rm, Lag: maxLag(appliers), Logger: log}), cfg.Reconcile.Interval, false, verify, log)
			return nil
		})
	}
	if trim != nil && opts.Roles.Apply {
		g.Go(func() error { trim.Run(gctx, producer, 2*time.Second, log); return nil })
	}

	// HTTP: metrics and health.
	srv, addr, err := serveHTTP(cfg.HTTP.Listen, reg, status, appliers, opts.Roles)
	if err != nil {
		failWith(err)
	} else {
		log.Info("http listening", "addr", addr, "metrics", "http://"+addr+"/metrics")
		defer srv.Close()
		if opts.Ready != nil {
			opts.Ready(addr)
		}
	}
	if backfillDone != nil {
		// A backfill run ends when its copy is written (or fails).
		go func() {
			<-backfillDone
			failWith(errBackfillFinished)
		}()
	}
	err = g.Wait()
	if cause := context.Cause(gctx); errors.Is(cause, errBackfillFinished) {
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errBackfillFinished) {
			log.Info("backfill finished; stopping", "acknowledged", connect.Acked(src))
			return nil
		}
		return err
	}
	if cause := context.Cause(gctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		log.Info("stopped", "acknowledged", connect.Acked(src))
		return nil
	}
	return err
}

type readiness struct {
	capturing atomic.Bool
}

func serveHTTP(listen string, reg *prometheus.Registry, st *readiness, appliers []*apply.Applier, roles Roles) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen on http.listen %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		var notReady []string
		if roles.Capture && !st.capturing.Load() {
			notReady = append(notReady, "capture not streaming")
		}
		for _, a := range appliers {
			if !a.Joined() {
				notReady = append(notReady, "mapping "+a.Mapping()+" has no partitions yet")
			}
		}
		if len(notReady) > 0 {
			http.Error(w, strings.Join(notReady, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server stopped", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}
