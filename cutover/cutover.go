package cutover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tandemcdc/tandem/internal/poll"
	"github.com/tandemcdc/tandem/sink"
)

// Log is a database's change log as a switch drains it.
type Log interface {
	// Head returns where the log ends now, as text Reached understands.
	Head(ctx context.Context) (string, error)
	// Reached reports whether the stream reading the database has
	// acknowledged pos: every change before it is applied downstream.
	Reached(ctx context.Context, pos string) (bool, error)
}

// DB is one database of the migration as a switch uses it.
type DB struct {
	Side  sink.Side
	Store sink.CohortStore
	Log   Log // the log the stream out of this database reads
}

// Gate is one check a switch makes before it changes anything.
type Gate struct {
	Name  string
	Check func(ctx context.Context) error // nil: passes; an error says why not
}

// ErrRefused is wrapped by Switch when a gate fails or the drain does not
// finish within the fence timeout: nothing was changed (or all was undone).
var ErrRefused = errors.New("switch refused")

// Options say what to switch and how.
type Options struct {
	Old, New DB
	Cohorts  []string // the cohorts to move
	To       sink.Side
	// FenceTimeout is the longest the cohorts' writes are fenced: a drain
	// that takes longer undoes the switch.
	FenceTimeout time.Duration
	Gates        []Gate
	// Drained, if set, is waited for once the log is reached, within the
	// fence timeout (an external Kafka cluster: the appliers' stored
	// offsets at the topics' ends).
	Drained func(ctx context.Context) (bool, error)
	Log     *slog.Logger
	// Fenced, if set, is told how long the cohorts' writes were fenced.
	Fenced func(to sink.Side, d time.Duration)
	// Phase, if set, is called as each phase begins (gates, switching,
	// fence, drain, commit, flip): tests kill the process there.
	Phase func(name string)
}

// Result is a switch done.
type Result struct {
	Cohorts []string      // the cohorts moved (those T owned already are left out)
	Already []string      // cohorts T owned already
	Fenced  time.Duration // how long their writes were fenced
}

// Switch moves the cohorts' writes to side o.To: gates, fence, drain,
// flip (see the package doc). It returns once the switch is done, or
// undone (an error wrapping ErrRefused when a gate or the drain's deadline
// refused it).
func Switch(ctx context.Context, o Options) (Result, error) {
	log := cmp.Or(o.Log, slog.Default())
	phase := func(name string) {
		if o.Phase != nil {
			o.Phase(name)
		}
	}
	from, to := o.To.Other(), o.To
	dbF, dbT := o.Old, o.New
	if to == sink.SideOld {
		dbF, dbT = o.New, o.Old
	}
	if _, err := Recover(ctx, o.Old.Store, o.New.Store, log); err != nil {
		return Result{}, err
	}
	owners, err := dbT.Store.Cohorts(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("read the cohorts' owners in the %s database: %w", to, err)
	}
	stored := map[string]sink.Ownership{}
	for _, ow := range owners {
		stored[ow.Cohort] = ow
	}
	var res Result
	var versions []int64
	for _, c := range dedupe(o.Cohorts) {
		ow := stored[c]
		if owner(ow) == to {
			res.Already = append(res.Already, c)
			continue
		}
		res.Cohorts = append(res.Cohorts, c)
		versions = append(versions, ow.Version)
	}
	if len(res.Cohorts) == 0 {
		return res, nil
	}
	phase("gates")
	var refused []string
	for _, g := range o.Gates {
		if err := g.Check(ctx); err != nil {
			refused = append(refused, g.Name+": "+err.Error())
		}
	}
	if len(refused) > 0 {
		return Result{}, fmt.Errorf("%w: %s", ErrRefused, strings.Join(refused, "; "))
	}
	set := func(owner sink.Owner, dest sink.Side) []sink.Ownership {
		out := make([]sink.Ownership, len(res.Cohorts))
		for i, c := range res.Cohorts {
			out[i] = sink.Ownership{Cohort: c, Owner: owner, To: dest, Version: versions[i] + 1}
		}
		return out
	}
	phase("switching")
	if err := dbT.Store.SetOwners(ctx, set(sink.OwnerSwitching, to)); err != nil {
		return Result{}, fmt.Errorf("mark the cohorts switching in the %s database: %w", to, err)
	}
	undo := func(why error) error {
		// Version v+1 owned by F on T's side: the same owner as F's row,
		// so Recover leaves it be.
		if err := dbT.Store.SetOwners(context.WithoutCancel(ctx), set(sink.Owner(from), "")); err != nil {
			return fmt.Errorf("%w; undoing it failed too (the next switch or run undoes it): %v", why, err)
		}
		return why
	}
	phase("fence")
	fctx, cancel := context.WithTimeout(ctx, o.FenceTimeout)
	fence, err := dbF.Store.Fence(fctx, res.Cohorts)
	cancel()
	if err != nil {
		if fctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("%w: an application transaction held the cohorts' rows longer than cutover.fence_timeout: %v", ErrRefused, err)
		}
		return Result{}, undo(fmt.Errorf("fence the cohorts' writes in the %s database: %w", from, err))
	}
	fencedAt := time.Now()
	log.Info("cohorts' writes fenced", "cohorts", res.Cohorts, "side", from, "at", fencedAt.Format(time.RFC3339Nano))
	lift := func() {
		res.Fenced = time.Since(fencedAt)
		if o.Fenced != nil {
			o.Fenced(to, res.Fenced)
		}
		log.Info("cohorts' fence lifted", "cohorts", res.Cohorts, "side", from, "at", time.Now().Format(time.RFC3339Nano), "fenced", res.Fenced)
	}
	release := func(why error) error {
		rerr := fence.Release(context.WithoutCancel(ctx))
		lift()
		if rerr != nil {
			why = fmt.Errorf("%w; releasing the fence: %v", why, rerr)
		}
		return undo(why)
	}
	phase("drain")
	if err := drain(ctx, dbF.Log, o.Drained, fencedAt.Add(o.FenceTimeout)); err != nil {
		return Result{}, release(err)
	}
	phase("commit")
	if err := fence.Commit(ctx, set(sink.Owner(to), "")); err != nil {
		lift()
		return Result{}, undo(fmt.Errorf("store the new owners in the %s database: %w", from, err))
	}
	lift()
	phase("flip")
	if err := dbT.Store.SetOwners(ctx, set(sink.Owner(to), "")); err != nil {
		return res, fmt.Errorf("the cohorts are switched in the %s database but storing it in the %s database failed (the next switch, or tandem run within seconds, finishes it): %w", from, to, err)
	}
	log.Info("cohorts switched", "cohorts", res.Cohorts, "owner", to, "fenced", res.Fenced)
	return res, nil
}

// drain waits until l reached its head and drained says so, until
// deadline.
func drain(ctx context.Context, l Log, drained func(context.Context) (bool, error), deadline time.Time) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	head, err := l.Head(dctx)
	if err != nil {
		if dctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: reading where the log ends took longer than cutover.fence_timeout: %v", ErrRefused, err)
		}
		return fmt.Errorf("read where the log ends: %w", err)
	}
	wait := func(what string, done func(context.Context) (bool, error)) error {
		for {
			ok, err := done(dctx)
			if err == nil && ok {
				return nil
			}
			if dctx.Err() != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					return fmt.Errorf("%w: %s: %v", ErrRefused, what, err)
				}
				return fmt.Errorf("%w: %s took longer than cutover.fence_timeout", ErrRefused, what)
			}
			_ = poll.Sleep(dctx, 10*time.Millisecond)
		}
	}
	if err := wait("draining the stream to "+head, func(ctx context.Context) (bool, error) { return l.Reached(ctx, head) }); err != nil {
		return err
	}
	if drained != nil {
		return wait("waiting for the appliers to store the drained offsets", drained)
	}
	return nil
}

// owner is who owns a cohort whose row is ow (no row: the old side); a
// switching cohort is owned by neither yet.
func owner(ow sink.Ownership) sink.Side {
	switch ow.Owner {
	case "":
		return sink.SideOld
	case sink.OwnerSwitching:
		return ""
	}
	return sink.Side(ow.Owner)
}

func dedupe(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
