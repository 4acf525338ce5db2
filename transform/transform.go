package transform

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// Row is one target row produced from a source row.
type Row struct {
	Table          string         // target table as configured
	Key            []string       // key column names
	Columns        map[string]any // every mapped column, key columns included
	CreateIfAbsent bool           // mode create_if_absent: never overwrite an existing row
}

// Key is the key of one target row, for deletes.
type Key struct {
	Table   string
	Key     []string
	Columns map[string]any // the key columns only
	// Clear names the output's columns other than the key when its
	// on_delete is clear: removing the row sets them to NULL and keeps the
	// row (see Writes). Nil: removing the row deletes it.
	Clear []string
}

// Mapping is a compiled mapping of one source table.
type Mapping struct {
	Name    string
	From    change.Table
	outputs []*output
	inverse *inverse // nil: no inverse configured
	source  map[string]change.Type
	lookups *lookups
	// callsLookup: an expression of the mapping may call lookup(), so an
	// evaluation binds it to its context.
	callsLookup bool
	cohort      string // the source column of mappings[].cohort; "": none
	withCohorts bool   // Writes sets each write's Cohort (WithCohorts)
}

type output struct {
	table          string
	key            []string
	createIfAbsent bool
	clear          []string    // on_delete clear: the columns other than the key; nil: delete
	when           cel.Program // nil: always
	whenText       string
	whenReads      reads
	columns        []column
	cohort         string     // the column of to[].cohort; "": none given
	pos            config.Pos // of the output's table value
}

type column struct {
	name   string
	text   string // the expression
	prg    cel.Program
	path   string
	direct string // the source column, when the expression is just row.<column>: read without CEL
	reads
}

// value evaluates the column's expression on the row.
func (c *column) value(act evaluation) (any, error) {
	if c.direct != "" {
		v, ok := act.row[c.direct]
		if !ok {
			return nil, fmt.Errorf("no such key: %s", c.direct)
		}
		return v, nil
	}
	return eval(c.prg, act.vars)
}

// reads is which source columns an expression reads: the names it selects
// from row (row.x, row["x"]), or any column when it uses row as a whole.
type reads struct {
	cols []string
	any  bool
	// lookups are the target tables the expression's lookup() calls name;
	// anyLookup is true when one names its table other than by a literal.
	lookups   []string
	anyLookup bool
}

// readsAny reports whether the expression reads any of cols.
func (r reads) readsAny(cols map[string]bool) bool {
	if len(cols) == 0 {
		return false
	}
	if r.any {
		return true
	}
	for _, c := range r.cols {
		if cols[c] {
			return true
		}
	}
	return false
}

// EvalError is a failure to evaluate an expression on a row: bad data for the
// mapping (a poison row), not a broken pipeline.
type EvalError struct {
	Mapping string
	Path    string // config path of the expression, e.g. "to[0].columns.total"
	Expr    string // the expression's text
	Err     error
}

// Error names the mapping, the expression and what went wrong, with every
// character that would not show escaped (see showHidden): a source value
// ending in "\r" must not look like one without.
func (e *EvalError) Error() string {
	if e.Expr == "" {
		return fmt.Sprintf("mapping %s: %s: %s", e.Mapping, e.Path, showHidden(e.Err.Error()))
	}
	return fmt.Sprintf("mapping %s: %s (%s): %s", e.Mapping, e.Path, e.Expr, showHidden(e.Err.Error()))
}

// showHidden makes an evaluation error's message show what it quotes:
// CEL's "no such key: <key>" gets its key quoted (a trailing space or
// "\r" is the usual reason a code is not in a map), and any other
// character that does not print is escaped as in a Go string.
func showHidden(msg string) string {
	if key, ok := strings.CutPrefix(msg, "no such key: "); ok {
		return "no such key: " + strconv.Quote(key)
	}
	if !strings.ContainsFunc(msg, hidden) {
		return msg
	}
	var sb strings.Builder
	for _, r := range msg {
		if !hidden(r) {
			sb.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		sb.WriteString(q[1 : len(q)-1])
	}
	return sb.String()
}

// hidden reports whether r does not show in a message: a control or
// format character, or a space other than ' ' (a no-break space looks like
// one).
func hidden(r rune) bool { return !strconv.IsPrint(r) }

func (e *EvalError) Unwrap() error { return e.Err }

// Compile compiles mapping number index of the config. Every problem is
// reported, each with the file:line:col of the expression.
func Compile(index int, m config.Mapping, opts ...Option) (*Mapping, error) {
	var with options
	for _, opt := range opts {
		opt(&with)
	}
	schema, name, ok := strings.Cut(m.From, ".")
	if !ok {
		return nil, fmt.Errorf("%s: mappings[%d].from: %q is not schema.table", m.Pos, index, m.From)
	}
	lk := newLookups(with.lookup)
	out := &Mapping{Name: m.Name, From: change.Table{Schema: schema, Name: name}, source: with.source, lookups: lk, callsLookup: mentionsLookup(m),
		withCohorts: with.cohorts}
	env, err := newEnv(with.source, lk)
	if err != nil {
		return nil, err
	}
	var errs []error
	if m.Cohort != nil {
		out.cohort, err = compileCohort(env, *m.Cohort, fmt.Sprintf("mappings[%d].cohort", index), "the source row")
		if err != nil {
			errs = append(errs, err)
		}
	}
	var newRow *cel.Env // a target row's environment, untyped: built when a to[].cohort needs it
	for j, to := range m.To {
		o := &output{table: to.Table, key: to.Key, createIfAbsent: to.Mode == config.ModeCreateIfAbsent, pos: to.Pos}
		if to.Cohort != nil {
			if newRow == nil {
				if newRow, err = newEnv(nil, lk); err != nil {
					return nil, err
				}
			}
			path := fmt.Sprintf("mappings[%d].to[%d].cohort", index, j)
			if o.cohort, err = compileCohort(newRow, *to.Cohort, path, "the "+to.Table+" row"); err != nil {
				errs = append(errs, err)
			}
		}
		if to.When != nil {
			path := fmt.Sprintf("mappings[%d].to[%d].when", index, j)
			prg, rd, err := compile(env, *to.When, path, true)
			if err != nil {
				errs = append(errs, err)
			}
			o.when, o.whenText, o.whenReads = prg, to.When.Text, rd
		}
		for _, c := range to.Columns {
			path := fmt.Sprintf("mappings[%d].to[%d].columns.%s", index, j, c.Name)
			prg, rd, err := compile(env, c.Expr, path, false)
			if err != nil {
				errs = append(errs, err)
			}
			o.columns = append(o.columns, column{name: c.Name, text: c.Expr.Text, prg: prg, path: fmt.Sprintf("to[%d].columns.%s", j, c.Name), reads: rd,
				direct: plainColumn(env, c.Expr.Text)})
		}
		if to.OnDelete == config.OnDeleteClear {
			for _, c := range to.Columns {
				if !slices.Contains(to.Key, c.Name) {
					o.clear = append(o.clear, c.Name)
				}
			}
		}
		for _, k := range to.Key {
			if !slices.ContainsFunc(o.columns, func(c column) bool { return c.name == k }) {
				errs = append(errs, fmt.Errorf("%s: mappings[%d].to[%d].key: %q is not one of its columns", to.Pos, index, j, k))
			}
		}
		out.outputs = append(out.outputs, o)
	}
	if m.Inverse != nil {
		inv, err := compileInverse(index, m, with.source, lk)
		if err != nil {
			errs = append(errs, err)
		}
		out.inverse = inv
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// mentionsLookup reports whether any expression of m may call lookup():
// whether its text names it (a false positive only costs a binding).
func mentionsLookup(m config.Mapping) bool {
	var texts []string
	for _, to := range m.To {
		if to.When != nil {
			texts = append(texts, to.When.Text)
		}
		for _, c := range to.Columns {
			texts = append(texts, c.Expr.Text)
		}
	}
	if m.Inverse != nil {
		for _, c := range m.Inverse.Columns {
			texts = append(texts, c.Expr.Text)
		}
	}
	return slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "lookup") })
}

// compile compiles one expression and works out which columns it reads.
func compile(env *cel.Env, e config.Expr, path string, wantBool bool) (cel.Program, reads, error) {
	ast, iss := parseRow(env, e.Text)
	if iss == nil || iss.Err() == nil {
		ast, iss = env.Check(ast)
	}
	if iss != nil && iss.Err() != nil {
		var msgs []string
		for _, ce := range iss.Errors() {
			pos := e.Pos
			loc := ce.Location
			if loc != nil && loc.Line() > 0 { // config.Expr says where Text's lines are
				pos.Line += loc.Line() - 1
				pos.Col += loc.Column()
			}
			msgs = append(msgs, fmt.Sprintf("%s: %s: %s%s", pos, path, ce.Message, hint(e.Text, ce.Message)))
		}
		return nil, reads{}, errors.New(strings.Join(msgs, "\n"))
	}
	if wantBool && !ast.OutputType().IsAssignableType(cel.BoolType) {
		return nil, reads{}, fmt.Errorf("%s: %s: must be a boolean expression, is %s", e.Pos, path, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, reads{}, fmt.Errorf("%s: %s: %w", e.Pos, path, err)
	}
	return prg, rowReads(ast), nil
}

// parseRow parses an expression and turns each row["name"] into the
// field selection row.name, so that a column whose name is no identifier
// (a space, a quote, a non-ASCII letter: row["order id"], row["prix_€"])
// is a typed field like any other, checked against the source's columns.
// CEL's own row.`name` quoting takes only ASCII letters, digits and _.-/
// and spaces.
func parseRow(env *cel.Env, text string) (*cel.Ast, *cel.Issues) {
	ast, iss := env.Parse(text)
	if iss != nil && iss.Err() != nil {
		return nil, iss
	}
	fac := celast.NewExprFactory()
	celast.PostOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() != celast.CallKind {
			return
		}
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() != operators.Index || len(args) != 2 || args[0].Kind() != celast.IdentKind ||
			args[0].AsIdent() != "row" || args[1].Kind() != celast.LiteralKind {
			return
		}
		if name, ok := args[1].AsLiteral().(types.String); ok {
			e.SetKindCase(fac.NewSelect(e.ID(), args[0], string(name)))
		}
	}))
	return ast, iss
}

// plainColumn returns the source column an expression only reads as it is
// (row.total, row.`odd name`), or "" for any other expression. Such a
// column is copied without CEL: the same value, a fraction of the cost.
func plainColumn(env *cel.Env, text string) string {
	ast, iss := parseRow(env, text)
	if iss != nil && iss.Err() != nil {
		return ""
	}
	e := ast.NativeRep().Expr()
	if e.Kind() != celast.SelectKind {
		return ""
	}
	sel := e.AsSelect()
	if sel.IsTestOnly() || sel.Operand().Kind() != celast.IdentKind || sel.Operand().AsIdent() != "row" {
		return ""
	}
	return sel.FieldName()
}

// hint adds what to do to a type checker's message about a typed row.
func hint(text, msg string) string {
	switch {
	case strings.Contains(msg, "'_[_]' applied to '("+rowTypeName):
		return ` (the row's columns are fields: write row.name, or row["name"] with the name as a quoted string for one that is not an identifier)`
	case strings.Contains(msg, "wrapper(string)") && strings.Contains(msg, "no matching overload"):
		return " (decimal, time, json and text columns are exact text: convert it with double(), int(), parse_time() or the decimal_ functions)"
	}
	return ""
}

// rowReads finds the columns an expression selects from row. A use of row
// other than row.x (row["x"] is one after parseRow) reads any, as when
// the whole map is passed somewhere.
func rowReads(a *cel.Ast) reads {
	var r reads
	idents, selected := 0, 0
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.IdentKind:
			if e.AsIdent() == "row" {
				idents++
			}
		case celast.SelectKind:
			sel := e.AsSelect()
			if op := sel.Operand(); op.Kind() == celast.IdentKind && op.AsIdent() == "row" {
				r.cols = append(r.cols, sel.FieldName())
				selected++
			}
		case celast.CallKind:
			call := e.AsCall()
			if call.FunctionName() != "lookup" || call.IsMemberFunction() || len(call.Args()) == 0 {
				return
			}
			if t := call.Args()[0]; t.Kind() == celast.LiteralKind {
				if name, ok := t.AsLiteral().(types.String); ok {
					r.lookups = append(r.lookups, string(name))
					return
				}
			}
			r.anyLookup = true
		}
	}))
	r.any = idents > selected
	return r
}

// activation hands the row to CEL without copying it. It is one word, so
// passing it as an interpreter.Activation allocates nothing.
type activation struct{ row map[string]any }

func (a activation) ResolveName(name string) (any, bool) {
	if name == "row" {
		return a.row, true
	}
	return nil, false
}

func (a activation) Parent() interpreter.Activation { return nil }

// lookupActivation is an activation that also binds lookup() for one
// evaluation (interpreter.FunctionActivation).
type lookupActivation struct {
	activation
	lookup cel.LateBoundFunction
}

// ResolveFunction implements interpreter.FunctionActivation: lookup().
func (a *lookupActivation) ResolveFunction(name string) (cel.LateBoundFunction, bool) {
	return a.lookup, name == "lookup"
}

// evaluation is one evaluation of a mapping on a row: the row, for
// columns read as they are, and the activation CEL programs get.
type evaluation struct {
	row  map[string]any
	vars interpreter.Activation
}

// evaluation returns the evaluation of r under ctx: lookup() is bound to
// ctx only for mappings that may call it.
func (m *Mapping) evaluation(ctx context.Context, r change.Row) evaluation {
	row := map[string]any(r)
	if m.callsLookup {
		return evaluation{row: row, vars: &lookupActivation{activation: activation{row: row}, lookup: m.lookups.op(ctx)}}
	}
	return evaluation{row: row, vars: activation{row: row}}
}

// Apply maps one source row (an insert's or update's after-image) to the
// target rows it produces. No rows and a nil error means filtered out.
func (m *Mapping) Apply(ctx context.Context, r change.Row) ([]Row, error) {
	rows, _, err := m.apply(ctx, r, false, nil)
	return rows, err
}

// ApplyUpdate is Apply for an update: it also returns the keys, computed
// from the same row, of the outputs whose `when` is false, so their target
// rows (written while the row still matched) can be deleted.
//
// unchanged names source columns the update did not send (PostgreSQL's
// unchanged TOASTed values): a target column computed from any of them is
// left out of the row, so the upsert keeps the target's current value
// instead of overwriting it. A key or `when` that reads one is an error.
func (m *Mapping) ApplyUpdate(ctx context.Context, r change.Row, unchanged map[string]bool) ([]Row, []Key, error) {
	return m.apply(ctx, r, true, unchanged)
}

func (m *Mapping) apply(ctx context.Context, r change.Row, unmatchedKeys bool, unchanged map[string]bool) ([]Row, []Key, error) {
	act := m.evaluation(ctx, r)
	out := make([]Row, 0, len(m.outputs))
	var gone []Key
	for _, o := range m.outputs {
		if o.when != nil {
			v, _, err := o.when.Eval(act.vars)
			if err != nil {
				return nil, nil, &EvalError{Mapping: m.Name, Path: "when " + o.whenText, Err: err}
			}
			b, ok := v.(types.Bool)
			if !ok {
				return nil, nil, &EvalError{Mapping: m.Name, Path: "when " + o.whenText, Err: fmt.Errorf("must be a boolean, is %s", v.Type())}
			}
			if !bool(b) {
				if unmatchedKeys {
					k, err := m.key(o, act)
					if err != nil {
						return nil, nil, err
					}
					gone = append(gone, k)
				}
				continue
			}
		}
		cols := make(map[string]any, len(o.columns))
		for _, c := range o.columns {
			if c.readsAny(unchanged) {
				if slices.Contains(o.key, c.name) {
					return nil, nil, &EvalError{Mapping: m.Name, Path: c.path, Expr: c.text, Err: errors.New("key column reads a source column the update did not send (an unchanged TOASTed value)")}
				}
				continue // the target keeps its value
			}
			v, err := c.value(act)
			if err != nil {
				return nil, nil, &EvalError{Mapping: m.Name, Path: c.path, Expr: c.text, Err: err}
			}
			cols[c.name] = v
		}
		out = append(out, Row{Table: o.table, Key: o.key, Columns: cols, CreateIfAbsent: o.createIfAbsent})
	}
	return out, gone, nil
}

// Keys maps a source row's before-image to the keys of every target row it
// may have produced, evaluating only the key columns' expressions (`when` is
// not consulted: deleting an absent row is harmless).
func (m *Mapping) Keys(ctx context.Context, r change.Row) ([]Key, error) {
	act := m.evaluation(ctx, r)
	out := make([]Key, 0, len(m.outputs))
	for _, o := range m.outputs {
		k, err := m.key(o, act)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func (m *Mapping) key(o *output, act evaluation) (Key, error) {
	cols := make(map[string]any, len(o.key))
	for _, c := range o.columns {
		if !slices.Contains(o.key, c.name) {
			continue
		}
		v, err := c.value(act)
		if err != nil {
			return Key{}, &EvalError{Mapping: m.Name, Path: c.path, Expr: c.text, Err: err}
		}
		cols[c.name] = v
	}
	return Key{Table: o.table, Key: o.key, Columns: cols, Clear: o.clear}, nil
}

// KeyReads returns the source columns the target keys are computed from,
// over every output; any is true when a key expression uses the row as a
// whole. A delete's before-image must carry these columns.
func (m *Mapping) KeyReads() (cols []string, any bool) {
	seen := map[string]bool{}
	for _, o := range m.outputs {
		for _, c := range o.columns {
			if !slices.Contains(o.key, c.name) {
				continue
			}
			any = any || c.reads.any
			for _, r := range c.reads.cols {
				if !seen[r] {
					seen[r] = true
					cols = append(cols, r)
				}
			}
		}
	}
	return cols, any
}

// LookedUp returns the target tables the mapping's lookup() calls read
// (in its outputs' when and columns), each once, in first-use order; any is
// true when a call names its table other than by a literal. A backfill
// copies the tables whose mappings write them first.
func (m *Mapping) LookedUp() (tables []string, any bool) {
	for _, o := range m.outputs {
		rs := []reads{o.whenReads}
		for _, c := range o.columns {
			rs = append(rs, c.reads)
		}
		for _, r := range rs {
			any = any || r.anyLookup
			for _, t := range r.lookups {
				if !slices.Contains(tables, t) {
					tables = append(tables, t)
				}
			}
		}
	}
	return tables, any
}

// Reads returns every source column the mapping's expressions read (keys,
// columns and when), in first-use order; any is true when an expression uses
// the row as a whole.
func (m *Mapping) Reads() (cols []string, any bool) {
	seen := map[string]bool{}
	add := func(r reads) {
		any = any || r.any
		for _, c := range r.cols {
			if !seen[c] {
				seen[c] = true
				cols = append(cols, c)
			}
		}
	}
	for _, o := range m.outputs {
		add(o.whenReads)
		for _, c := range o.columns {
			add(c.reads)
		}
	}
	return cols, any
}

func eval(prg cel.Program, act interpreter.Activation) (any, error) {
	v, _, err := prg.Eval(act)
	if err != nil {
		return nil, err
	}
	return native(v)
}

// native converts a CEL value to the Go values sinks write.
func native(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		return float64(v), nil
	case types.String:
		return string(v), nil
	case types.Bool:
		return bool(v), nil
	case types.Bytes:
		return []byte(v), nil
	case types.Timestamp:
		return v.Time.UTC(), nil
	case types.Duration:
		return v.Duration.String(), nil
	}
	var target reflect.Type
	switch v.Type() {
	case types.ListType:
		target = reflect.TypeOf([]any{})
	case types.MapType:
		target = reflect.TypeOf(map[string]any{})
	}
	if target != nil {
		n, err := v.ConvertToNative(target)
		if err != nil {
			return nil, fmt.Errorf("convert %s result: %w", v.Type(), err)
		}
		return n, nil
	}
	if v.Type() == types.OptionalType {
		o := v.(*types.Optional)
		if !o.HasValue() {
			return nil, nil
		}
		return native(o.GetValue())
	}
	return nil, fmt.Errorf("expression result of type %s cannot be written", v.Type())
}

// Output describes one `to` entry of a mapping: the target table, its key
// and the columns the mapping writes there (key included), in file order.
type Output struct {
	Table   string
	Key     []string
	Columns []string
	// Copied maps each column that is a source column as it is (row.x) to
	// that source column.
	Copied map[string]string
	// Conditional is set when the output has a `when`: not every source
	// row produces a row.
	Conditional bool
}

// Outputs lists the mapping's outputs in file order.
func (m *Mapping) Outputs() []Output {
	out := make([]Output, len(m.outputs))
	for i, o := range m.outputs {
		cols := make([]string, len(o.columns))
		copied := map[string]string{}
		for j, c := range o.columns {
			cols[j] = c.name
			if c.direct != "" {
				copied[c.name] = c.direct
			}
		}
		out[i] = Output{Table: o.table, Key: o.key, Columns: cols, Copied: copied, Conditional: o.when != nil}
	}
	return out
}
