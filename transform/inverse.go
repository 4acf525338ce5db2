package transform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// inverse is a mapping's compiled inverse: target rows back to the source row.
type inverse struct {
	vars    []string // per output, its variable: the table without its schema
	columns []column // one per source column it gives back
	ignore  []string // source columns dropped on purpose
}

// compileInverse compiles m's inverse. Its column names must be source
// columns when they are known.
func compileInverse(index int, m config.Mapping, source map[string]change.Type, lk *lookups) (*inverse, error) {
	inv := &inverse{ignore: m.Inverse.Ignore}
	var errs []error
	for j, to := range m.To {
		v := inverseVar(to.Table)
		if k := slices.Index(inv.vars, v); k >= 0 {
			errs = append(errs, fmt.Errorf("%s: mappings[%d].inverse: to[%d] (%s) and to[%d] (%s) would both be the variable %s",
				m.Pos, index, k, m.To[k].Table, j, to.Table, v))
		}
		inv.vars = append(inv.vars, v)
	}
	env, err := inverseEnv(inv.vars, lk)
	if err != nil {
		return nil, err
	}
	for _, c := range m.Inverse.Columns {
		path := fmt.Sprintf("mappings[%d].inverse.columns.%s", index, c.Name)
		if _, ok := source[c.Name]; source != nil && !ok {
			errs = append(errs, fmt.Errorf("%s: %s: %s has no column %q", c.Expr.Pos, path, m.From, c.Name))
			continue
		}
		prg, _, err := compile(env, c.Expr, path, false)
		if err != nil {
			errs = append(errs, err)
		}
		inv.columns = append(inv.columns, column{name: c.Name, text: c.Expr.Text, prg: prg, path: "inverse.columns." + c.Name})
	}
	for _, c := range m.Inverse.Ignore {
		if _, ok := source[c]; source != nil && !ok {
			errs = append(errs, fmt.Errorf("%s: mappings[%d].inverse.ignore: %s has no column %q", m.Pos, index, m.From, c))
		}
	}
	return inv, errors.Join(errs...)
}

// inverseActivation hands the target rows to the inverse's expressions.
// It is one word, so passing it as an interpreter.Activation allocates
// nothing.
type inverseActivation struct{ rows map[string]map[string]any }

// inverseLookupActivation is an inverseActivation that also binds lookup()
// for one evaluation (interpreter.FunctionActivation).
type inverseLookupActivation struct {
	inverseActivation
	lookup cel.LateBoundFunction
}

// ResolveFunction implements interpreter.FunctionActivation: lookup().
func (a *inverseLookupActivation) ResolveFunction(name string) (cel.LateBoundFunction, bool) {
	return a.lookup, name == "lookup"
}

func (a inverseActivation) ResolveName(name string) (any, bool) {
	r, ok := a.rows[name]
	return r, ok
}

func (a inverseActivation) Parent() interpreter.Activation { return nil }

// HasInverse reports whether the mapping has an inverse.
func (m *Mapping) HasInverse() bool { return m.inverse != nil }

// Inverse computes the source row back from the target rows Apply produced
// for it. An output with no row (its `when` did not hold) is an empty map.
func (m *Mapping) Inverse(ctx context.Context, rows []Row) (change.Row, error) {
	if m.inverse == nil {
		return nil, fmt.Errorf("mapping %s has no inverse", m.Name)
	}
	act := inverseActivation{rows: make(map[string]map[string]any, len(m.outputs))}
	var vars interpreter.Activation = act
	if m.callsLookup {
		vars = &inverseLookupActivation{inverseActivation: act, lookup: m.lookups.op(ctx)}
	}
	for i, o := range m.outputs {
		act.rows[m.inverse.vars[i]] = map[string]any{}
		for _, r := range rows {
			if r.Table == o.table {
				act.rows[m.inverse.vars[i]] = r.Columns
			}
		}
	}
	back := make(change.Row, len(m.inverse.columns))
	for _, c := range m.inverse.columns {
		v, err := eval(c.prg, vars)
		if err != nil {
			return nil, &EvalError{Mapping: m.Name, Path: c.path, Expr: c.text, Err: err}
		}
		back[c.name] = v
	}
	return back, nil
}

// RoundTrip is a source row run forward through a mapping and back.
type RoundTrip struct {
	Rows  []Row      // the target rows the row becomes
	Back  change.Row // what the inverse gives back
	Diffs []Diff     // every source column that did not come back equal
}

// Diff is a source column the round trip lost or changed.
type Diff struct {
	Column string
	Source any  // the source row's value
	Back   any  // the inverse's value (nil when Lost)
	Lost   bool // the inverse does not give the column back at all
}

// String says what was lost, for people.
func (d Diff) String() string {
	if d.Lost {
		return fmt.Sprintf("column %s (%s) is lost: the inverse does not give it back (compute it in inverse.columns, or list it in inverse.ignore if the new schema drops it on purpose)",
			d.Column, show(d.Source))
	}
	return fmt.Sprintf("column %s is %s in the source but %s after the round trip", d.Column, show(d.Source), show(d.Back))
}

func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return fmt.Sprintf("%q", v)
	case []byte:
		return fmt.Sprintf("0x%x", v)
	}
	return fmt.Sprintf("%v (%T)", v, v)
}

// RoundTrip maps src forward, then back through the inverse, and compares
// every source column that is not ignored. A row the mapping filters out
// (no target rows) has nothing to compare: its RoundTrip has no Back.
func (m *Mapping) RoundTrip(ctx context.Context, src change.Row) (*RoundTrip, error) {
	rows, err := m.Apply(ctx, src)
	if err != nil {
		return nil, err
	}
	return m.Back(ctx, src, rows)
}

// Back is RoundTrip of src given the target rows Apply made of it: the
// inverse of rows compared with src.
func (m *Mapping) Back(ctx context.Context, src change.Row, rows []Row) (*RoundTrip, error) {
	var err error
	rt := &RoundTrip{Rows: rows}
	if len(rows) == 0 || m.inverse == nil {
		return rt, nil
	}
	if rt.Back, err = m.Inverse(ctx, rows); err != nil {
		return rt, err
	}
	cols := make([]string, 0, len(src))
	for c := range src {
		if !slices.Contains(m.inverse.ignore, c) {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	for _, c := range cols {
		back, ok := rt.Back[c]
		switch {
		case !ok:
			rt.Diffs = append(rt.Diffs, Diff{Column: c, Source: src[c], Lost: true})
		case !Equal(src[c], back, m.source[c]):
			rt.Diffs = append(rt.Diffs, Diff{Column: c, Source: src[c], Back: back})
		}
	}
	return rt, nil
}

// Equal reports whether a source value and a value computed for it are the
// same data: NULL only equals NULL; numbers compare by value whatever their
// Go type (int 2 equals 2.0, -0.0 equals 0.0); a decimal column compares as
// an exact decimal ("12.50" equals "12.5" and 12.5); bytes compare as
// bytes; anything else must be identical.
func Equal(a, b any, t change.Type) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if ra, ok := ExactNumber(a, t == change.TypeDecimal); ok {
		if rb, ok := ExactNumber(b, t == change.TypeDecimal); ok {
			return ra.Cmp(rb) == 0
		}
	}
	if fa, ok := a.(float64); ok {
		if fb, ok := b.(float64); ok {
			return fa == fb || (math.IsNaN(fa) && math.IsNaN(fb))
		}
	}
	if ba, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ba, bb)
	}
	switch a.(type) {
	case string, bool, int64, uint64, float64:
		return a == b
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// ExactNumber is v as an exact number: integers always, finite floats, and,
// when decimalText is set, decimal text (not NaN, Infinity or a fraction).
// One conversion for the round trip's Equal and reconcile's comparison.
func ExactNumber(v any, decimalText bool) (*big.Rat, bool) {
	switch v := v.(type) {
	case int64:
		return new(big.Rat).SetInt64(v), true
	case uint64:
		return new(big.Rat).SetUint64(v), true
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, false
		}
		return new(big.Rat).SetFloat64(v), true
	case string:
		s := strings.TrimSpace(v)
		if !decimalText || s == "" || strings.ContainsAny(s, "nNiI/") { // NaN, Infinity: compare as text; not a fraction
			return nil, false
		}
		return new(big.Rat).SetString(s)
	}
	return nil, false
}
