package resync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// RowLocker reads source rows by primary key under a shared lock, with
// values exactly as the stream's capturer produces them. The backfill
// readers of capture/postgres and capture/mysql are RowLockers.
type RowLocker interface {
	// Describe returns the table's columns, types and primary key.
	Describe(ctx context.Context, t change.Table) (*change.Schema, error)
	// LockRow reads the row of t with the key's values (nil when absent)
	// and runs fn while no other transaction can update or delete it; its
	// error is fn's or the read's. Blocks.
	LockRow(ctx context.Context, t *change.Schema, key change.Row, fn func(row change.Row) error) error
}

// Row is one source row to re-sync.
type Row struct {
	Key change.Row // the primary key's values
	// Images are earlier states of the row, whole or partial (the before
	// and after of a dead-lettered change): the target rows they map to are
	// deleted unless the current row produces them.
	Images []change.Row
}

// Result is what became of one Row.
type Result struct {
	// Exists says the row exists at the source and its target rows were
	// written from it; false: it does not, and its target rows were deleted.
	Exists bool
	Writes int   // target writes applied
	Err    error // the row was not re-synced: its target rows are as they were
}

// Synced is called for a row once its target writes are committed, while
// its source row is still locked when it exists; its error fails the row.
type Synced func(ctx context.Context, i int) error

// Rows re-syncs rows of m's source table into target, one after another,
// as the package doc describes, and returns a Result per row (in order). A
// row that cannot be re-synced (the mapping fails on it, a write fails) has
// its Err and the others go on. synced, if set, runs for each row re-synced
// (see Synced). The error is for what stops every row: the table cannot be
// described, or ctx ended.
func Rows(ctx context.Context, src RowLocker, m *transform.Mapping, target sink.Sink, rows []Row, synced Synced) ([]Result, error) {
	t, err := src.Describe(ctx, m.From)
	if err != nil {
		return nil, fmt.Errorf("re-sync rows of mapping %s: %w", m.Name, err)
	}
	s := &syncer{src: src, m: m, t: t, target: target}
	out := make([]Result, len(rows))
	for i, r := range rows {
		done := func(ctx context.Context) error { return nil }
		if synced != nil {
			done = func(ctx context.Context) error { return synced(ctx, i) }
		}
		out[i] = s.row(ctx, r, done)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// syncer re-syncs rows of one mapping.
type syncer struct {
	src    RowLocker
	m      *transform.Mapping
	t      *change.Schema
	target sink.Sink
}

// row re-syncs one row: under its lock when it exists; otherwise its
// target rows are deleted and it is looked up once more.
func (s *syncer) row(ctx context.Context, r Row, done func(context.Context) error) Result {
	var res Result
	deleted := false
	for {
		found := false
		err := s.src.LockRow(ctx, s.t, r.Key, func(cur change.Row) error {
			if cur == nil {
				return nil
			}
			found = true
			ws, err := s.current(ctx, cur, r.Images)
			if err != nil {
				return err
			}
			if err := s.apply(ctx, r, ws); err != nil {
				return err
			}
			res.Writes += len(ws)
			return done(ctx)
		})
		switch {
		case err != nil:
			res.Err = err
			return res
		case found:
			res.Exists = true
			return res
		case deleted:
			// Absent before and after its target rows were deleted.
			if err := done(ctx); err != nil {
				res.Err = err
			}
			return res
		}
		ws, err := s.gone(ctx, r)
		if err == nil {
			err = s.apply(ctx, r, ws)
		}
		if err != nil {
			res.Err = err
			return res
		}
		res.Writes += len(ws)
		deleted = true
	}
}

// current is the target writes that make the target hold what cur
// produces: the stream's writes for an update to cur, from each image, so
// that what an image produced and cur does not is deleted. (A delete never
// names a key cur produces, and sinks run a round's deletes first.)
func (s *syncer) current(ctx context.Context, cur change.Row, images []change.Row) ([]change.Write, error) {
	ev := s.event(change.OpUpdate, nil, cur)
	ws, _, err := transform.Writes(ctx, s.m, ev)
	if err != nil {
		return nil, err
	}
	for _, img := range images {
		ev.Before = img
		more, _, err := transform.Writes(ctx, s.m, ev)
		if err != nil {
			return nil, fmt.Errorf("the target keys of an earlier image: %w", err)
		}
		for _, w := range more {
			if w.Op == change.WriteDelete { // its upserts are ws's
				ws = append(ws, w)
			}
		}
	}
	return ws, nil
}

// gone is the deletes of every target row an absent source row may have:
// the keys its images map to, and its primary key's when the target keys
// are computed from primary key columns alone.
func (s *syncer) gone(ctx context.Context, r Row) ([]change.Write, error) {
	images := r.Images
	if s.keysFromPrimaryKey() {
		images = append(slices.Clip(images), r.Key)
	}
	if len(images) == 0 {
		return nil, errors.New("the row is gone from the source and its target keys are not computed from its primary key alone: which target rows to delete is unknown")
	}
	var ws []change.Write
	for _, img := range images {
		more, _, err := transform.Writes(ctx, s.m, s.event(change.OpDelete, img, nil))
		if err != nil {
			return nil, fmt.Errorf("the target keys of a row gone from the source: %w", err)
		}
		ws = append(ws, more...)
	}
	return ws, nil
}

// keysFromPrimaryKey reports whether every target key expression reads
// only primary key columns of the source row.
func (s *syncer) keysFromPrimaryKey() bool {
	cols, whole := s.m.KeyReads()
	return !whole && !slices.ContainsFunc(cols, func(c string) bool { return !slices.Contains(s.t.Key, c) })
}

// event is a change of the mapping's table, as the stream decodes one.
func (s *syncer) event(op change.Op, before, after change.Row) *change.Event {
	return &change.Event{Op: op, Table: s.t.Name, Key: s.t.Key, Types: s.t.Types, Columns: s.t.Columns, Before: before, After: after}
}

// apply writes ws in one target transaction, without offsets: a re-sync
// is not the stream's progress.
func (s *syncer) apply(ctx context.Context, r Row, ws []change.Write) error {
	if err := s.target.Apply(ctx, sink.Batch{Writes: ws}, sink.Checkpoint{}); err != nil {
		return fmt.Errorf("write the target rows of %s %s: %w", s.t.Name, KeyString(s.t.Key, r.Key), err)
	}
	return nil
}

// KeyString renders key values for people: "id=42" or "a=1, b=x".
func KeyString(cols []string, key change.Row) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprintf("%s=%v", c, key[c])
	}
	return strings.Join(parts, ", ")
}
