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
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/cutover"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/reconcile"
	"github.com/tandemcdc/tandem/sink"
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

// ErrBackfillInterrupted is returned when ctx ends a backfill run before
// its copy is done; the copy's progress is saved, and the next run
// resumes from it.
var ErrBackfillInterrupted = errors.New("backfill interrupted before its copy was done")

// ErrEmbeddedNeedsRun is returned when a split role is asked to use the
// embedded broker, which lives inside one process.
var ErrEmbeddedNeedsRun = errors.New("the embedded Kafka broker (kafka.brokers empty) lives inside one process: use `tandem run`, or set kafka.brokers to run capture and apply separately")

// TuneRuntime sets the garbage collector for tandem's heap, unless GOGC is
// set: a small live heap (batches in flight) churned by short-lived
// per-row values, where Go's default (GOGC=100) collects hundreds of times
// a second. At 400 capture takes about a third less CPU per row (measured
// on the binlog path). Call it once, from main or a benchmark.
//
// A soft memory limit of DefaultMemoryLimit (unless GOMEMLIMIT is set)
// keeps GOGC=400 from letting the heap grow to five times what is live:
// near the limit the collector runs more often instead. What is live is
// bounded by the buffer and batch sizes (see the constants below), far
// under the limit, whatever the size of a transaction.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

// DefaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT sets another: a tandem process stays near or under it (its
// resident memory a little above: the binary's code and what the kernel
// counts besides the runtime's memory), as long as what is live fits in it.
const DefaultMemoryLimit = 192 << 20

// CompileMappings compiles every mapping of the config.
func CompileMappings(cfg *config.Config, opts ...transform.Option) ([]*transform.Mapping, error) {
	var errs []error
	out := make([]*transform.Mapping, 0, len(cfg.Mappings))
	for i, m := range cfg.Mappings {
		tm, err := transform.Compile(i, m, opts...)
		if _, rerr := transform.CompileRules(i, m, opts...); rerr != nil {
			errs = append(errs, rerr) // reconcile's rules: a config error for every verb, as the mapping's own
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, tm)
	}
	return out, errors.Join(errs...)
}

// mappingOptions are the options the mappings of what writes the target
// are compiled with: lookup() reading tgt, and with cutover each write
// stamped with its cohort.
func mappingOptions(cfg *config.Config, tgt transform.Lookuper) []transform.Option {
	opts := []transform.Option{transform.WithLookup(tgt)}
	if cfg.Cutover != nil {
		opts = append(opts, transform.WithCohorts())
	}
	return opts
}

// What bounds a process's memory, whatever the size of a transaction
// (README, "Sizing"): the capturer's batches (capture's MaxBatch events),
// what the producer buffers, what the embedded broker holds, what an
// applier fetches and polls (apply.Config), and the Go runtime's soft
// memory limit (TuneRuntime).
const (
	// producerBufferedRecords bounds the records produced and not yet
	// acknowledged by the broker; produce blocks beyond it.
	producerBufferedRecords = 50_000
	// embeddedHeldBytes bounds the records that the embedded broker holds
	// and no applier has committed in the target yet (kafka.MaxHeld).
	embeddedHeldBytes = 32 << 20
	// trimEvery is how often the embedded broker's applied records are
	// freed (kafka.Trimmer).
	trimEvery = 500 * time.Millisecond
)

// process is one Run: what its roles share, and what it closes when done.
type process struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	reg      *prometheus.Registry
	mappings []*transform.Mapping
	closers  []func()

	// Kafka: the configured cluster, or an embedded broker.
	seeds    []string
	epoch    string // the cluster's identity, scoping stored offsets
	embedded bool
	// kafkaOpts secure every client of the configured cluster
	// (kafka.tls, kafka.sasl); none for the embedded broker.
	kafkaOpts []kgo.Opt
	producer  *kgo.Client
	dlq       *kafka.DLQ

	tgt      connect.Target // nil when no role writes the target
	src      connect.Source // nil without the capture role
	readers  map[string][]string
	appliers []*apply.Applier
	metrics  *apply.Metrics
	tracker  *kafka.Tracker // acknowledges the stream's source positions
	trimmer  *kafka.Trimmer // frees the embedded broker's applied records
	verify   reconcile.VerifyQueue
	status   readiness
	addr     string        // where HTTP listens
	cutover  *cutoverState // nil without a cutover section
}

// Run runs the configured roles until ctx ends or a role fails for good.
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	p := &process{cfg: cfg, opts: opts, log: opts.Logger, reg: opts.Registry, readers: map[string][]string{}}
	defer p.close()
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.reg == nil {
		p.reg = prometheus.NewRegistry()
		p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var err error
	if p.mappings, err = CompileMappings(cfg); err != nil {
		return err
	}
	if err := p.serveHTTP(); err != nil {
		return err
	}
	if err := p.waitForBrokers(ctx); err != nil {
		return err
	}
	if err := p.connectKafka(ctx); err != nil {
		return err
	}
	if err := p.openTarget(ctx); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	gctx, failWith := context.WithCancelCause(gctx)
	defer failWith(nil)
	if cfg.Cutover != nil && opts.Backfill == nil {
		if err := p.openCutover(ctx); err != nil {
			return err
		}
	}
	if p.cutover == nil && opts.Roles.Apply && opts.Backfill == nil {
		cutover.NewMetrics(p.reg).InitWithoutCutover() // one cohort, owned by the old side
	}
	p.newAppliers()
	if p.cutover != nil && opts.Roles.Apply {
		p.newReverseAppliers()
	}
	if opts.Roles.Capture {
		if err := p.startCapture(ctx, gctx, g, failWith); err != nil {
			return err
		}
		if p.cutover != nil {
			if err := p.startReverseCapture(ctx, gctx, g, failWith); err != nil {
				return err
			}
		}
	}
	var backfillDone chan struct{}
	if opts.Backfill != nil {
		if backfillDone, err = p.startBackfill(ctx, gctx, g); err != nil {
			return err
		}
	}
	p.startApply(gctx, g)
	if p.cutover != nil {
		p.startCutoverLoops(gctx, g)
	}
	p.started()
	if backfillDone != nil {
		// A backfill run ends when its copy is written (or fails).
		go func() {
			<-backfillDone
			failWith(errBackfillFinished)
		}()
	}
	return p.wait(ctx, gctx, g.Wait())
}

// close closes what the process opened, last first.
func (p *process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// connectKafka starts the embedded broker (kafka.brokers empty) or
// connects to the cluster, creating the topics there, and the producer.
func (p *process) connectKafka(ctx context.Context) error {
	tables := connect.SourceTables(p.cfg)
	topics := make([]string, 0, len(tables)+1)
	for _, t := range tables {
		topics = append(topics, kafka.Topic(p.cfg.Kafka.TopicPrefix, t))
	}
	dlqTopic := kafka.DLQTopic(p.cfg.Kafka.TopicPrefix)
	topics = append(topics, dlqTopic)
	if p.cfg.Cutover != nil {
		topics = append(topics, reverseTopics(p.cfg)...)
	}
	var err error
	p.seeds, p.embedded = p.cfg.Kafka.Brokers, len(p.cfg.Kafka.Brokers) == 0
	if p.embedded {
		if !p.opts.Roles.Capture || !p.opts.Roles.Apply {
			return ErrEmbeddedNeedsRun
		}
		broker, err := kafka.StartEmbedded(p.cfg.Kafka.Partitions, topics...)
		if err != nil {
			return err
		}
		p.closers = append(p.closers, broker.Close)
		p.seeds, p.epoch, p.kafkaOpts = broker.Addrs(), broker.ClusterID(), broker.ClientOpts()
		p.log.Info("embedded kafka broker started", "addr", strings.Join(p.seeds, ","), "cluster_id", p.epoch)
		p.trimmer = kafka.NewTrimmer(p.readers)
	}
	if !p.embedded {
		if p.kafkaOpts, err = kafka.ClientOpts(p.cfg.Kafka); err != nil {
			return err
		}
		// A wrong password or certificate would otherwise be retried
		// by every request for minutes, and end in a bare EOF.
		if p.cfg.Kafka.TLS != nil || p.cfg.Kafka.SASL != nil {
			if err := kafka.Ping(ctx, p.cfg.Kafka, p.kafkaOpts); err != nil {
				return err
			}
		}
	}
	// Every client reads and writes records up to kafka.max_record_bytes;
	// the producer also batches and compresses them (RecordOpts, its own).
	p.kafkaOpts = append(p.kafkaOpts, kafka.SizeOpts(p.cfg.Kafka)...)
	producer, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(p.seeds...), kgo.ProducerLinger(2 * time.Millisecond),
		kgo.MaxBufferedRecords(producerBufferedRecords)}, p.kafkaOpts...), kafka.RecordOpts(p.cfg.Kafka)...)...)
	if err != nil {
		return fmt.Errorf("create kafka producer: %w", err)
	}
	p.producer, p.dlq = producer, kafka.NewDLQ(producer, dlqTopic)
	p.closers = append(p.closers, producer.Close)
	if !p.embedded {
		if err := kafka.EnsureTopics(ctx, producer, p.cfg.Kafka.Partitions, kafka.BatchMaxBytes(p.cfg.Kafka), topics...); err != nil {
			return err
		}
		p.warnLowRecordLimits(ctx, producer, topics)
		if p.epoch, err = kafka.ClusterID(ctx, producer); err != nil {
			return err
		}
	}
	return nil
}

// warnLowRecordLimits says which topics take records smaller than
// kafka.max_record_bytes: changes between the two limits are dead-lettered
// instead of streamed.
func (p *process) warnLowRecordLimits(ctx context.Context, cl *kgo.Client, topics []string) {
	low, err := kafka.LowRecordLimits(ctx, cl, p.cfg.Kafka, topics...)
	if err != nil {
		p.log.Info("could not read the topics' max.message.bytes to compare with kafka.max_record_bytes", "err", err)
	}
	for topic, limit := range low {
		p.log.Warn("topic takes smaller records than kafka.max_record_bytes: a change between the two is dead-lettered (reason oversize) instead of streamed; raise the topic's max.message.bytes",
			"topic", topic, "max.message.bytes", limit, "want_at_least", kafka.BatchMaxBytes(p.cfg.Kafka))
	}
}

// openTarget connects to the target when a role writes it (a MySQL
// capturer keeps its position there), and compiles the mappings again
// with lookup() reading it.
func (p *process) openTarget(ctx context.Context) error {
	roles := p.opts.Roles
	if !roles.Apply && p.opts.Backfill == nil && !(roles.Capture && (connect.SourceNeedsStore(p.cfg) || p.cfg.Cutover != nil)) {
		return nil
	}
	tgt, err := connect.OpenTarget(ctx, p.cfg)
	if err != nil {
		return err
	}
	p.tgt = tgt
	p.closers = append(p.closers, func() { tgt.Close() })
	if roles.Apply || p.opts.Backfill != nil {
		if p.mappings, err = CompileMappings(p.cfg, mappingOptions(p.cfg, tgt)...); err != nil {
			return err
		}
		p.metrics = apply.NewMetrics(p.reg)
	}
	return nil
}

// newAppliers makes one Applier per mapping, each its own consumer group.
func (p *process) newAppliers() {
	if !p.opts.Roles.Apply {
		return
	}
	var applied func(string, []change.Row)
	if p.opts.Backfill == nil {
		p.verify = reconcile.NewVerifyQueue(64)
		applied = p.verify.Add
	}
	var side sink.Side
	if p.cfg.Cutover != nil {
		side = sink.SideNew // only the cohorts the old side owns
	}
	for _, m := range p.mappings {
		topic := kafka.Topic(p.cfg.Kafka.TopicPrefix, m.From)
		group := p.cfg.Kafka.Group + "." + m.Name
		p.readers[topic] = append(p.readers[topic], group)
		p.appliers = append(p.appliers, apply.New(apply.Config{
			Mapping: m, Topic: topic, Group: group, Epoch: p.epoch, Seeds: p.seeds, ClientOpts: p.kafkaOpts,
			Sink: p.tgt, DLQ: p.dlq, Metrics: p.metrics, Log: p.log, Applied: applied,
			Committed: p.committed, Side: side,
			WriteTimeout: p.cfg.Target.WriteTimeout, Target: connect.Peer(p.cfg.Target.Kind, p.cfg.Target.DSN.Value()),
		}))
	}
}

// committed is told each partition's offset an applier stored in the
// target: what the trimmer may free and the tracker may acknowledge.
func (p *process) committed(group, topic string, partition int32, next int64) {
	if p.trimmer != nil {
		p.trimmer.Commit(group, topic, partition, next)
	}
	if p.tracker != nil {
		p.tracker.Committed(group, topic, partition, next)
	}
	if p.cutover != nil && p.cutover.tracker != nil {
		p.cutover.tracker.Committed(group, topic, partition, next)
	}
}

// startCapture opens and sets up the source and streams it into Kafka.
func (p *process) startCapture(ctx, gctx context.Context, g *errgroup.Group, failWith context.CancelCauseFunc) error {
	cm := capture.NewMetrics(p.reg)
	if connect.SourceNeedsStore(p.cfg) {
		cm.WithRetentionSeconds(p.reg) // binlogs expire by age
	}
	src, err := connect.OpenSource(p.cfg, p.tgt, p.log, cm)
	if err != nil {
		return err
	}
	p.src = src
	p.closers = append(p.closers, func() { src.Close() })
	if err := src.Setup(ctx); err != nil {
		return err
	}
	p.tracker = kafka.NewTracker(!p.embedded, p.readers, func(pos change.Position) {
		if err := src.Ack(pos); err != nil {
			p.log.Error("acknowledge source position", "pos", pos.String(), "err", err)
		}
	}, kafka.MaxHeld(embeddedHeldBytes))
	pub := kafka.NewPublisher(kafka.PublisherConfig{
		Source: src, Prefix: p.cfg.Kafka.TopicPrefix, Client: p.producer, Tracker: p.tracker, Log: p.log,
		Encoder: connect.Encoder(p.cfg, p.opts.Version), Fail: func(err error) { failWith(err) },
		Standby:   !p.opts.Roles.Apply, // `tandem capture` waits for a live holder; `tandem run` stops with its error
		OnStandby: flag(&p.status.standby, cm.Standby), MaxRecordBytes: p.cfg.Kafka.MaxRecordBytes,
	})
	drain, cancelDrain := drainContext(gctx, p.cfg.ShutdownTimeout, p.log)
	p.closers = append(p.closers, cancelDrain)
	g.Go(func() error {
		err := pub.Run(gctx, flag(&p.status.capturing, cm.Streaming))
		// A stop: what was produced reaches the brokers (and its
		// positions are acknowledged) within shutdown_timeout.
		_ = p.producer.Flush(drain)
		return err
	})
	return nil
}

// startBackfill starts the copy of existing rows into the target, beside
// the stream; done is closed when it ends.
func (p *process) startBackfill(ctx, gctx context.Context, g *errgroup.Group) (done chan struct{}, err error) {
	var lag func() time.Duration
	if p.opts.Roles.Apply {
		lag = maxLag(p.appliers)
	}
	bf, err := newBackfill(ctx, p.cfg, p.opts, p.tgt, p.src != nil, p.mappings, p.dlq, p.metrics, lag, p.log, p.reg)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { bf.Close() })
	done = make(chan struct{})
	g.Go(func() error {
		defer close(done)
		return bf.Run(gctx, p.opts.Backfill.Watch, p.opts.Backfill.Done)
	})
	return done, nil
}

// startApply runs the appliers, the trimmer and, outside a backfill run,
// the continuous reconcile: the source, mapped, compared with the target
// every reconcile.interval at a bounded read rate, and rows re-verified
// as the stream applies them.
func (p *process) startApply(gctx context.Context, g *errgroup.Group) {
	if !p.opts.Roles.Apply {
		return
	}
	// A stop (gctx ends) drains: each applier writes and commits what it
	// has polled, within shutdown_timeout.
	drain, cancelDrain := drainContext(gctx, p.cfg.ShutdownTimeout, p.log)
	p.closers = append(p.closers, cancelDrain)
	for _, a := range p.appliers {
		g.Go(func() error { return a.RunUntil(drain, gctx.Done()) })
	}
	if p.opts.Backfill == nil {
		rm := reconcile.NewMetrics(p.reg)
		for _, m := range p.mappings {
			rm.Init(m.Name)
			rm.Interval.WithLabelValues(m.Name).Set(p.cfg.Reconcile.Interval.Seconds())
		}
		open := reconcileOpener(p.cfg, ReconcileOptions{Metrics: rm, Lag: maxLag(p.appliers), Logger: p.log})
		g.Go(func() error {
			reconcile.Loop(gctx, open, p.cfg.Reconcile.Interval, false, p.verify, p.log)
			return nil
		})
	}
	if p.trimmer != nil {
		g.Go(func() error { p.trimmer.Run(gctx, p.producer, trimEvery, p.log); return nil })
	}
}

// serveHTTP serves /metrics, /healthz and /readyz from the start, so that
// a process waiting to start (for its brokers) shows it; /readyz fails
// until started.
func (p *process) serveHTTP() error {
	p.status.starting.Store(true)
	srv, addr, err := listenHTTP(p.cfg.HTTP, p.reg, &p.status, p.opts.Roles, p.log)
	if err != nil {
		return err
	}
	p.log.Info("http listening", "addr", addr, "metrics", "http://"+addr+"/metrics")
	p.closers = append(p.closers, func() { srv.Close() })
	p.addr = addr
	return nil
}

// started marks the roles started: /readyz now says how they are.
func (p *process) started() {
	p.status.appliers.Store(&p.appliers)
	p.status.starting.Store(false)
	if p.opts.Ready != nil {
		p.opts.Ready(p.addr)
	}
}

// wait turns the roles' end into Run's result: nil when ctx ended or a
// backfill run finished its copy, ErrBackfillInterrupted when ctx ended a
// backfill run first, else why the process stopped.
func (p *process) wait(ctx, gctx context.Context, err error) error {
	if cause := context.Cause(gctx); errors.Is(cause, errBackfillFinished) {
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, errBackfillFinished) {
			p.log.Info("backfill finished; stopping", "acknowledged", connect.Acked(p.src))
			return nil
		}
		return err
	}
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.Cause(ctx))) {
		p.log.Info("stopped", "acknowledged", connect.Acked(p.src))
		if p.opts.Backfill != nil {
			return ErrBackfillInterrupted // the copy logged where it stopped
		}
		return nil
	}
	if cause := context.Cause(gctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	return err
}

// flag returns a setter of a state kept both in b, for /readyz, and in g,
// as 1 or 0.
func flag(b *atomic.Bool, g prometheus.Gauge) func(bool) {
	return func(on bool) {
		b.Store(on)
		if on {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}
}

type readiness struct {
	capturing atomic.Bool
	standby   atomic.Bool // a capture waiting to take over: ready, that is its job
	starting  atomic.Bool // the roles are not started yet
	// waiting says what a starting process waits for (the brokers it
	// cannot reach); nil: nothing.
	waiting  atomic.Pointer[string]
	appliers atomic.Pointer[[]*apply.Applier] // set once started
}

// listenHTTP serves /metrics, /healthz and /readyz on c.Listen, behind the
// TLS and basic auth of c.WebConfigFile when it is set (the Prometheus
// exporter web configuration, read again as it changes).
func listenHTTP(c config.HTTP, reg *prometheus.Registry, st *readiness, roles Roles, log *slog.Logger) (*http.Server, string, error) {
	if err := web.Validate(c.WebConfigFile); err != nil {
		return nil, "", fmt.Errorf("read http.web_config_file %s: %w", c.WebConfigFile, err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("listen on http.listen %s: %w", c.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		var notReady []string
		if w := st.waiting.Load(); w != nil {
			notReady = append(notReady, "waiting to start: "+*w)
		} else if st.starting.Load() {
			notReady = append(notReady, "starting")
		}
		if roles.Capture && !st.capturing.Load() && !st.standby.Load() {
			notReady = append(notReady, "capture not streaming")
		}
		var appliers []*apply.Applier
		if as := st.appliers.Load(); as != nil {
			appliers = *as
		}
		for _, a := range appliers {
			if !a.Joined() {
				notReady = append(notReady, "mapping "+a.Mapping()+" has no partitions yet")
			}
			if a.Paused() {
				notReady = append(notReady, "mapping "+a.Mapping()+" paused: retrying a failing write (see the log)")
			}
		}
		if len(notReady) > 0 {
			http.Error(w, strings.Join(notReady, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	webConfig := c.WebConfigFile
	go func() {
		err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfig}, log)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}
