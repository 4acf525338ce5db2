package resync

import (
	"context"
	"errors"
	"fmt"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// Store is a target that keeps dead letters.
type Store interface {
	sink.Sink
	sink.DeadLetterStore
}

// Failure is a source row, or a dead letter naming none, that Replay could
// not re-sync: its dead letters are kept.
type Failure struct {
	Mapping     string
	Table       change.Table // the source table; zero when the record does not say
	Key         string       // the source key (KeyString); "" when the record does not say
	DeadLetters []sink.DeadLetterID
	Err         error
}

// Report is what Replay did.
type Report struct {
	Rows     int       // source rows re-synced (written from their current state, or deleted when gone)
	Removed  int       // dead letters removed
	Failures []Failure // what still fails, its dead letters kept
}

// Kept returns how many dead letters the failures keep.
func (r *Report) Kept() int {
	n := 0
	for _, f := range r.Failures {
		n += len(f.DeadLetters)
	}
	return n
}

// Replay re-syncs the source rows of the dead letters stored in store (of
// mapping only, or of every mapping when only is ""), each with its
// mapping in mappings (the current config, fixed), and removes the dead
// letters of each row once its target rows are written, while the row is
// still locked. A row the mapping still fails on keeps its dead letters
// and is reported, and the others go on; so are dead letters that name no
// row (a TRUNCATE, a record that does not decode) or a mapping not in
// mappings. The error is for what stops the whole replay: the store cannot
// be read, or ctx ended.
func Replay(ctx context.Context, src RowLocker, mappings []*transform.Mapping, store Store, only string) (*Report, error) {
	dls, err := store.DeadLetters(ctx, only, 0)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*transform.Mapping, len(mappings))
	for _, m := range mappings {
		byName[m.Name] = m
	}
	rep := &Report{}
	fail := func(d sink.StoredDeadLetter, t change.Table, err error) {
		rep.Failures = append(rep.Failures, Failure{Mapping: d.Mapping, Table: t, DeadLetters: []sink.DeadLetterID{d.ID()}, Err: err})
	}
	var order []string // mappings, by first dead letter
	pending := map[string]*rowsOf{}
	for _, d := range dls {
		m := byName[d.Mapping]
		if m == nil {
			fail(d, change.Table{}, fmt.Errorf("mapping %s is not in the config", d.Mapping))
			continue
		}
		ev, err := change.Decode(d.Key, d.Value)
		switch {
		case err != nil:
			fail(d, change.Table{}, fmt.Errorf("the record does not decode, so it names no row to re-sync: %w", err))
			continue
		case ev.Op == change.OpTruncate:
			fail(d, ev.Table, errors.New("a TRUNCATE names no row to re-sync: delete the target rows yourself if that is what you want, then the dead letter from tandem.dead_letters"))
			continue
		case ev.Table != m.From:
			fail(d, ev.Table, fmt.Errorf("the record is a change of %s, not of %s, the table of mapping %s", ev.Table, m.From, m.Name))
			continue
		case len(ev.Key) == 0:
			fail(d, ev.Table, errors.New("the record has no key, so it names no row to re-sync"))
			continue
		}
		p := pending[m.Name]
		if p == nil {
			p = &rowsOf{m: m, index: map[string]int{}}
			pending[m.Name] = p
			order = append(order, m.Name)
		}
		p.add(ev, d.ID())
	}
	for _, name := range order {
		p := pending[name]
		results, err := Rows(ctx, src, p.m, store, p.rows, func(ctx context.Context, i int) error {
			n, err := store.DeleteDeadLetters(ctx, p.ids[i])
			rep.Removed += n
			return err
		})
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		for i := range p.rows {
			switch {
			case err != nil:
				rep.Failures = append(rep.Failures, p.failure(i, err))
			case results[i].Err != nil:
				rep.Failures = append(rep.Failures, p.failure(i, results[i].Err))
			default:
				rep.Rows++
			}
		}
	}
	return rep, nil
}

// rowsOf is the distinct source rows of one mapping's dead letters, in
// order of their first dead letter, each with its dead letters' images.
type rowsOf struct {
	m     *transform.Mapping
	rows  []Row
	cols  [][]string            // each row's key columns
	ids   [][]sink.DeadLetterID // each row's dead letters
	index map[string]int        // change.KeyText -> index in rows
}

// add files one dead letter's change under its source row.
func (p *rowsOf) add(ev *change.Event, id sink.DeadLetterID) {
	key := ev.KeyRow()
	text := change.KeyText(ev.Key, key)
	i, ok := p.index[text]
	if !ok {
		i = len(p.rows)
		p.index[text] = i
		p.rows = append(p.rows, Row{Key: key})
		p.cols = append(p.cols, ev.Key)
		p.ids = append(p.ids, nil)
	}
	for _, img := range []change.Row{ev.Before, ev.After} {
		// A marker's before image is the key alone, no state of the row
		// (its change was too large for Kafka): the row is read anyway.
		if img != nil && ev.Oversize == "" {
			p.rows[i].Images = append(p.rows[i].Images, img)
		}
	}
	p.ids[i] = append(p.ids[i], id)
}

func (p *rowsOf) failure(i int, err error) Failure {
	return Failure{Mapping: p.m.Name, Table: p.m.From, Key: KeyString(p.cols[i], p.rows[i].Key), DeadLetters: p.ids[i], Err: err}
}
