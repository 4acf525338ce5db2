package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
	"github.com/tandemcdc/tandem/transform"
)

// A mapping that copies a table as it is, or a projection of it, needs no
// rows sent to compare its chunks: each server can summarise a chunk
// (pgtext.RowsHash: its row count and a sum of 64-bit hashes of its rows'
// text) and only the chunks whose summaries differ are read and compared
// row by row, as any other mapping's are. Equal text is equal values
// (decoded alike on both sides, equal under any tolerance rule), so a
// chunk whose summaries match holds no drift, but for a hash collision (a
// chance of about 2^-64 per differing chunk, less in md5). Text that differs while the
// values are equal ("1.50" and "1.5", a column of another type) only costs
// the chunk's row comparison, which decides.
//
// It applies to a mapping without an inverse whose one output is walked (its only writer,
// keyed by a copy of the source's integer key, here of one column), has no
// `when`, and whose every column is a source column as it is (row.x) into
// a column of the same family (sameFamily), when the source can summarise
// chunks and the target key ranges in a kind of summary both compute
// (hashers): PostgreSQL, MariaDB or MySQL on either side.

// ChunkHasher is a Source that can summarise a chunk on its server: the
// RowsHash of the values of cols, in that order, of the rows Chunk(t,
// after, limit) would read, and the last one's key (nil: no rows). t's key
// has one column.
type ChunkHasher interface {
	HashChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error)
}

// RangeHasher is a target that can summarise the rows of a key range on
// its server: the RowsHash of the values of cols, in that order, of the
// rows of table whose one-column key is above after and at most upTo (nil:
// no bound on that side), equal to a ChunkHasher's of the same rows.
type RangeHasher interface {
	HashRange(ctx context.Context, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error)
}

// KindChunkHasher is a Source that can summarise a chunk on its server
// in each kind HashKinds lists, best first: HashChunkKind is
// ChunkHasher's HashChunk in the kind given. A ChunkHasher that is not
// one summarises in pgtext.HashText.
type KindChunkHasher interface {
	HashKinds() []pgtext.HashKind
	HashChunkKind(ctx context.Context, kind pgtext.HashKind, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error)
}

// KindRangeHasher is a target that can summarise key ranges on its
// server in each kind HashKinds lists, best first: HashRangeKind is
// RangeHasher's HashRange in the kind given. A RangeHasher that is not
// one summarises in pgtext.HashText.
type KindRangeHasher interface {
	HashKinds() []pgtext.HashKind
	HashRangeKind(ctx context.Context, kind pgtext.HashKind, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error)
}

// hashers returns src's and tgt's summaries of the first kind src lists
// that tgt computes too (PostgreSQL on both sides: pgtext.HashText;
// MariaDB or MySQL on either: pgtext.HashMD5), or nils when they share
// none: every row is then compared.
func hashers(src Source, tgt RowReader) (ChunkHasher, RangeHasher) {
	kinds := func(v any) []pgtext.HashKind {
		if h, ok := v.(interface{ HashKinds() []pgtext.HashKind }); ok {
			return h.HashKinds()
		}
		return []pgtext.HashKind{pgtext.HashText}
	}
	sh, ok := src.(ChunkHasher)
	ks, kok := src.(KindChunkHasher)
	if !ok && !kok {
		return nil, nil
	}
	th, ok := tgt.(RangeHasher)
	kt, kok := tgt.(KindRangeHasher)
	if !ok && !kok {
		return nil, nil
	}
	for _, k := range kinds(src) {
		if !slices.Contains(kinds(tgt), k) {
			continue
		}
		if ks != nil {
			sh = kindChunk{ks, k}
		}
		if kt != nil {
			th = kindRange{kt, k}
		}
		return sh, th
	}
	return nil, nil
}

// kindChunk is a KindChunkHasher's summaries of one kind.
type kindChunk struct {
	h    KindChunkHasher
	kind pgtext.HashKind
}

func (k kindChunk) HashChunk(ctx context.Context, t *change.Schema, cols []string, after []string, limit int) (pgtext.RowsHash, []string, error) {
	return k.h.HashChunkKind(ctx, k.kind, t, cols, after, limit)
}

// kindRange is a KindRangeHasher's summaries of one kind.
type kindRange struct {
	h    KindRangeHasher
	kind pgtext.HashKind
}

func (k kindRange) HashRange(ctx context.Context, table, key string, cols []string, after, upTo any) (pgtext.RowsHash, error) {
	return k.h.HashRangeKind(ctx, k.kind, table, key, cols, after, upTo)
}

// hashable returns, when mapping i's chunks can be compared by summaries,
// its output and the source columns it copies, in the output's column
// order.
func (r *Reconciler) hashable(writers map[string][]writer, i int, st *change.Schema, columns map[string]map[string]column) (transform.Output, []string, bool) {
	outputs := r.mappings[i].Outputs()
	// A mapping with an inverse has its round trip checked on every row:
	// its rows are read.
	if r.srcHash == nil || r.tgtHash == nil || len(outputs) != 1 || len(st.Key) != 1 || r.mappings[i].HasInverse() {
		return transform.Output{}, nil, false
	}
	o := outputs[0]
	if o.Conditional || !r.walks(writers, writer{i, 0}, st, columns[o.Table]) {
		return transform.Output{}, nil, false
	}
	src := make([]string, len(o.Columns))
	for j, c := range o.Columns {
		var ok bool
		if src[j], ok = o.Copied[c]; !ok || !sameFamily(st.Types[src[j]], columns[o.Table][c].kind) {
			return transform.Output{}, nil, false
		}
	}
	return o, src, true
}

// sameFamily reports whether a source column of logical type t copied into
// a target column of kind k compares equal whenever both write the same
// text, as summaries assume: a []byte against a text column, or a bool
// against one, would not.
func sameFamily(t change.Type, k kind) bool {
	switch t {
	case change.TypeInt:
		return k == kindInt
	case change.TypeFloat:
		return k == kindFloat
	case change.TypeBool:
		return k == kindBool
	case change.TypeBytes:
		return k == kindBytes
	case change.TypeDecimal:
		return k == kindDecimal
	case change.TypeTime:
		return k == kindTime || k == kindText // date and time of day compare as text
	case change.TypeJSON:
		return k == kindJSON
	case change.TypeString:
		return k == kindText || k == kindUUID
	}
	return false
}

// hashedChunk is one chunk of a hashed sweep: the source key range (above
// after, up to last; to the end when final) and both sides' summaries.
type hashedChunk struct {
	after, last []string
	final       bool
	src, tgt    pgtext.RowsHash
}

// falseAlarms is how many chunks in a row whose summaries differ while
// their rows compare equal make a sweep stop summarising: the sides write
// equal values differently (numeric(10,2) and numeric(12,4), timestamp and
// timestamptz, json and jsonb), and every chunk would be read twice.
const falseAlarms = 3

// sweepHashed compares mapping i's chunks by their summaries, the source's
// computed a chunk ahead of the target's so both servers work at once, and
// compares row by row the chunks whose summaries differ. It counts the
// rows of equal chunks in rep.Summarised. After falseAlarms chunks in a row
// whose summaries differ but not their rows, it stops and returns the
// source key after which the rest is to be compared row by row (resume;
// nil when it compared every chunk).
func (r *Reconciler) sweepHashed(ctx context.Context, i int, st *change.Schema, o transform.Output, srcCols []string,
	cols map[string]column, rep *MappingReport) (_ []*suspect, _ int64, resume []string, _ error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var after []string
	sources := prefetch(ctx, &wg, func(ctx context.Context) (hashedChunk, bool, error) {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return hashedChunk{}, false, err
		}
		h, last, err := r.srcHash.HashChunk(ctx, st, srcCols, after, r.cfg.ChunkRows)
		if err != nil {
			return hashedChunk{}, false, fmt.Errorf("reconcile %s: summarise a chunk of source %s: %w", r.mappings[i].Name, st.Name, err)
		}
		c := hashedChunk{after: after, last: last, final: h.Rows < int64(r.cfg.ChunkRows), src: h}
		after = last
		return c, !c.final, nil
	})
	chunks := prefetch(ctx, &wg, func(ctx context.Context) (hashedChunk, bool, error) {
		var c hashedChunk
		select {
		case <-ctx.Done():
			return c, false, ctx.Err()
		case p, ok := <-sources:
			if !ok { // only after an error the main loop has had, or ctx's end
				return c, false, fmt.Errorf("reconcile %s: the source's chunk summaries ended before its last chunk", r.mappings[i].Name)
			}
			if p.err != nil {
				return c, false, p.err
			}
			c = p.v
		}
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return c, false, err
		}
		lo, hi, err := c.bounds()
		if err != nil {
			return c, false, fmt.Errorf("reconcile %s: %w", r.mappings[i].Name, err)
		}
		var a, b any // typed nil bounds are no bounds
		if lo != nil {
			a = *lo
		}
		if hi != nil {
			b = *hi
		}
		if c.tgt, err = r.tgtHash.HashRange(ctx, o.Table, o.Key[0], o.Columns, a, b); err != nil {
			return c, false, fmt.Errorf("reconcile %s: summarise rows of target table %s: %w", r.mappings[i].Name, o.Table, err)
		}
		return c, !c.final, nil
	})
	var (
		suspects []*suspect
		checked  int64
		misses   int // chunks in a row whose summaries differed but not their rows
	)
	for {
		select {
		case <-ctx.Done():
			return nil, 0, nil, ctx.Err()
		case p, ok := <-chunks:
			if !ok {
				return suspects, checked, nil, nil
			}
			if p.err != nil {
				return nil, 0, nil, p.err
			}
			c := p.v
			checked += c.src.Rows + c.tgt.Rows
			if c.src == c.tgt {
				rep.Summarised += c.src.Rows + c.tgt.Rows
				misses = 0
				continue
			}
			r.log.Debug("reconcile: chunk summaries differ, comparing its rows", "mapping", r.mappings[i].Name,
				"after", c.after, "up_to", c.last, "source_rows", c.src.Rows, "target_rows", c.tgt.Rows)
			var found int
			var err error
			if suspects, found, err = r.compareRange(ctx, i, st, o, c, cols, suspects); err != nil {
				return nil, 0, nil, err
			}
			if misses = misses + 1; found > 0 {
				misses = 0
			}
			if misses >= falseAlarms && !c.final {
				r.log.Info("reconcile: chunk summaries differ where the rows are equal (do the source's and target's column types differ?); comparing rows for the rest of this sweep",
					"mapping", r.mappings[i].Name, "table", o.Table, "chunks", misses)
				return suspects, checked, c.last, nil // a full chunk: last is set
			}
		}
	}
}

// bounds returns the chunk's key range as integers: above lo (nil: from
// the start), up to hi (nil: to the end).
func (c hashedChunk) bounds() (lo, hi *int64, err error) {
	parse := func(k []string) (*int64, error) {
		if k == nil {
			return nil, nil
		}
		v, err := strconv.ParseInt(k[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("chunk key %q is not an integer: %w", k[0], err)
		}
		return &v, nil
	}
	if lo, err = parse(c.after); err != nil {
		return nil, nil, err
	}
	if c.final {
		return lo, nil, nil
	}
	hi, err = parse(c.last)
	return lo, hi, err
}

// compareRange compares row by row the source and target rows of chunk
// c's key range, read again now a page at a time: what the source's rows
// map to and the target's rows, merged in key order (mergePaged). Each
// difference is added to held, which is settled whenever it is full; it
// returns held and how many differences the range had.
func (r *Reconciler) compareRange(ctx context.Context, i int, st *change.Schema, o transform.Output, c hashedChunk,
	cols map[string]column, held []*suspect) ([]*suspect, int, error) {
	m := r.mappings[i]
	lo, hi, err := c.bounds()
	if err != nil {
		return held, 0, fmt.Errorf("reconcile %s: %w", m.Name, err)
	}
	within := func(k any) bool {
		v, ok := k.(int64)
		return ok && (hi == nil || v <= *hi)
	}
	found := 0
	emit := func(s []*suspect) error {
		found += len(s)
		held = append(held, s...)
		var err error
		held, err = r.settleIfFull(ctx, held)
		return err
	}
	after := c.after
	want := func(ctx context.Context) ([]expected, bool, error) {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return nil, false, err
		}
		rows, last, err := r.src.Chunk(ctx, st, after, r.cfg.ChunkRows)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile %s: read source %s: %w", m.Name, m.From, err)
		}
		after = last
		more := len(rows) == r.cfg.ChunkRows
		var page []expected
		var failed []*suspect // unmapped
		for _, row := range rows {
			if !within(row[st.Key[0]]) {
				more = false
				break
			}
			if s, e, ok := r.mapRow(ctx, i, st, row); s != nil {
				failed = append(failed, s)
			} else if ok {
				page = append(page, e)
			}
		}
		return page, more, emit(failed)
	}
	var from map[string]any
	if lo != nil {
		from = map[string]any{o.Key[0]: *lo}
	}
	got := func(ctx context.Context) ([]map[string]any, bool, error) {
		if err := r.limiter.WaitN(ctx, min(r.cfg.ChunkRows, r.limiter.Burst())); err != nil {
			return nil, false, err
		}
		rows, err := r.tgt.ScanRows(ctx, o.Table, o.Key, o.Columns, from, r.cfg.ChunkRows)
		if err != nil {
			return nil, false, fmt.Errorf("reconcile: read target table %s in key order: %w", o.Table, err)
		}
		more := len(rows) == r.cfg.ChunkRows
		if more {
			from = pick(rows[len(rows)-1], o.Key)
		}
		for n, row := range rows {
			if !within(row[o.Key[0]]) {
				return rows[:n], false, nil
			}
		}
		return rows, more, nil
	}
	err = r.mergePaged(ctx, i, 0, st, cols, want, got, func(s []*suspect) error { return emit(r.dropIgnored(i, s)) })
	return held, found, err
}

// mapRow maps row through mapping i, whose one output is unconditional
// (as sweepSource's mapChunk does for many): the unmapped suspect of a
// row the mapping fails on, or the row it should be in the target (ok).
func (r *Reconciler) mapRow(ctx context.Context, i int, st *change.Schema, row change.Row) (_ *suspect, _ expected, ok bool) {
	m := r.mappings[i]
	var ignored *transform.Rule
	if len(r.rules[i].rows) > 0 {
		ignored = r.ignored(i, row)
	}
	mapped, err := m.Apply(ctx, row)
	switch {
	case err != nil && ignored != nil:
		r.count(i, ignored)
		return nil, expected{}, false
	case err != nil:
		return unmapped(i, m, st, row, err), expected{}, false
	case len(mapped) != 1:
		return nil, expected{}, false
	}
	return nil, expected{want: mapped[0].Columns, seen: row, ignored: ignored}, true
}
