package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/tandemcdc/tandem/apply"
	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/cutover"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/kafka"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// cutoverState is what a process adds to the forward pipeline when
// cutover is configured: the old database as the reverse stream's target,
// the reverse streams, and the cutover metrics.
type cutoverState struct {
	old      connect.Side
	reverses map[string]*transform.Reverse // by mapping name
	metrics  *cutover.Metrics
	tracker  *kafka.Tracker // acknowledges the reverse capture's positions
}

// sourceKeys returns each mapping's source table's primary key, read from
// the source.
func sourceKeys(ctx context.Context, cfg *config.Config) (map[string][]string, error) {
	r, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	keys := map[string][]string{}
	for _, t := range connect.SourceTables(cfg) {
		s, err := r.Describe(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("cutover: describe source table %s: %w", t, err)
		}
		keys[t.String()] = s.Key
	}
	return keys, nil
}

// GuardTables returns the tables the guard triggers watch on each side:
// the mappings' source tables (old) and the tables they write (new).
func GuardTables(cfg *config.Config, mappings []*transform.Mapping, keys map[string][]string) (old, new []sink.GuardTable, err error) {
	var errs []error
	for i, m := range mappings {
		from := m.From.String()
		if !slices.ContainsFunc(old, func(g sink.GuardTable) bool { return g.Table == from }) {
			old = append(old, sink.GuardTable{Table: from, CohortColumn: m.CohortColumn(), Default: config.DefaultCohort, Key: keys[from]})
		}
		for _, o := range cfg.Mappings[i].To {
			if slices.ContainsFunc(new, func(g sink.GuardTable) bool { return g.Table == o.Table }) {
				continue
			}
			col, err := m.OutputCohortColumn(o.Table)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			new = append(new, sink.GuardTable{Table: o.Table, CohortColumn: col, Default: config.DefaultCohort, Key: o.Key})
		}
	}
	return old, new, errors.Join(errs...)
}

// openCutover opens the old database as the reverse stream's target,
// installs the guard triggers on both sides, finishes or undoes a switch
// a crash interrupted, and compiles the reverse streams.
func (p *process) openCutover(ctx context.Context) error {
	keys, err := sourceKeys(ctx, p.cfg)
	if err != nil {
		return err
	}
	old, err := connect.OpenOld(ctx, p.cfg)
	if err != nil {
		return fmt.Errorf("cutover: open the source database for the reverse stream: %w", err)
	}
	p.closers = append(p.closers, func() { old.Close() })
	cs := &cutoverState{old: old, reverses: map[string]*transform.Reverse{}, metrics: cutover.NewMetrics(p.reg)}
	cs.metrics.Init()
	p.cutover = cs
	oldTables, newTables, err := GuardTables(p.cfg, p.mappings, keys)
	if err != nil {
		return fmt.Errorf("cutover: %w", err)
	}
	reject := p.cfg.Cutover.Guard == config.GuardReject
	if err := old.InstallGuard(ctx, sink.SideOld, oldTables, reject); err != nil {
		return fmt.Errorf("cutover: install the guard triggers in the source database: %w", err)
	}
	if err := p.tgt.(connect.Side).InstallGuard(ctx, sink.SideNew, newTables, reject); err != nil {
		return fmt.Errorf("cutover: install the guard triggers in the target database: %w", err)
	}
	if _, err := cutover.Recover(ctx, old, p.tgt.(connect.Side), p.log); err != nil {
		return err
	}
	for _, m := range p.mappings {
		if !m.HasInverse() {
			continue
		}
		r, err := transform.NewReverse(m, keys[m.From.String()])
		if err != nil {
			return fmt.Errorf("cutover: %w", err)
		}
		cs.reverses[m.Name] = r
	}
	return nil
}

// newReverseAppliers makes one reverse Applier per mapping with an
// inverse: it consumes the reverse topics of the mapping's target tables
// and writes the old rows they rebuild into the old database.
func (p *process) newReverseAppliers() {
	cs := p.cutover
	prefix := connect.ReverseTopicPrefix(p.cfg)
	for _, m := range p.mappings {
		r := cs.reverses[m.Name]
		if r == nil {
			continue
		}
		byTable := map[change.Table]string{} // the new table as the records name it -> as configured
		var topics []string
		for _, t := range r.Tables() {
			q := connect.QualifyTarget(p.cfg, t)
			byTable[q] = t
			topics = append(topics, kafka.Topic(prefix, q))
		}
		group := p.cfg.Kafka.Group + ".back." + m.Name
		for _, t := range topics {
			p.readers[t] = append(p.readers[t], group)
		}
		newSide := p.tgt.(connect.Side)
		// The old row is rebuilt from the current new rows, which must
		// include the change's own transaction (PostgreSQL decodes a
		// commit a moment before other sessions see it; MySQL writes the
		// binlog before InnoDB commits). prepare waits for every
		// transaction of a polled batch once, then reads every row the
		// batch's rebuilds read (transform.Reverse.Reads) in one query a
		// table (LookupKeys, Lookup of many keys), instead of a Lookup a
		// table a change. Rows read after the batch's newest commit are at
		// or after each of its changes' commits, which is all a rebuild
		// needs: a rebuild never goes back, the batch's later rebuilds of
		// an old row write it from the same rows, and the sink applies a
		// batch's writes in order (the last of a key wins).
		many, _ := p.tgt.(interface {
			LookupKeys(ctx context.Context, table string, keys []map[string]any) (rows []map[string]any, n []int, err error)
		})
		keyID := func(key map[string]any) string {
			cols := make([]string, 0, len(key))
			for c := range key {
				cols = append(cols, c)
			}
			slices.Sort(cols)
			return change.KeyText(cols, key)
		}
		// lookupDataError is whether a lookup failed for a key's values
		// (several rows, a value its column cannot hold), the change's
		// fault, as transform's lookups tell it.
		lookupDataError := func(err error) bool {
			var se *sink.Error
			return errors.Is(err, sink.ErrNotUnique) || errors.As(err, &se) && se.Reason == sink.ReasonData
		}
		// read holds the rows of the batch being transformed, by table
		// then keyID: nil for a key no row holds. Only the Applier's poll
		// goroutine (prepare, then xf) uses it.
		var read map[string]map[string]map[string]any
		var visibleTx uint32 // the last transaction seen visible: its other changes need no wait
		prepare := func(ctx context.Context, evs []*change.Event) error {
			read = nil
			awaited := map[uint32]bool{}
			for _, ev := range evs {
				if ev.TxID != 0 && (ev.TxID == visibleTx || awaited[ev.TxID]) {
					continue
				}
				if err := newSide.AwaitCommitted(ctx, ev); err != nil {
					return err
				}
				awaited[ev.TxID], visibleTx = true, ev.TxID
			}
			if many == nil {
				return nil
			}
			keys := map[string][]map[string]any{}
			seen := map[string]bool{}
			for _, ev := range evs {
				reads, err := r.Reads(byTable[ev.Table], ev)
				if err != nil {
					continue // Writes refuses it too: a dead letter
				}
				for _, kr := range reads {
					if id := kr.Table + "\x00" + keyID(kr.Key); !seen[id] {
						seen[id] = true
						keys[kr.Table] = append(keys[kr.Table], kr.Key)
					}
				}
			}
			batch := make(map[string]map[string]map[string]any, len(keys))
			for table, ks := range keys {
				rows, n, err := many.LookupKeys(ctx, table, ks)
				if lookupDataError(err) {
					continue // a key's values: each change's own Lookup tells which
				}
				if err != nil {
					return fmt.Errorf("cutover: read the current rows of %s: %w", table, err)
				}
				got := make(map[string]map[string]any, len(ks))
				for i, k := range ks {
					switch n[i] {
					case 0:
						got[keyID(k)] = nil
					case 1:
						got[keyID(k)] = rows[i]
					} // more than one: Lookup fails as it would have
				}
				batch[table] = got
			}
			read = batch
			return nil
		}
		current := func(ctx context.Context, table string, key map[string]any) (map[string]any, bool, error) {
			if row, ok := read[table][keyID(key)]; ok {
				return row, row != nil, nil
			}
			row, found, err := newSide.Lookup(ctx, table, key)
			if err != nil && !lookupDataError(err) {
				// The new database cannot answer: retried, not a dead letter.
				return nil, false, fmt.Errorf("%w: %w", transform.ErrLookupUnavailable, err)
			}
			return row, found, err
		}
		xf := func(ctx context.Context, ev *change.Event) ([]change.Write, string, error) {
			ws, err := r.Writes(ctx, byTable[ev.Table], ev, current)
			if err != nil {
				return nil, "transform", err
			}
			return ws, "", nil
		}
		p.appliers = append(p.appliers, apply.New(apply.Config{
			Mapping: m, Reverse: true, Topics: topics, Transform: xf, Prepare: prepare, Side: sink.SideOld,
			Group: group, Epoch: p.epoch, Seeds: p.seeds, ClientOpts: p.kafkaOpts,
			Sink: cs.old, DLQ: p.dlq, Metrics: p.metrics, Log: p.log, Committed: p.committed,
			WriteTimeout: p.cfg.Target.WriteTimeout, Target: connect.Peer(p.cfg.Source.Kind, p.cfg.Source.DSN.Value()),
		}))
	}
}

// reverseTopics are the reverse stream's topics, one per target table.
func reverseTopics(cfg *config.Config) []string {
	var out []string
	for _, t := range connect.TargetTables(cfg) {
		out = append(out, kafka.Topic(connect.ReverseTopicPrefix(cfg), t))
	}
	return out
}

// startReverseCapture streams the new database's changes (but tandem's
// own) into the reverse topics.
func (p *process) startReverseCapture(ctx, gctx context.Context, g *errgroup.Group, failWith context.CancelCauseFunc) error {
	cs := p.cutover
	src, err := connect.OpenReverseSource(p.cfg, cs.old, p.log.With("stream", apply.Reverse), capture.NewMetrics(nil))
	if err != nil {
		return err
	}
	p.closers = append(p.closers, func() { src.Close() })
	if err := src.Setup(ctx); err != nil {
		return fmt.Errorf("cutover: set up the reverse capture of the target database: %w", err)
	}
	cs.tracker = kafka.NewTracker(!p.embedded, p.readers, func(pos change.Position) {
		if err := src.Ack(pos); err != nil {
			p.log.Error("acknowledge the reverse capture's position", "pos", pos.String(), "err", err)
		}
	}, kafka.MaxHeld(embeddedHeldBytes))
	enc := connect.Encoder(p.cfg, p.opts.Version)
	enc.Name = connect.ReverseTopicPrefix(p.cfg)
	pub := kafka.NewPublisher(kafka.PublisherConfig{
		Source: src, Prefix: connect.ReverseTopicPrefix(p.cfg), Client: p.producer, Tracker: cs.tracker,
		Log: p.log, Encoder: enc, Fail: func(err error) { failWith(err) }, MaxRecordBytes: p.cfg.Kafka.MaxRecordBytes,
	})
	g.Go(func() error { return pub.Run(gctx, func(bool) {}) })
	return nil
}

// startCutoverLoops keeps the streams' heartbeats, the misrouted writes'
// counts and logs, and the owners' gauges, until gctx ends.
func (p *process) startCutoverLoops(gctx context.Context, g *errgroup.Group) {
	cs := p.cutover
	newSide := p.tgt.(connect.Side)
	// Misrouted writes recorded before this process were counted by the
	// one that saw them: the last ids are read now, before the process is
	// ready, so that a write made as it becomes ready still counts. A side
	// that cannot be read now is read on the first pass, and what it holds
	// then is taken as old.
	misrouted := map[sink.Side]int64{}
	unread := map[sink.Side]bool{}
	for side, store := range map[sink.Side]sink.CohortStore{sink.SideOld: cs.old, sink.SideNew: newSide} {
		for {
			ms, err := store.Misrouted(gctx, misrouted[side], 1000)
			if err != nil {
				unread[side] = true
				break
			}
			if len(ms) == 0 {
				break
			}
			misrouted[side] = ms[len(ms)-1].ID
		}
	}
	g.Go(func() error {
		fences := map[string]time.Time{}
		for i := 0; ; i++ {
			first := i == 0
			if i%5 == 4 { // a switch killed midway is finished or undone within seconds
				if _, err := cutover.Recover(gctx, cs.old, newSide, p.log); err != nil && gctx.Err() == nil {
					p.log.Warn("cutover: check the cohorts' owners agree", "err", err)
				}
			}
			for _, a := range p.appliers {
				var store sink.CohortStore = newSide
				if strings.HasPrefix(a.Stream(), apply.Reverse+":") {
					store = cs.old
				}
				if err := store.Beat(gctx, a.Stream(), a.Lag()); err != nil && gctx.Err() == nil {
					p.log.Warn("cutover: store a stream's heartbeat", "stream", a.Stream(), "err", err)
				}
			}
			for side, store := range map[sink.Side]sink.CohortStore{sink.SideOld: cs.old, sink.SideNew: newSide} {
				ms, err := store.Misrouted(gctx, misrouted[side], 1000)
				if err != nil {
					continue
				}
				for _, m := range ms {
					misrouted[side] = m.ID
					if unread[side] {
						continue // recorded before this process: counted by the one that saw them
					}
					cs.metrics.Misrouted.WithLabelValues(m.Cohort, string(m.Side)).Inc()
					p.log.Warn("cutover: a write was made on the side that does not own its cohort", "cohort", m.Cohort,
						"side", m.Side, "table", m.Table, "key", m.Key, "at", m.At)
				}
				if len(ms) < 1000 {
					delete(unread, side) // read to its end: later ones are new
				}
				if hb, err := store.Heartbeats(gctx); err == nil {
					for _, h := range hb {
						if dir, ok := strings.CutPrefix(h.Stream, fencePrefix); ok && !h.Updated.Equal(fences[h.Stream]) {
							if !first {
								cs.metrics.Fence.WithLabelValues(dir).Observe(h.Lag.Seconds())
							}
							fences[h.Stream] = h.Updated
						}
					}
				}
			}
			if owners, err := newSide.Cohorts(gctx); err == nil {
				cs.metrics.SetOwners(owners)
			}
			if err := poll.Sleep(gctx, time.Second); err != nil {
				return nil
			}
		}
	})
}

// fencePrefix names the heartbeat a switch leaves with how long it fenced
// writes: "fence:forward" or "fence:back". A running process turns it into
// tandem_switch_fence_seconds.
const fencePrefix = "fence:"

// SwitchOptions say what `tandem switch` moves.
type SwitchOptions struct {
	Cohorts []string // the cohorts; empty with All
	All     bool     // every cohort known to either database or found in the source rows
	Back    bool     // to the old side
	Logger  *slog.Logger
	// Phase, if set, is called as each phase of the switch begins (tests).
	Phase func(string)
}

// ErrSwitchRefused is wrapped when a gate refused a switch or its drain
// took longer than the fence timeout: nothing was changed.
var ErrSwitchRefused = cutover.ErrRefused

// Switch moves cohorts' writes to the new schema (or back) for the
// migration of cfg, coordinating through both databases with the running
// tandem processes.
func Switch(ctx context.Context, cfg *config.Config, opts SwitchOptions) (cutover.Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Cutover == nil {
		return cutover.Result{}, fmt.Errorf("%s: no cutover section: add `cutover:` (see the README's cutover runbook) and restart tandem run before switching", cfg.File)
	}
	newSide, err := connect.OpenTarget(ctx, cfg)
	if err != nil {
		return cutover.Result{}, err
	}
	defer newSide.Close()
	old, err := connect.OpenOld(ctx, cfg)
	if err != nil {
		return cutover.Result{}, err
	}
	defer old.Close()
	oldLog, newLog, closeLogs, err := connect.Logs(ctx, cfg, old, newSide)
	if err != nil {
		return cutover.Result{}, err
	}
	defer closeLogs()
	ns := newSide.(connect.Side)
	cohorts := opts.Cohorts
	if opts.All {
		if cohorts, err = allCohorts(ctx, cfg, old, ns); err != nil {
			return cutover.Result{}, err
		}
	}
	to, dir := sink.SideNew, apply.Forward
	if opts.Back {
		to, dir = sink.SideOld, "back"
	}
	var drained func(context.Context) (bool, error)
	if len(cfg.Kafka.Brokers) > 0 {
		sec, err := kafka.ClientOpts(cfg.Kafka)
		if err != nil {
			return cutover.Result{}, err
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Kafka.Brokers...)}, sec...)...)
		if err != nil {
			return cutover.Result{}, fmt.Errorf("connect to kafka: %w", err)
		}
		defer cl.Close()
		var store sink.Sink = ns
		if opts.Back {
			store = old
		}
		if drained, err = drainedOffsets(ctx, cfg, cl, store, opts.Back); err != nil {
			return cutover.Result{}, err
		}
	}
	res, err := cutover.Switch(ctx, cutover.Options{
		Drained: drained,
		Old:     cutover.DB{Side: sink.SideOld, Store: old, Log: oldLog},
		New:     cutover.DB{Side: sink.SideNew, Store: ns, Log: newLog},
		Cohorts: cohorts, To: to, FenceTimeout: cfg.Cutover.FenceTimeout,
		Gates: switchGates(cfg, old, ns, cohorts), Log: log, Phase: opts.Phase,
		Fenced: func(_ sink.Side, d time.Duration) {
			_ = ns.Beat(context.WithoutCancel(ctx), fencePrefix+dir, d)
		},
	})
	return res, err
}

// allCohorts is every cohort either database stores an owner for, and
// every cohort of the source's rows.
func allCohorts(ctx context.Context, cfg *config.Config, stores ...sink.CohortStore) ([]string, error) {
	mappings, err := CompileMappings(cfg)
	if err != nil {
		return nil, err
	}
	out, err := connect.SourceCohorts(ctx, cfg, mappings)
	if err != nil {
		return nil, err
	}
	for _, s := range stores {
		owners, err := s.Cohorts(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range owners {
			out = append(out, o.Cohort)
		}
	}
	return out, nil
}

// heartbeatMaxAge is how old a stream's heartbeat may be for a switch to
// count the stream as running.
const heartbeatMaxAge = 10 * time.Second

// switchGates are the checks a switch makes before it fences anything:
// both directions running with their lag under cutover.max_lag_seconds,
// no dead letters, and a reconcile that finds no drift in the cohorts it
// moves, either way (forward for those the old side owns, through the
// inverse for those the new side owns).
func switchGates(cfg *config.Config, old, newSide connect.Side, cohorts []string) []cutover.Gate {
	maxLag := time.Duration(cfg.Cutover.MaxLagSeconds) * time.Second
	streams := func(store sink.CohortStore, dir string, names []string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			hb, err := store.Heartbeats(ctx)
			if err != nil {
				return err
			}
			var problems []string
			for _, name := range names {
				i := slices.IndexFunc(hb, func(h sink.Heartbeat) bool { return h.Stream == dir+":"+name })
				switch {
				case i < 0:
					problems = append(problems, fmt.Sprintf("the %s stream of mapping %s has never run (is tandem run, or tandem apply, running with this cutover config?)", dir, name))
				case time.Since(hb[i].Updated) > heartbeatMaxAge:
					problems = append(problems, fmt.Sprintf("the %s stream of mapping %s last reported %s ago: is it running?", dir, name, time.Since(hb[i].Updated).Round(time.Second)))
				case hb[i].Lag > maxLag:
					problems = append(problems, fmt.Sprintf("the %s stream of mapping %s lags %s, more than cutover.max_lag_seconds (%s)", dir, name, hb[i].Lag.Round(time.Millisecond), maxLag))
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		}
	}
	var all, inverse []string
	for _, m := range cfg.Mappings {
		name := cmp.Or(m.Name, m.From)
		all = append(all, name)
		if m.Inverse != nil {
			inverse = append(inverse, name)
		}
	}
	return []cutover.Gate{
		{Name: "forward lag", Check: streams(newSide, apply.Forward, all)},
		{Name: "reverse stream ready", Check: streams(old, apply.Reverse, inverse)},
		{Name: "dead letters", Check: func(ctx context.Context) error {
			var problems []string
			for side, s := range map[string]sink.DeadLetterStore{"target": newSide, "source": old} {
				n, err := s.CountDeadLetters(ctx, "")
				if err != nil {
					return err
				}
				if n > 0 {
					problems = append(problems, fmt.Sprintf("%d dead letters stored in the %s database: `tandem dlq list` shows them; replay or drop them first", n, side))
				}
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		}},
		{Name: "reconcile", Check: func(ctx context.Context) error {
			res, err := Reconcile(ctx, cfg, ReconcileOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			var drifted []string
			n := 0
			for _, m := range res.Report.Mappings {
				for _, d := range m.Drifted {
					if slices.Contains(cohorts, d.Cohort) {
						n++
						if !slices.Contains(drifted, d.Cohort) {
							drifted = append(drifted, d.Cohort)
						}
					}
				}
			}
			if n > 0 {
				slices.Sort(drifted)
				return fmt.Errorf("reconcile finds %d drifted rows in cohorts %s: `tandem reconcile --once` lists them", n, strings.Join(drifted, ", "))
			}
			return nil
		}},
	}
}

// ownedTarget is the target as a repair or a re-sync writes it when cutover
// is configured: every batch goes through the forward stream's cohort
// filter (sink.Batch.Side), so that neither writes nor deletes a row of a
// cohort the new side owns. A write without a cohort (the delete of an
// extra target row) takes the cohort of the row it deletes.
type ownedTarget struct {
	connect.Target
	cohortColumns map[string]string // target table -> its cohort column ("": the default cohort)
}

// owned wraps tgt in an ownedTarget when cutover is configured.
func owned(cfg *config.Config, tgt connect.Target, mappings []*transform.Mapping) connect.Target {
	if cfg.Cutover == nil {
		return tgt
	}
	cols := map[string]string{}
	for _, m := range mappings {
		for _, o := range m.Outputs() {
			if c, err := m.OutputCohortColumn(o.Table); err == nil {
				cols[o.Table] = c
			}
		}
	}
	return ownedTarget{Target: tgt, cohortColumns: cols}
}

// Apply implements sink.Sink: b with Side new, each write with its cohort.
func (t ownedTarget) Apply(ctx context.Context, b sink.Batch, cp sink.Checkpoint) error {
	b.Side = sink.SideNew
	writes := make([]change.Write, 0, len(b.Writes))
	for _, w := range b.Writes {
		if w.Cohort == "" {
			col := t.cohortColumns[w.Table]
			if col == "" {
				w.Cohort = config.DefaultCohort
			} else {
				key := make(map[string]any, len(w.Key))
				for _, k := range w.Key {
					key[k] = w.Row[k]
				}
				row, found, err := t.Lookup(ctx, w.Table, key)
				if err != nil {
					return fmt.Errorf("read the cohort of %s %s: %w", w.Table, change.KeyText(w.Key, w.Row), err)
				}
				if !found {
					continue // nothing to delete
				}
				w.Cohort = transform.CohortOf(row[col])
			}
		}
		writes = append(writes, w)
	}
	b.Writes = writes
	return t.Target.Apply(ctx, b, cp)
}

// drainedOffsets is a switch's last drain step with an external Kafka
// cluster, where the capturer's acknowledged position means its records
// are in Kafka, not yet applied: once the log is reached, every record of
// the drained stream's topics is in Kafka, and the drain ends when the
// appliers have stored offsets (in store, the database they write) at the
// topics' ends as they were then. back drains the reverse stream.
func drainedOffsets(ctx context.Context, cfg *config.Config, cl *kgo.Client, store sink.Sink, back bool) (func(context.Context) (bool, error), error) {
	epoch, err := kafka.ClusterID(ctx, cl)
	if err != nil {
		return nil, err
	}
	reads := map[string][]string{} // group -> its topics
	for _, m := range cfg.Mappings {
		name := cmp.Or(m.Name, m.From)
		if !back {
			schema, table, _ := strings.Cut(m.From, ".")
			reads[cfg.Kafka.Group+"."+name] = []string{kafka.Topic(cfg.Kafka.TopicPrefix, change.Table{Schema: schema, Name: table})}
			continue
		}
		if m.Inverse == nil {
			continue
		}
		for _, o := range m.To {
			reads[cfg.Kafka.Group+".back."+name] = append(reads[cfg.Kafka.Group+".back."+name],
				kafka.Topic(connect.ReverseTopicPrefix(cfg), connect.QualifyTarget(cfg, o.Table)))
		}
	}
	var ends map[string]map[int32]int64
	return func(ctx context.Context) (bool, error) {
		if ends == nil {
			var topics []string
			for _, ts := range reads {
				topics = append(topics, ts...)
			}
			e, err := kafka.EndOffsets(ctx, cl, topics...)
			if err != nil {
				return false, err
			}
			ends = e
		}
		for group, topics := range reads {
			stored, err := store.Offsets(ctx, group, epoch)
			if err != nil {
				return false, err
			}
			next := map[string]map[int32]int64{}
			for _, o := range stored {
				if next[o.Topic] == nil {
					next[o.Topic] = map[int32]int64{}
				}
				next[o.Topic][o.Partition] = o.Next
			}
			for _, t := range topics {
				for part, end := range ends[t] {
					if end > 0 && next[t][part] < end {
						return false, nil
					}
				}
			}
		}
		return true, nil
	}, nil
}
