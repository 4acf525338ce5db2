package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/backfill"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/internal/connect"
	"github.com/tandemcdc/tandem/internal/preflight"
	"github.com/tandemcdc/tandem/transform"
)

// roundTripSample is how many source rows `tandem check` runs through each
// mapping and its inverse.
const roundTripSample = 200

// shownMapErrors is how many of the sample rows that fail to map `tandem
// check` quotes.
const shownMapErrors = 3

// compileTyped compiles mapping i against its source table's columns as
// the source describes them, so an unknown column or a type error is a
// compile error with its file:line:col. lookup may be nil.
func compileTyped(ctx context.Context, cfg *config.Config, i int, reader backfill.Reader, lookup transform.Lookuper) (*transform.Mapping, *change.Schema, error) {
	m := cfg.Mappings[i]
	schema, name, _ := strings.Cut(m.From, ".")
	t, err := reader.Describe(ctx, change.Table{Schema: schema, Name: name})
	if err != nil {
		return nil, nil, err
	}
	opts := []transform.Option{transform.WithSource(t.Types)}
	if lookup != nil {
		opts = append(opts, transform.WithLookup(lookup))
	}
	tm, err := transform.Compile(i, m, opts...)
	if _, rerr := transform.CompileRules(i, m, opts...); rerr != nil { // ignore_rows typed by the source columns too
		err = errors.Join(err, rerr)
	}
	return tm, t, err
}

// checkMappings type-checks every mapping against the real source columns
// and runs it on a sample of source rows as the stream and the backfill
// would: rows that fail to map fail the check, counted. A mapping with an
// inverse also runs the round trip: a column it loses or changes fails
// the check, naming it.
func checkMappings(ctx context.Context, cfg *config.Config) []preflight.Problem {
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return nil // the source checks say why it cannot be read
	}
	defer reader.Close()
	all := make([]int, len(cfg.Mappings))
	for i := range all {
		all[i] = i
	}
	lookup, closeLookup, err := lookupsFor(ctx, cfg, all)
	if err != nil {
		return nil // the target checks say why it cannot be read
	}
	defer closeLookup()
	var ps []preflight.Problem
	for i, m := range cfg.Mappings {
		object := "mapping " + m.Name
		tm, t, err := compileTyped(ctx, cfg, i, reader, lookup)
		switch {
		case t == nil:
			continue // the source table checks report a missing table
		case err != nil:
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: object, What: err.Error(),
				Fix: fmt.Sprintf("use the columns of %s with their types (tandem preview --table %s shows real rows)", m.From, m.From)})
			continue
		case len(t.Key) == 0:
			continue // no chunk without a primary key: the source table checks report it
		}
		rows, _, err := reader.Chunk(ctx, t, nil, roundTripSample)
		if err != nil {
			ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: object, What: fmt.Sprintf("cannot read sample rows of %s: %v", m.From, err)})
			continue
		}
		ps = append(ps, mapProblems(ctx, object, tm, t, rows)...)
		if tm.HasInverse() {
			ps = append(ps, roundTripProblems(ctx, object, tm, t, rows)...)
		}
	}
	return ps
}

// mapProblems turns rows into target writes as an insert streamed by apply
// and as a row copied by backfill (transform.Writes of "c" and "r"
// changes): the rows that fail, each a dead letter in a real run, fail the
// check with their count and the first errors.
func mapProblems(ctx context.Context, object string, tm *transform.Mapping, t *change.Schema, rows []change.Row) []preflight.Problem {
	failed := 0
	var first []string
	for _, ev := range t.Reads(rows) {
		for _, op := range []change.Op{change.OpCreate, change.OpRead} {
			ev.Op = op
			_, _, err := transform.Writes(ctx, tm, &ev)
			if errors.Is(err, transform.ErrLookupUnavailable) {
				return []preflight.Problem{{Severity: preflight.Warn, Object: object,
					What: fmt.Sprintf("cannot map sample rows of %s: %v", t.Name, err)}}
			}
			if err != nil {
				if failed++; len(first) < shownMapErrors {
					first = append(first, fmt.Sprintf("source row %s: %v", keyOf(t, ev.After), err))
				}
				break
			}
		}
	}
	if failed == 0 {
		return nil
	}
	return []preflight.Problem{{Severity: preflight.Fail, Object: object,
		What: fmt.Sprintf("%d of %d sample rows of %s fail to map (each would be a dead letter, streamed or backfilled); the first %d:\n      %s",
			failed, len(rows), t.Name, len(first), strings.Join(first, "\n      ")),
		Fix: fmt.Sprintf("fix the expression, or guard it against such values; `tandem preview --table %s` shows the rows", t.Name)}}
}

// roundTripProblems runs rows through tm and back: the first row that loses
// or changes each column is a failure naming the column and the row's key.
// Rows that do not map are mapProblems' to report.
func roundTripProblems(ctx context.Context, object string, tm *transform.Mapping, t *change.Schema, rows []change.Row) []preflight.Problem {
	var ps []preflight.Problem
	reported := map[string]bool{}
	evalFailures := 0
	for _, r := range rows {
		rt, err := tm.RoundTrip(ctx, r)
		if rt == nil {
			continue // the mapping fails on the row
		}
		if err != nil {
			if evalFailures++; evalFailures == 1 {
				ps = append(ps, preflight.Problem{Severity: preflight.Warn, Object: object,
					What: fmt.Sprintf("the inverse fails on source row %s: %v", keyOf(t, r), err),
					Fix:  "the round trip is not checked on such rows; guard the inverse's expression"})
			}
			continue
		}
		for _, d := range rt.Diffs {
			if reported[d.Column] {
				continue
			}
			reported[d.Column] = true
			ps = append(ps, preflight.Problem{Severity: preflight.Fail, Object: object,
				What: fmt.Sprintf("round trip of source row %s: %s", keyOf(t, r), d),
				Fix:  "make the mapping keep the column (or the inverse rebuild it); `tandem preview --table " + t.Name.String() + "` shows the rows"})
		}
	}
	return ps
}

// keyOf shows a source row's primary key, for people: strings quoted, so
// that hidden characters show.
func keyOf(t *change.Schema, r change.Row) string {
	parts := make([]string, len(t.Key))
	for i, k := range t.Key {
		if s, ok := r[k].(string); ok {
			parts[i] = fmt.Sprintf("%s=%q", k, s)
		} else {
			parts[i] = fmt.Sprintf("%s=%v", k, r[k])
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Preview runs every mapping of source table table on its first limit rows
// and prints the target rows each becomes and, for a mapping with an
// inverse, the round trip's differences as a diff. It writes nothing to
// the target's tables (lookups read them). It reports whether every row
// mapped cleanly and came back equal.
func Preview(ctx context.Context, cfg *config.Config, table string, limit int, w io.Writer) (bool, error) {
	if !slices.Contains(cfg.Source.Tables, table) {
		return false, fmt.Errorf("%s: %s is not one of source.tables (%s)", cfg.File, table, strings.Join(cfg.Source.Tables, ", "))
	}
	var idx []int
	for i, m := range cfg.Mappings {
		if m.From == table {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return false, fmt.Errorf("%s: no mapping reads %s", cfg.File, table)
	}
	reader, err := connect.OpenReader(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer reader.Close()
	lookup, closeLookup, err := lookupsFor(ctx, cfg, idx)
	if err != nil {
		return false, err
	}
	defer closeLookup()
	clean := true
	for _, i := range idx {
		tm, t, err := compileTyped(ctx, cfg, i, reader, lookup)
		if err != nil {
			return false, err
		}
		rows, _, err := reader.Chunk(ctx, t, nil, limit)
		if err != nil {
			return false, fmt.Errorf("read rows of %s: %w", table, err)
		}
		fmt.Fprintf(w, "mapping %s: %d rows of %s\n", tm.Name, len(rows), table)
		for _, r := range rows {
			if !previewRow(ctx, w, tm, t, r) {
				clean = false
			}
		}
	}
	return clean, nil
}

// previewRow prints one source row's target rows and round trip.
func previewRow(ctx context.Context, w io.Writer, tm *transform.Mapping, t *change.Schema, r change.Row) bool {
	fmt.Fprintf(w, "\nsource %s %s\n", t.Name, keyOf(t, r))
	rt, err := tm.RoundTrip(ctx, r)
	if rt == nil {
		fmt.Fprintf(w, "  ERROR %v\n  (streamed, this change would go to the dead-letter topic)\n", err)
		return false
	}
	if len(rt.Rows) == 0 {
		fmt.Fprintln(w, "  filtered out: no output's `when` holds")
	}
	for _, row := range rt.Rows {
		fmt.Fprintf(w, "  -> %s %s\n", row.Table, showRow(row.Columns))
	}
	switch {
	case err != nil:
		fmt.Fprintf(w, "  inverse ERROR %v\n", err)
		return false
	case !tm.HasInverse() || rt.Back == nil:
		return true
	case len(rt.Diffs) == 0:
		fmt.Fprintln(w, "  round trip: equal")
		return true
	}
	src, back := change.Row{}, change.Row{}
	for _, d := range rt.Diffs {
		fmt.Fprintf(w, "  round trip: %s\n", d)
		src[d.Column] = d.Source
		if !d.Lost {
			back[d.Column] = d.Back
		}
	}
	fmt.Fprintf(w, "  diff (-source +round trip):\n%s", indent(cmp.Diff(src, back), "    "))
	return false
}

// showRow prints a row's columns in name order.
func showRow(cols map[string]any) string {
	names := make([]string, 0, len(cols))
	for c := range cols {
		names = append(names, c)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, c := range names {
		v := cols[c]
		switch v := v.(type) {
		case nil:
			parts[i] = c + "=NULL"
		case string:
			parts[i] = fmt.Sprintf("%s=%q", c, v)
		case []byte:
			parts[i] = fmt.Sprintf("%s=0x%x", c, v)
		default:
			parts[i] = fmt.Sprintf("%s=%v", c, v)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var sb strings.Builder
	for _, l := range lines {
		if l != "" {
			sb.WriteString(prefix + l)
		}
	}
	return sb.String()
}

// lookupsFor opens the target, read-only, when one of the mappings idx
// calls lookup(); otherwise lookup is nil.
func lookupsFor(ctx context.Context, cfg *config.Config, idx []int) (transform.Lookuper, func(), error) {
	if !usesLookup(cfg, idx) {
		return nil, func() {}, nil
	}
	tgt, err := connect.OpenTargetReadOnly(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open the target for lookups: %w", err)
	}
	return tgt, func() { tgt.Close() }, nil
}

// usesLookup reports whether any of the mappings calls lookup().
func usesLookup(cfg *config.Config, idx []int) bool {
	for _, i := range idx {
		m := cfg.Mappings[i]
		var exprs []config.Expr
		for _, o := range m.To {
			if o.When != nil {
				exprs = append(exprs, *o.When)
			}
			for _, c := range o.Columns {
				exprs = append(exprs, c.Expr)
			}
		}
		if m.Inverse != nil {
			for _, c := range m.Inverse.Columns {
				exprs = append(exprs, c.Expr)
			}
		}
		if slices.ContainsFunc(exprs, func(e config.Expr) bool { return strings.Contains(e.Text, "lookup(") }) {
			return true
		}
	}
	return false
}
