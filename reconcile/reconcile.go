package reconcile

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/internal/repeat"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Source is what the reconciler reads of the source: tables in key order,
// as the backfill reads them, and single rows again by key.
type Source interface {
	Describe(ctx context.Context, t change.Table) (*change.Schema, error)
	Chunk(ctx context.Context, t *change.Schema, after []string, limit int) ([]change.Row, []string, error)
	// Row returns the current row of t with key's primary key values, nil
	// when there is none.
	Row(ctx context.Context, t *change.Schema, key change.Row) (change.Row, error)
}

// Config tunes a Reconciler.
type Config struct {
	ChunkRows        int                // rows per source chunk and target read; default 1000
	MaxRowsPerSecond float64            // source and target rows read per second, all sides together; 0: unbounded
	Settle           time.Duration      // how long a difference must last to be drift, on top of the replication lag; default 5s
	Rechecks         int                // re-checks of a row whose source keeps changing before it is "suspended"; default 3
	Tolerate         []config.Tolerance // reconcile.tolerate rules, for every column
	// MappingTolerate adds rules for every column a mapping writes, by
	// mapping name; ColumnTolerate adds rules for single target columns,
	// by mapping name and "<table>.<column>".
	MappingTolerate map[string][]config.Tolerance
	ColumnTolerate  map[string]map[string][]config.Tolerance
	Samples         int // drifted rows shown per mapping in the report (MappingReport.Samples); default 10
	// Rules are the mappings' known differences (transform.CompileRules),
	// by mapping name: see rules.go.
	Rules map[string][]*transform.Rule
	// Lag returns how far behind the source the pipeline applies (the
	// largest tandem_replication_lag_seconds), so a difference is re-checked
	// only once the stream has caught up past the moment it was seen. nil:
	// unknown (Settle alone).
	Lag func() time.Duration
	// Owners returns the cohorts' owners (sink.CohortStore.Cohorts of the
	// target) when cutover is configured; nil: the old side owns every
	// cohort. A row of a cohort the new side owns is compared the other way
	// (see back.go); one of a cohort being switched is in flight.
	Owners func(ctx context.Context) ([]sink.Ownership, error)
	// Drift, if set, stores each sweep's counts (`tandem status` reads
	// them); a failure to store is logged.
	Drift sink.DriftStore
}

func (c *Config) setDefaults() {
	if c.ChunkRows <= 0 {
		c.ChunkRows = 1000
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Second
	}
	if c.Rechecks <= 0 {
		c.Rechecks = 3
	}
	if c.Samples <= 0 {
		c.Samples = 10
	}
}

// Reconciler compares the source, mapped by the compiled mappings, with the
// target. Safe for one sweep at a time.
type Reconciler struct {
	cfg      Config
	src      Source
	tgt      RowReader
	mappings []*transform.Mapping
	metrics  *Metrics
	log      *slog.Logger
	tols     []tolerances // per mapping
	limiter  *rate.Limiter
	// srcHash and tgtHash summarise chunks on the servers, when both sides
	// can in a kind they share (hashers, sweepHashed); nil otherwise.
	srcHash ChunkHasher
	tgtHash RangeHasher
	// dlq reads the dead letters stored in the target, when it can, to say
	// whether an unmapped row has one.
	dlq          DeadLetterReader
	rules        []ruleSet             // per mapping
	inverseReads []map[string][]string // per mapping: transform.Mapping.InverseReads
	// hits counts, during a sweep, the differences each rule absorbed,
	// per mapping by rule name; nil outside a sweep.
	hits []map[string]int
	// reverses are the mappings run backwards (transform.NewReverse), for
	// the rows of cohorts the new side owns; nil for a mapping that has
	// none, or without cfg.Owners. Made by each sweep.
	reverses []*transform.Reverse
	// settleEarly, during a sweep, settles differences found so far once
	// maxHeldSuspects are held (settleIfFull); nil outside a sweep.
	settleEarly func(ctx context.Context, suspects []*suspect) error
	// driftStores summarises the failures to store drift counts (a
	// target without tandem's tables: a reconcile beside no run).
	driftStores *repeat.Log
}

// New returns a Reconciler. metrics may be nil.
func New(cfg Config, src Source, tgt RowReader, mappings []*transform.Mapping, metrics *Metrics, log *slog.Logger) *Reconciler {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	lim := rate.NewLimiter(rate.Inf, 0)
	if cfg.MaxRowsPerSecond > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.MaxRowsPerSecond), max(cfg.ChunkRows, int(cfg.MaxRowsPerSecond)))
	}
	r := &Reconciler{cfg: cfg, src: src, tgt: tgt, mappings: mappings, metrics: metrics, log: log, limiter: lim,
		driftStores: repeat.New(log, "reconcile: store the drift counts for tandem status", repeat.WithLevel(slog.LevelWarn))}
	r.srcHash, r.tgtHash = hashers(src, tgt)
	r.dlq, _ = tgt.(DeadLetterReader)
	for _, m := range mappings {
		rules := append(slices.Clone(cfg.Tolerate), cfg.MappingTolerate[m.Name]...)
		t := tolerances{all: newTolerance(rules), columns: map[string]tolerance{}}
		for col, extra := range cfg.ColumnTolerate[m.Name] {
			t.columns[col] = newTolerance(append(slices.Clone(rules), extra...))
		}
		r.tols = append(r.tols, t)
		r.rules = append(r.rules, newRuleSet(cfg.Rules[m.Name]))
		r.inverseReads = append(r.inverseReads, m.InverseReads())
	}
	for i, m := range mappings {
		metrics.Init(m.Name)
		metrics.InitRules(m.Name, r.rules[i].names)
		if m.HasInverse() {
			metrics.Drift.WithLabelValues(m.Name, string(KindRoundTrip))
			if cfg.Owners != nil {
				metrics.Init(backName(m.Name))
				metrics.Drift.WithLabelValues(backName(m.Name), string(KindRoundTrip))
			}
		}
	}
	return r
}

// Unsettled states, the state label of tandem_reconcile_unsettled_rows.
const (
	StateInFlight  = "in_flight" // differed, then the stream caught up and it matched
	StateSuspended = "suspended" // the source row kept changing while re-checked
)

// Drift is one row that differs.
type Drift struct {
	Kind      DriftKind      `json:"kind"`                 // a Kind* constant
	Cohort    string         `json:"cohort,omitempty"`     // with cutover: the row's cohort (config.DefaultCohort for a mapping without cohort)
	Table     string         `json:"table"`                // the target table (the source table for KindRoundTrip and KindUnmapped)
	Key       map[string]any `json:"key"`                  // the target row's key (the source row's for KindRoundTrip and KindUnmapped)
	SourceKey change.Row     `json:"source_key,omitempty"` // the source row's primary key; nil for an extra row
	Columns   []string       `json:"columns,omitempty"`    // for a mismatch: the columns that differ
	Want      map[string]any `json:"want,omitempty"`       // what the mapping computes (nil for extra and unmapped)
	Got       map[string]any `json:"got,omitempty"`        // what the target holds (nil for missing and unmapped)
	// Error is why the mapping fails on the source row (KindUnmapped), or
	// its inverse (KindRoundTrip).
	Error string `json:"error,omitempty"`
	// DeadLetter says, for KindUnmapped, whether the target stores a dead
	// letter of the source row (`tandem dlq list`); nil when unknown (the
	// target's dead letters could not be read).
	DeadLetter *bool `json:"dead_letter,omitempty"`
}

// MappingReport is one mapping's result of a sweep.
type MappingReport struct {
	Mapping string `json:"mapping"`
	// Direction is Forward for the rows of cohorts the old side owns (the
	// source, mapped, compared with the target), Reverse for those of
	// cohorts the new side owns (the target's rows, through the inverse,
	// compared with the source): then Table and Key of a drifted row are
	// the source's, and missing, extra and mismatch are said of the source.
	Direction string `json:"direction"`
	Checked   int64  `json:"checked"` // source rows and target keys compared
	// Summarised counts the rows of Checked whose chunks both servers
	// summarised alike, so that they were not read (see sweepHashed).
	Summarised int64   `json:"summarised"`
	Missing    int     `json:"missing"`
	Extra      int     `json:"extra"`
	Mismatch   int     `json:"mismatch"`
	RoundTrip  int     `json:"round_trip"` // source rows that do not come back through the inverse
	InFlight   int     `json:"in_flight"`
	Suspended  int     `json:"suspended"`
	Samples    []Drift `json:"samples"` // up to Config.Samples drifted rows: the first of each kind, then the first others (in Drifted's order)
	Drifted    []Drift `json:"-"`       // every drifted row, for repair and export
	// Unmapped counts the source rows the mapping fails on: rows the target
	// should have and cannot, whether or not a dead letter says so.
	Unmapped int `json:"unmapped"`
	// Columns counts drifted rows per column, "<table>.<column>": target
	// columns of mismatches, source columns of round trips.
	Columns map[string]int `json:"columns"`
	// Rules counts, per rule of the mapping, the differences it absorbed
	// (see rules.go); nil for a mapping without rules.
	Rules map[string]int `json:"rules,omitempty"`
}

// Drift returns the number of drifted rows.
func (r MappingReport) Drift() int {
	return r.Missing + r.Extra + r.Mismatch + r.RoundTrip + r.Unmapped
}

// add files d, a drifted row, in the report and counts it (settle picks
// the samples once every row is filed).
func (r *MappingReport) add(d Drift) {
	r.Drifted = append(r.Drifted, d)
	switch d.Kind {
	case KindMissing:
		r.Missing++
	case KindExtra:
		r.Extra++
	case KindMismatch:
		r.Mismatch++
	case KindRoundTrip:
		r.RoundTrip++
	case KindUnmapped:
		r.Unmapped++
	}
	if len(d.Columns) > 0 && r.Columns == nil {
		r.Columns = map[string]int{}
	}
	for _, c := range d.Columns {
		r.Columns[d.Table+"."+c]++
	}
}

// Report is the result of one sweep over every mapping.
type Report struct {
	Mappings []MappingReport
	Took     time.Duration
}

// Drift returns the number of drifted rows over every mapping.
func (r *Report) Drift() int {
	n := 0
	for _, m := range r.Mappings {
		n += m.Drift()
	}
	return n
}

// suspect is a difference seen once, to be re-checked.
type suspect struct {
	Drift
	mapping   int // index into mappings
	output    int // the output of the mapping that writes the row
	src       *change.Schema
	seen      change.Row // the source row when the difference was seen (nil: none)
	confirmed int        // re-checks that found the same difference, the source row unchanged
	// ignored is the ignore_rows rule that matches seen: the suspect is
	// counted for it, never settled.
	ignored *transform.Rule
}

// maxHeldSuspects bounds the differences a sweep holds before it settles
// them: a sweep that meets a large transaction in flight (each of its rows
// differs until the stream has applied it) settles them a batch at a time
// instead of holding them all, so that its memory does not grow with the
// transaction. Settled early, a difference is re-checked earlier than at
// the end of the sweep, after the same wait (settle plus the lag).
var maxHeldSuspects = 10_000 // a variable for tests

// settleIfFull settles suspects at once (settleEarly) when they are
// maxHeldSuspects or more, and returns those still held.
func (r *Reconciler) settleIfFull(ctx context.Context, suspects []*suspect) ([]*suspect, error) {
	if len(suspects) < maxHeldSuspects || r.settleEarly == nil {
		return suspects, nil
	}
	return nil, r.settleEarly(ctx, suspects)
}

// confirmations is how many re-checks, each after a wait, must find a
// difference, its source row unchanged, before it is drift.
const confirmations = 2

// Sweep compares every mapping's rows once, then re-checks every difference
// once the stream has had time to catch up (Settle plus the replication
// lag): only those that last count as drift.
//
// A target table that one mapping writes, keyed by a copy of the source's
// integer primary key, is walked beside the source in key order: each
// source chunk is compared with the target rows of the same key range, read
// in order too, so memory stays bounded by the chunk and each side is read
// once. Any other target table is compared by key: its keys are read first
// (as 64-bit hashes), then the source in key order, mapped, and compared
// with the target rows of the same keys; the keys no source row produced are
// read again to name the extra rows. Reading the target's keys before the
// source makes "extra" sound: a target row whose source row still existed
// when the source pass read it is produced by that pass; one whose source
// row was deleted in between has a delete in flight, which the re-check
// sees applied.
func (r *Reconciler) Sweep(ctx context.Context) (*Report, error) {
	start := time.Now()
	reports := make([]MappingReport, len(r.mappings))
	r.hits = make([]map[string]int, len(r.mappings))
	defer func() { r.hits = nil }()
	for i, m := range r.mappings {
		reports[i].Mapping, reports[i].Direction = m.Name, Forward
		r.hits[i] = map[string]int{}
	}
	// The target tables, each with the mappings and outputs that write it.
	writers := map[string][]writer{}
	var tables []string
	for i, m := range r.mappings {
		for j, o := range m.Outputs() {
			if _, ok := writers[o.Table]; !ok {
				tables = append(tables, o.Table)
			}
			writers[o.Table] = append(writers[o.Table], writer{i, j})
		}
	}
	sources := make([]*change.Schema, len(r.mappings))
	for i, m := range r.mappings {
		var err error
		if sources[i], err = r.src.Describe(ctx, m.From); err != nil {
			return nil, fmt.Errorf("reconcile %s: %w", m.Name, err)
		}
	}
	r.reverses = r.reversesOf(sources)
	columns := map[string]map[string]column{}
	present := map[string]map[uint64]struct{}{} // tables compared by key: hashes of their keys
	for _, t := range tables {
		var err error
		if columns[t], err = r.columnsOf(ctx, t); err != nil {
			return nil, err
		}
		w := writers[t][0]
		if r.walks(writers, w, sources[w.mapping], columns[t]) {
			continue
		}
		key := r.mappings[w.mapping].Outputs()[w.output].Key
		if present[t], err = r.targetKeys(ctx, t, key); err != nil {
			return nil, err
		}
		reports[w.mapping].Checked += int64(len(present[t]))
	}
	var suspects, back []*suspect
	r.settleEarly = func(ctx context.Context, s []*suspect) error {
		b, err := r.settle(ctx, s, columns, reports)
		back = append(back, b...)
		return err
	}
	defer func() { r.settleEarly = nil }()
	for i, m := range r.mappings {
		s, checked, err := r.sweepSource(ctx, i, m, sources[i], writers, columns, present, &reports[i])
		if err != nil {
			return nil, err
		}
		reports[i].Checked += checked
		if suspects, err = r.settleIfFull(ctx, append(suspects, s...)); err != nil {
			return nil, err
		}
	}
	// Whatever no source row produced is extra, charged to the first
	// mapping that writes the table.
	for _, t := range tables {
		if len(present[t]) == 0 {
			continue
		}
		w := writers[t][0]
		extra, err := r.extraKeys(ctx, t, r.mappings[w.mapping].Outputs()[w.output].Key, present[t])
		if err != nil {
			return nil, err
		}
		for _, key := range extra {
			if suspects, err = r.settleIfFull(ctx, append(suspects, r.extra(w, sources[w.mapping], t, key))); err != nil {
				return nil, err
			}
		}
	}
	if err := r.settleEarly(ctx, suspects); err != nil {
		return nil, err
	}
	backReports, err := r.settleBack(ctx, back, sources, columns)
	if err != nil {
		return nil, err
	}
	reports = append(reports, backReports...)
	r.finish(ctx, start, sources, reports)
	return &Report{Mappings: reports, Took: time.Since(start)}, nil
}

// finish completes a sweep's reports (dead letters of unmapped rows, rule
// counts) and exports them.
func (r *Reconciler) finish(ctx context.Context, start time.Time, sources []*change.Schema, reports []MappingReport) {
	now := time.Now()
	for k := range reports {
		rep := &reports[k]
		i := slices.IndexFunc(r.mappings, func(m *transform.Mapping) bool { return m.Name == rep.Mapping })
		name := rep.Mapping
		if rep.Direction == Reverse {
			name = backName(name)
		} else {
			r.markDeadLetters(ctx, name, sources[i], rep)
		}
		if len(r.rules[i].names) > 0 && rep.Direction == Forward {
			rep.Rules = map[string]int{}
			for _, rule := range r.rules[i].names {
				rep.Rules[rule] = r.hits[i][rule]
				r.metrics.RuleRows.WithLabelValues(name, rule).Set(float64(r.hits[i][rule]))
			}
		}
		r.metrics.Drift.WithLabelValues(name, string(KindMissing)).Set(float64(rep.Missing))
		r.metrics.Drift.WithLabelValues(name, string(KindExtra)).Set(float64(rep.Extra))
		r.metrics.Drift.WithLabelValues(name, string(KindMismatch)).Set(float64(rep.Mismatch))
		r.metrics.Drift.WithLabelValues(name, string(KindUnmapped)).Set(float64(rep.Unmapped))
		if r.mappings[i].HasInverse() {
			r.metrics.Drift.WithLabelValues(name, string(KindRoundTrip)).Set(float64(rep.RoundTrip))
		}
		r.metrics.Unsettled.WithLabelValues(name, StateInFlight).Set(float64(rep.InFlight))
		r.metrics.Unsettled.WithLabelValues(name, StateSuspended).Set(float64(rep.Suspended))
		r.metrics.Checked.WithLabelValues(name).Add(float64(rep.Checked))
		r.metrics.LastSuccess.WithLabelValues(name).Set(float64(now.Unix()))
		r.metrics.Duration.WithLabelValues(name).Set(now.Sub(start).Seconds())
	}
	r.storeDrift(ctx, reports)
}

// storeDrift stores the counts of reports in Config.Drift, if set.
func (r *Reconciler) storeDrift(ctx context.Context, reports []MappingReport) {
	if r.cfg.Drift == nil {
		return
	}
	var counts []sink.DriftCount
	for _, rep := range reports {
		for _, k := range []struct {
			kind DriftKind
			rows int
		}{{KindMissing, rep.Missing}, {KindExtra, rep.Extra}, {KindMismatch, rep.Mismatch}, {KindRoundTrip, rep.RoundTrip}, {KindUnmapped, rep.Unmapped}} {
			counts = append(counts, sink.DriftCount{Mapping: rep.Label(), Kind: string(k.kind), Rows: k.rows})
		}
	}
	switch err := r.cfg.Drift.StoreDrift(ctx, counts); {
	case err == nil:
		r.driftStores.OK()
	case ctx.Err() == nil:
		r.driftStores.Fail(err)
	}
}

// columnsOf classifies the columns of target table t for comparison.
func (r *Reconciler) columnsOf(ctx context.Context, t string) (map[string]column, error) {
	types, err := r.tgt.ColumnTypes(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read the columns of target table %s: %w", t, err)
	}
	out := make(map[string]column, len(types))
	for c, typ := range types {
		out[c] = columnOf(typ)
	}
	return out, nil
}

// writer is one output of one mapping.
type writer struct{ mapping, output int }

// walks reports whether the target table of w, whose columns are cols, is
// walked beside its source: only w writes it, and its key copies the
// source's integer primary key, column for column, into integer columns, so
// both sides sort alike.
func (r *Reconciler) walks(writers map[string][]writer, w writer, st *change.Schema, cols map[string]column) bool {
	o := r.mappings[w.mapping].Outputs()[w.output]
	if len(writers[o.Table]) != 1 || len(o.Key) != len(st.Key) {
		return false
	}
	for i, k := range o.Key {
		if o.Copied[k] != st.Key[i] || st.Types[st.Key[i]] != change.TypeInt || cols[k].kind != kindInt {
			return false
		}
	}
	return true
}

// extra is the suspect of a target row no source row produced. When the
// output's key copies the source's primary key, the re-check reads the
// source row of the same key: a row that comes back and produces the target
// row meanwhile (its `when` turned false and true again) is then in flight.
func (r *Reconciler) extra(w writer, st *change.Schema, table string, key map[string]any) *suspect {
	s := &suspect{Drift: Drift{Kind: KindExtra, Table: table, Key: key}, mapping: w.mapping, output: w.output}
	if sk := sourceKey(r.mappings[w.mapping].Outputs()[w.output], st, key); sk != nil {
		s.src, s.SourceKey = st, sk
	}
	return s
}

// rowHash is a target row's identity in a key set: 64 bits of its RowID,
// a fraction of the memory of the keys themselves.
func rowHash(table string, key []string, row map[string]any) uint64 {
	h := fnv.New64a()
	h.Write([]byte(change.RowID(table, key, row)))
	return h.Sum64()
}

// targetKeys reads every key of target table t, as hashes.
func (r *Reconciler) targetKeys(ctx context.Context, t string, key []string) (map[uint64]struct{}, error) {
	out := map[uint64]struct{}{}
	err := r.scanKeys(ctx, t, key, func(k map[string]any) { out[rowHash(t, key, k)] = struct{}{} })
	return out, err
}

// extraKeys reads the keys of target table t again and returns those whose
// hash is in left.
func (r *Reconciler) extraKeys(ctx context.Context, t string, key []string, left map[uint64]struct{}) ([]map[string]any, error) {
	var out []map[string]any
	err := r.scanKeys(ctx, t, key, func(k map[string]any) {
		if _, ok := left[rowHash(t, key, k)]; ok {
			out = append(out, k)
		}
	})
	return out, err
}

// scanKeys calls fn with every key of target table t, in key order.
func (r *Reconciler) scanKeys(ctx context.Context, t string, key []string, fn func(map[string]any)) error {
	var after map[string]any
	for {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return err
		}
		keys, err := r.tgt.ScanRows(ctx, t, key, key, after, r.cfg.ChunkRows)
		if err != nil {
			return fmt.Errorf("reconcile: read the keys of target table %s: %w", t, err)
		}
		for _, k := range keys {
			fn(k)
		}
		if len(keys) < r.cfg.ChunkRows {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

// walk is a walked target table's cursor: the rows read ahead, in key
// order, and the pages a reader goroutine fetches beyond them.
type walk struct {
	out   transform.Output
	ahead []map[string]any
	pages <-chan page[[]map[string]any]
	done  bool
}

// page is one fetch of a prefetching reader.
type page[T any] struct {
	v   T
	err error
}

// prefetch calls fetch in a goroutine until it says there is no more, it
// fails or ctx ends, handing each result over one ahead, so reading the
// next page overlaps with comparing this one. wg counts the goroutine.
func prefetch[T any](ctx context.Context, wg *sync.WaitGroup, fetch func(ctx context.Context) (v T, more bool, err error)) <-chan page[T] {
	ch := make(chan page[T], 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		for {
			v, more, err := fetch(ctx)
			select {
			case ch <- page[T]{v, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || !more {
				return
			}
		}
	}()
	return ch
}

// newWalk starts reading target rows of o in key order, after the key
// after (nil: from the start).
func (r *Reconciler) newWalk(ctx context.Context, wg *sync.WaitGroup, o transform.Output, after map[string]any) *walk {
	return &walk{out: o, pages: prefetch(ctx, wg, func(ctx context.Context) ([]map[string]any, bool, error) {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return nil, false, err
		}
		rows, err := r.tgt.ScanRows(ctx, o.Table, o.Key, o.Columns, after, r.cfg.ChunkRows)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile: read target table %s in key order: %w", o.Table, err)
		}
		if len(rows) > 0 {
			after = pick(rows[len(rows)-1], o.Key)
		}
		return rows, len(rows) == r.cfg.ChunkRows, nil
	})}
}

// walkStart is where the walk of walked output o starts for a source
// read from after its key from: the same integer key as o's key (nil: the
// start).
func walkStart(o transform.Output, st *change.Schema, from []string) (map[string]any, error) {
	if from == nil {
		return nil, nil
	}
	start := make(map[string]any, len(o.Key))
	for i, k := range st.Key {
		v, err := strconv.ParseInt(from[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("source key %q of column %s is not an integer: %w", from[i], k, err)
		}
		start[o.Key[i]] = v
	}
	return start, nil
}

// upTo returns the walk's next target rows with a key up to hi, a target
// key (nil: no bound), at most limit of them, and whether rows up to hi
// may be left (more), with how many rows it read from the target.
func (r *Reconciler) upTo(ctx context.Context, w *walk, hi map[string]any, limit int) (_ []map[string]any, read int64, more bool, _ error) {
	var out []map[string]any
	for {
		for len(w.ahead) > 0 && (hi == nil || compareKeys(w.ahead[0], hi, w.out.Key) <= 0) {
			if len(out) == limit {
				return out, read, true, nil
			}
			out = append(out, w.ahead[0])
			w.ahead = w.ahead[1:]
		}
		if len(w.ahead) > 0 || w.done {
			return out, read, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, false, ctx.Err()
		case p, ok := <-w.pages:
			switch {
			case !ok:
				w.done = true
			case p.err != nil:
				return nil, 0, false, p.err
			default:
				read += int64(len(p.v))
				w.ahead = p.v
			}
		}
	}
}

// sweepSource compares mapping m's rows: by chunk summaries when it copies
// its table as it is (sweepHashed), row by row otherwise (sweepRows), or
// from where summaries stopped paying.
func (r *Reconciler) sweepSource(ctx context.Context, i int, m *transform.Mapping, st *change.Schema, writers map[string][]writer,
	columns map[string]map[string]column, present map[string]map[uint64]struct{}, rep *MappingReport) ([]*suspect, int64, error) {
	o, srcCols, ok := r.hashable(writers, i, st, columns)
	if !ok {
		return r.sweepRows(ctx, i, m, st, writers, columns, present, nil, rep)
	}
	suspects, checked, resume, err := r.sweepHashed(ctx, i, st, o, srcCols, columns[o.Table], rep)
	if err != nil || resume == nil {
		return suspects, checked, err
	}
	more, n, err := r.sweepRows(ctx, i, m, st, writers, columns, present, resume, rep)
	return append(suspects, more...), checked + n, err
}

// sweepRows reads mapping m's source table in chunks from after its key
// from (nil: from the start), maps each row and compares the rows it
// becomes with the target's: walked tables by the chunk's key range, the
// others by key (taking what it expects out of present). Only walked tables
// can start past the start.
func (r *Reconciler) sweepRows(ctx context.Context, i int, m *transform.Mapping, st *change.Schema, writers map[string][]writer,
	columns map[string]map[string]column, present map[string]map[uint64]struct{}, from []string, rep *MappingReport) ([]*suspect, int64, error) {
	outputs := m.Outputs()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	walks := make([]*walk, len(outputs))
	for j, o := range outputs {
		if r.walks(writers, writer{i, j}, st, columns[o.Table]) {
			start, err := walkStart(o, st, from)
			if err != nil {
				return nil, 0, fmt.Errorf("reconcile %s: %w", m.Name, err)
			}
			walks[j] = r.newWalk(ctx, &wg, o, start)
		} else if from != nil {
			return nil, 0, fmt.Errorf("reconcile %s: cannot start comparing %s by key past the start", m.Name, o.Table)
		}
	}
	after := from
	chunks := prefetch(ctx, &wg, func(ctx context.Context) ([]change.Row, bool, error) {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return nil, false, err
		}
		rows, last, err := r.src.Chunk(ctx, st, after, r.cfg.ChunkRows)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile %s: read source %s: %w", m.Name, m.From, err)
		}
		after = last
		return rows, len(rows) == r.cfg.ChunkRows, nil
	})
	var (
		suspects []*suspect
		checked  int64
	)
	for {
		var rows []change.Row
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case p, ok := <-chunks:
			if ok && p.err != nil {
				return nil, 0, p.err
			}
			rows = p.v // a closed channel: no more rows
		}
		checked += int64(len(rows))
		c := r.mapChunk(ctx, i, m, st, walks, present, rows)
		final := len(rows) < r.cfg.ChunkRows
		var differs []*suspect // this chunk's source rows that differ forward
		keep := func(s []*suspect) {
			s = r.dropIgnored(i, s)
			for _, x := range s {
				if x.seen != nil {
					differs = append(differs, x)
				}
			}
			suspects = append(suspects, s...)
		}
		for j, o := range outputs {
			if walks[j] == nil {
				s, err := r.compare(ctx, i, o, c.want[j], columns[o.Table])
				if err != nil {
					return nil, 0, err
				}
				keep(s)
				continue
			}
			var hi map[string]any // the chunk's last source key, as the target's key
			if !final {
				hi = make(map[string]any, len(o.Key))
				for _, k := range o.Key {
					hi[k] = rows[len(rows)-1][o.Copied[k]]
				}
			}
			want := func(context.Context) ([]expected, bool, error) { return c.ordered[j], false, nil }
			got := func(ctx context.Context) ([]map[string]any, bool, error) {
				page, read, more, err := r.upTo(ctx, walks[j], hi, r.cfg.ChunkRows)
				checked += read
				return page, more, err
			}
			err := r.mergePaged(ctx, i, j, st, columns[o.Table], want, got, func(s []*suspect) error {
				keep(s)
				var err error
				suspects, err = r.settleIfFull(ctx, suspects)
				return err
			})
			if err != nil {
				return nil, 0, err
			}
		}
		r.fileRoundTrips(m, st, c.trips, differs, rep)
		suspects = append(suspects, c.unmapped...)
		if final {
			return suspects, checked, nil
		}
		var err error
		if suspects, err = r.settleIfFull(ctx, suspects); err != nil {
			return nil, 0, err
		}
	}
}

// mappedChunk is what one source chunk should be in the target: for each
// output, its rows by target row id (want), or, for a walked output, in
// the source's key order (ordered); the rows that do not come back
// through the inverse (trips); and the rows the mapping fails on
// (unmapped).
type mappedChunk struct {
	want     []map[string]*suspect
	ordered  [][]expected
	trips    []Drift
	unmapped []*suspect
}

// mapChunk maps a chunk of source rows through mapping i. A row on which
// the mapping fails is a row the target should have and cannot: an
// unmapped suspect, whether or not its change was dead-lettered (a dead
// letter dropped, a row that failed in the backfill are the same). A row
// an ignore_rows rule matches is compared all the same, and what it would
// drift is counted for the rule. Rows of an unwalked output are struck
// from present.
func (r *Reconciler) mapChunk(ctx context.Context, i int, m *transform.Mapping, st *change.Schema, walks []*walk,
	present map[string]map[uint64]struct{}, rows []change.Row) mappedChunk {
	outputs := m.Outputs()
	c := mappedChunk{want: make([]map[string]*suspect, len(outputs)), ordered: make([][]expected, len(outputs))}
	for j := range outputs {
		if walks[j] == nil {
			c.want[j] = map[string]*suspect{}
		}
	}
	for _, row := range rows {
		var ignored *transform.Rule
		if len(r.rules[i].rows) > 0 {
			ignored = r.ignored(i, row)
		}
		mapped, err := m.Apply(ctx, row)
		if err != nil {
			if ignored != nil {
				r.count(i, ignored)
			} else {
				c.unmapped = append(c.unmapped, unmapped(i, m, st, row, err))
			}
			continue
		}
		if m.HasInverse() && len(mapped) > 0 {
			d, ok, absorbed := r.roundTrip(ctx, i, st, row, mapped)
			switch {
			case ignored != nil && ok:
				r.count(i, ignored)
			case ignored == nil:
				r.count(i, absorbed...)
				if ok {
					c.trips = append(c.trips, d)
				}
			}
		}
		for _, tr := range mapped {
			j := slices.IndexFunc(outputs, func(o transform.Output) bool { return o.Table == tr.Table })
			e := expected{want: tr.Columns, seen: row, ignored: ignored}
			if walks[j] != nil {
				c.ordered[j] = append(c.ordered[j], e)
				continue
			}
			delete(present[tr.Table], rowHash(tr.Table, tr.Key, tr.Columns))
			c.want[j][change.RowID(tr.Table, tr.Key, tr.Columns)] = newSuspect(tr.Table, i, j, st, e)
		}
	}
	return c
}

// unmapped is the suspect of source row row, on which mapping i, m, fails
// with err: it has no target row, so its table and key are the source's.
func unmapped(i int, m *transform.Mapping, st *change.Schema, row change.Row, err error) *suspect {
	key := pick(row, st.Key)
	return &suspect{Drift: Drift{Kind: KindUnmapped, Table: m.From.String(), Key: key, SourceKey: key, Error: err.Error()},
		mapping: i, output: -1, src: st, seen: row}
}

// fileRoundTrips files in rep the round trips of a chunk's rows whose
// target rows compared equal: equal to what the mapping makes of the
// source row (under the tolerance rules), they give back what its inverse
// gives back of those, so source == inverse(target) is checked without
// reading them twice. A row that differs forward (in differs) is settled
// as such first; its round trip says nothing yet.
func (r *Reconciler) fileRoundTrips(m *transform.Mapping, st *change.Schema, trips []Drift, differs []*suspect, rep *MappingReport) {
	if len(trips) == 0 {
		return
	}
	table := m.From.String()
	skip := map[string]bool{}
	for _, s := range differs {
		if s.seen != nil {
			skip[change.RowID(table, st.Key, s.seen)] = true
		}
	}
	for _, d := range trips {
		if !skip[change.RowID(table, st.Key, d.SourceKey)] {
			rep.add(d)
		}
	}
}

// compare reads the target rows of want's keys and returns the differences.
func (r *Reconciler) compare(ctx context.Context, i int, o transform.Output, want map[string]*suspect, cols map[string]column) ([]*suspect, error) {
	if len(want) == 0 {
		return nil, nil
	}
	keys := make([]map[string]any, 0, len(want))
	for _, s := range want {
		s.keys(o)
		keys = append(keys, s.Key)
	}
	if err := r.limiter.WaitN(ctx, min(len(keys), r.limiter.Burst())); err != nil {
		return nil, err
	}
	got, err := r.tgt.ReadKeys(ctx, o.Table, o.Key, o.Columns, keys)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read target table %s: %w", o.Table, err)
	}
	return r.compareRows(i, o, want, got, cols), nil
}

// compareRows compares the rows want expects with the target rows got
// that share their keys: missing and mismatched rows.
func (r *Reconciler) compareRows(i int, o transform.Output, want map[string]*suspect, got []map[string]any, cols map[string]column) []*suspect {
	byID := make(map[string]map[string]any, len(got))
	var out []*suspect
	for _, g := range got {
		byID[change.RowID(o.Table, o.Key, g)] = g
	}
	for id, s := range want {
		g, ok := byID[id]
		if !ok {
			s.Kind = KindMissing
			s.keys(o)
			out = append(out, s)
			continue
		}
		diff, absorbed := r.differing(i, o.Table, s.Want, g, cols)
		if s.ignored == nil {
			r.count(i, absorbed...)
		}
		if len(diff) > 0 {
			s.Kind, s.Columns, s.Got = KindMismatch, diff, g
			s.keys(o)
			out = append(out, s)
		}
	}
	return out
}

// expected is a target row a source row maps to, not yet compared: a
// suspect is made of it only when it differs.
type expected struct {
	want    map[string]any  // the target row the mapping computes
	seen    change.Row      // the source row
	ignored *transform.Rule // the ignore_rows rule that matches seen, if any
}

// newSuspect is the suspect of e, a row of target table, output j of
// mapping i, whose source table is st. Its Key and SourceKey are picked
// only once it differs (suspect.keys).
func newSuspect(table string, i, j int, st *change.Schema, e expected) *suspect {
	return &suspect{Drift: Drift{Table: table, Want: e.want}, mapping: i, output: j, src: st, seen: e.seen, ignored: e.ignored}
}

// mergeRows compares the rows of output j of mapping i, a walked output,
// both in key order: what the source's rows map to (want) and every target
// row of the same key range (got), as a merge, without building ids or
// maps.
func (r *Reconciler) mergeRows(i, j int, st *change.Schema, want []expected, got []map[string]any, cols map[string]column) []*suspect {
	o := r.mappings[i].Outputs()[j]
	var out []*suspect
	for len(want) > 0 || len(got) > 0 {
		c := 1 // no target rows left: the rest of want is missing
		if len(want) == 0 {
			c = -1
		} else if len(got) > 0 {
			c = compareKeys(got[0], want[0].want, o.Key)
		}
		switch {
		case c < 0: // a target row no source row maps to
			out = append(out, r.extra(writer{i, j}, st, o.Table, pick(got[0], o.Key)))
			got = got[1:]
		case c > 0:
			s := newSuspect(o.Table, i, j, st, want[0])
			s.Kind = KindMissing
			s.keys(o)
			out = append(out, s)
			want = want[1:]
		default:
			diff, absorbed := r.differing(i, o.Table, want[0].want, got[0], cols)
			if want[0].ignored == nil {
				r.count(i, absorbed...)
			}
			if len(diff) > 0 {
				s := newSuspect(o.Table, i, j, st, want[0])
				s.Kind, s.Columns, s.Got = KindMismatch, diff, got[0]
				s.keys(o)
				out = append(out, s)
			}
			want, got = want[1:], got[1:]
		}
	}
	return out
}

// compareKeys orders two rows by their integer key columns.
func compareKeys(a, b map[string]any, key []string) int {
	for _, k := range key {
		x, _ := a[k].(int64)
		y, _ := b[k].(int64)
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// keys picks the suspect's target key and source key from its rows, once.
func (s *suspect) keys(o transform.Output) {
	if s.Key == nil {
		s.Key = pick(s.Want, o.Key)
	}
	if s.SourceKey == nil && s.seen != nil && s.src != nil {
		s.SourceKey = pick(s.seen, s.src.Key)
	}
}

// tolerances are one mapping's tolerance rules: for all its columns, and
// for the columns with rules of their own ("<table>.<column>").
type tolerances struct {
	all     tolerance
	columns map[string]tolerance
}

// of returns the rules of one target column.
func (t tolerances) of(table, column string) tolerance {
	if len(t.columns) > 0 {
		if c, ok := t.columns[table+"."+column]; ok {
			return c
		}
	}
	return t.all
}

// settle re-checks each difference once the stream has had time to apply
// what was in flight when it was seen, and files it in the reports: drift
// if it lasts with the source row unchanged, in flight if it went away,
// suspended if the source row kept changing.
func (r *Reconciler) settle(ctx context.Context, suspects []*suspect, columns map[string]map[string]column, reports []MappingReport) (back []*suspect, err error) {
	for round := 0; len(suspects) > 0; round++ {
		if err := r.wait(ctx); err != nil {
			return nil, err
		}
		owners, err := r.owners(ctx)
		if err != nil {
			return nil, err
		}
		var again []*suspect
		for _, s := range suspects {
			state, err := r.recheck(ctx, s, columns[s.Table])
			if err != nil {
				return nil, err
			}
			rep := &reports[s.mapping]
			if state == "changed" {
				s.confirmed = 0
			}
			switch {
			case state == "":
				rep.InFlight++
			case state == "changed" && round+1 < r.cfg.Rechecks:
				again = append(again, s)
			case state == sourceChanged:
				rep.Suspended++
			case s.confirmed+1 < confirmations:
				// Seen again, the same: once more after another wait, so a
				// stream slower than its lag gauge says is not drift.
				s.confirmed++
				again = append(again, s)
			default:
				s.Kind = state
				switch r.ownerOf(s, owners) {
				case sink.OwnerSwitching: // its stream changes hands: the next sweep sees it settled
					rep.InFlight++
				case sink.OwnerNew:
					back = append(back, s)
				default:
					rep.add(s.Drift)
				}
			}
		}
		suspects = again
	}
	for i := range reports {
		sortDrift(reports[i].Drifted)
		reports[i].Samples = samples(reports[i].Drifted, r.cfg.Samples)
	}
	return back, nil
}

// samples picks up to n of ds, drifted rows in order, keeping that order:
// the first of each kind, so that a few unmapped rows show beside many
// mismatches, then the first others.
func samples(ds []Drift, n int) []Drift {
	if len(ds) <= n {
		return slices.Clone(ds)
	}
	picked := make([]bool, len(ds))
	k := 0
	first := map[DriftKind]bool{}
	for j, d := range ds {
		if !first[d.Kind] && k < n {
			first[d.Kind], picked[j] = true, true
			k++
		}
	}
	for j := range ds {
		if k == n {
			break
		}
		if !picked[j] {
			picked[j] = true
			k++
		}
	}
	out := make([]Drift, 0, n)
	for j, d := range ds {
		if picked[j] {
			out = append(out, d)
		}
	}
	return out
}

// wait lets the stream catch up: Settle plus the current replication lag.
func (r *Reconciler) wait(ctx context.Context) error {
	d := r.cfg.Settle
	if r.cfg.Lag != nil {
		d += r.cfg.Lag()
	}
	return poll.Sleep(ctx, d)
}

// sourceChanged is recheck's answer for a row whose source changed since
// it was seen: not a drift kind.
const sourceChanged DriftKind = "changed"

// recheck compares one suspect's row again. It returns "" when the row now
// matches, sourceChanged when the source row changed since it was seen (and
// records the new one), or the drift kind.
func (r *Reconciler) recheck(ctx context.Context, s *suspect, cols map[string]column) (DriftKind, error) {
	if s.output < 0 {
		return r.recheckUnmapped(ctx, s)
	}
	m := r.mappings[s.mapping]
	o := m.Outputs()[s.output]
	if err := r.limiter.WaitN(ctx, min(2, r.limiter.Burst())); err != nil {
		return "", err
	}
	got, err := r.tgt.ReadKeys(ctx, o.Table, o.Key, o.Columns, []map[string]any{s.Key})
	if err != nil {
		return "", fmt.Errorf("reconcile: re-read target table %s: %w", o.Table, err)
	}
	var g map[string]any
	if len(got) > 0 {
		g = got[0]
	}
	if s.src == nil { // an extra row: still there?
		if g == nil {
			return "", nil
		}
		s.Got = g
		return KindExtra, nil
	}
	cur, err := r.src.Row(ctx, s.src, s.SourceKey)
	if err != nil {
		return "", fmt.Errorf("reconcile %s: re-read source %s: %w", m.Name, m.From, err)
	}
	if !reflect.DeepEqual(map[string]any(cur), map[string]any(s.seen)) {
		s.seen = cur
		return sourceChanged, nil
	}
	var want map[string]any
	if cur != nil {
		if r.ignored(s.mapping, cur) != nil {
			return "", nil
		}
		mapped, err := m.Apply(ctx, cur)
		if err != nil && g == nil { // the row is not there, and cannot be
			s.Error, s.Want, s.Got = err.Error(), nil, nil
			return KindUnmapped, nil
		}
		for _, tr := range mapped {
			if tr.Table == o.Table && change.RowID(tr.Table, tr.Key, tr.Columns) == change.RowID(o.Table, o.Key, s.Key) {
				want = tr.Columns
			}
		}
	}
	s.Want, s.Got = want, g
	switch {
	case want == nil && g == nil:
		return "", nil
	case want == nil:
		return KindExtra, nil
	case g == nil:
		return KindMissing, nil
	}
	if s.Columns, _ = r.differing(s.mapping, o.Table, want, g, cols); len(s.Columns) > 0 {
		return KindMismatch, nil
	}
	return "", nil
}

// recheckUnmapped re-checks the suspect of a source row the mapping
// failed on: KindUnmapped while it still fails, sourceChanged when the
// source row changed since (or is gone), "" once it maps (the next sweep
// compares its rows) or an ignore_rows rule matches it.
func (r *Reconciler) recheckUnmapped(ctx context.Context, s *suspect) (DriftKind, error) {
	m := r.mappings[s.mapping]
	if err := r.limiter.WaitN(ctx, min(1, r.limiter.Burst())); err != nil {
		return "", err
	}
	cur, err := r.src.Row(ctx, s.src, s.SourceKey)
	if err != nil {
		return "", fmt.Errorf("reconcile %s: re-read source %s: %w", m.Name, m.From, err)
	}
	if !reflect.DeepEqual(map[string]any(cur), map[string]any(s.seen)) {
		s.seen = cur
		return sourceChanged, nil
	}
	if cur == nil || r.ignored(s.mapping, cur) != nil {
		return "", nil
	}
	if _, err := m.Apply(ctx, cur); err != nil {
		s.Error = err.Error()
		return KindUnmapped, nil
	}
	return "", nil
}

// sourceKey returns the source primary key of the target row with key,
// when the output copies each source key column into a target key column;
// nil otherwise.
func sourceKey(o transform.Output, st *change.Schema, key map[string]any) change.Row {
	out := change.Row{}
	for _, sc := range st.Key {
		found := false
		for _, k := range o.Key {
			if o.Copied[k] == sc {
				out[sc], found = key[k], true
			}
		}
		if !found {
			return nil
		}
	}
	return out
}

// pick returns the columns cols of row.
func pick[M ~map[string]any](row M, cols []string) M {
	out := make(M, len(cols))
	for _, c := range cols {
		out[c] = row[c]
	}
	return out
}

// sortDrift orders drifted rows by table, then key (numbers by value).
func sortDrift(ds []Drift) {
	slices.SortFunc(ds, func(a, b Drift) int {
		if c := strings.Compare(a.Table, b.Table); c != 0 {
			return c
		}
		for _, k := range slices.Sorted(maps.Keys(a.Key)) {
			x, xok := number(a.Key[k])
			y, yok := number(b.Key[k])
			if xok && yok {
				if c := x.Cmp(y); c != 0 {
					return c
				}
				continue
			}
			if c := strings.Compare(text(a.Key[k]), text(b.Key[k])); c != 0 {
				return c
			}
		}
		return 0
	})
}
