package backfill

import (
	"time"

	"github.com/tandemcdc/tandem/internal/change"
)

// State is where a table's copy stands, as Progress reports it.
type State string

// The states of a table's copy, in the order a table goes through them.
const (
	StateWaiting  State = "waiting"  // not started yet (parallel copies are all busy)
	StateCopying  State = "copying"  // reading and emitting chunks
	StateFlushing State = "flushing" // every chunk read, not all written yet
	StateDone     State = "done"     // every row copied and durable
	StateSkipped  State = "skipped"  // copied by an earlier run (--restart copies it again)
	StateFailed   State = "failed"   // the copy stopped with an error
)

// TableProgress is a snapshot of one table's copy.
type TableProgress struct {
	Table change.Table
	State State
	// Durable counts the rows copied and durable downstream (the saved
	// progress, including rows copied by earlier runs).
	Durable int64
	// Emitted counts the rows read and handed to the stream; Emitted -
	// Durable are in flight.
	Emitted int64
	// Estimated is the table's row count by the source's statistics; 0
	// when unknown (never analysed, or not looked up yet).
	Estimated int64
	// RowsPerSecond is the rate of this run: rows made durable since the
	// table's copy started, over the time it has been copying.
	RowsPerSecond float64
	// Elapsed is how long this run has been copying the table.
	Elapsed time.Duration
	// Throttled is the time the copy waited for the rate limit or a pause.
	Throttled time.Duration
}

// liveStats are the counters behind Progress, kept by the Runner as it
// copies. Guarded by Runner.mu.
type liveStats struct {
	tables map[change.Table]*tableStats
	now    func() time.Time // the clock; nil: time.Now
}

type tableStats struct {
	state     State
	est       int64
	resumed   int64 // durable rows when this run started the table
	emitted   int64
	throttled time.Duration
	// throttledBy is each key range's throttled time, throttled their
	// longest.
	throttledBy map[int]time.Duration
	started     time.Time
	finished    time.Time
}

func (l *liveStats) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

func (l *liveStats) table(t change.Table) *tableStats {
	if l.tables == nil {
		l.tables = map[change.Table]*tableStats{}
	}
	s := l.tables[t]
	if s == nil {
		s = &tableStats{state: StateWaiting}
		l.tables[t] = s
	}
	return s
}

// noteTable records a table about to be copied (StateWaiting) or skipped.
func (r *Runner) noteTable(t change.Table, st State, est, rows int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.live.table(t)
	s.state, s.est, s.resumed, s.emitted = st, est, rows, rows
}

// noteStart records that a table's copy started (the first of its key
// ranges: the others change nothing).
func (r *Runner) noteStart(t change.Table) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.live.table(t)
	if s.started.IsZero() {
		s.state, s.started = StateCopying, r.live.clock()
	}
}

// noteChunk records a chunk emitted by key range i of a table: rows the
// chunk's, throttled the range's running total.
func (r *Runner) noteChunk(t change.Table, i int, rows int64, throttled time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.live.table(t)
	s.emitted += rows
	if s.throttledBy == nil {
		s.throttledBy = map[int]time.Duration{}
	}
	s.throttledBy[i] = throttled
	// The ranges wait at once: the table waited as long as its range that
	// waited longest.
	s.throttled = 0
	for _, d := range s.throttledBy {
		s.throttled = max(s.throttled, d)
	}
}

// noteEnd records that a table's copy returned: the last of its key
// ranges, or one that failed (a failure stays).
func (r *Runner) noteEnd(t change.Table, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.live.table(t)
	if s.state == StateFailed {
		return
	}
	s.finished = r.live.clock()
	s.state = StateFlushing
	if err != nil {
		s.state = StateFailed
	}
}

// Progress returns a snapshot of each configured table's copy, in the
// order of Config.Tables. It is safe to call concurrently with Run, at
// any time (before Run, every table is waiting).
func (r *Runner) Progress() []TableProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.live.clock()
	out := make([]TableProgress, 0, len(r.cfg.Tables))
	for _, name := range r.cfg.Tables {
		p := TableProgress{Table: name, State: StateWaiting}
		s := r.live.tables[name]
		if s == nil {
			out = append(out, p)
			continue
		}
		p.State, p.Estimated, p.Durable, p.Emitted, p.Throttled = s.state, s.est, s.resumed, s.emitted, s.throttled
		if saved := r.progress[name]; saved != nil && s.state != StateSkipped {
			p.Durable = saved.Rows
		}
		if p.State == StateSkipped {
			p.Estimated = p.Durable
		}
		if !s.started.IsZero() {
			end := now
			if !s.finished.IsZero() {
				end = s.finished
			}
			p.Elapsed = end.Sub(s.started)
			if secs := p.Elapsed.Seconds(); secs > 0 {
				p.RowsPerSecond = float64(p.Durable-s.resumed) / secs
			}
		}
		if p.State == StateFlushing && p.Durable >= p.Emitted {
			p.State = StateDone
		}
		out = append(out, p)
	}
	return out
}
