package transform

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// RuleKind is what a known-difference rule (config.Rule) says.
type RuleKind int

// The kinds of rule.
const (
	// RuleIgnoreColumn: a target column is not compared.
	RuleIgnoreColumn RuleKind = iota + 1
	// RuleEqual: a target column's two values are equal when the rule's
	// expression over source and target is true.
	RuleEqual
	// RuleIgnoreRows: the source rows for which the rule's expression over
	// row is true are not compared.
	RuleIgnoreRows
)

// Rule is a compiled known-difference rule of a mapping: what reconcile
// does not call drift. Like a Mapping it is pure and safe for concurrent
// use; its expressions see no lookup().
type Rule struct {
	Name   string
	Kind   RuleKind
	Table  string // the target table of a column rule, as configured
	Column string // the target column of a column rule
	prg    cel.Program
	text   string
	path   string
}

// CompileRules compiles the rules of mapping number index of the config,
// with the mapping's options (WithSource types ignore_rows' row as it types
// the mapping's; WithLookup is not used: rules read no target). Every
// problem is reported, each with the file:line:col of the expression.
func CompileRules(index int, m config.Mapping, opts ...Option) ([]*Rule, error) {
	if len(m.Rules) == 0 {
		return nil, nil
	}
	var with options
	for _, opt := range opts {
		opt(&with)
	}
	lk := newLookups(nil)
	rowEnv, err := newEnv(with.source, lk)
	if err != nil {
		return nil, err
	}
	valuesEnv, err := cel.NewEnv(append(baseOptions(lk), cel.CrossTypeNumericComparisons(true), absFunction(),
		cel.Variable("source", cel.DynType), cel.Variable("target", cel.DynType))...)
	if err != nil {
		return nil, fmt.Errorf("build the rules' CEL environment: %w", err)
	}
	var errs []error
	out := make([]*Rule, 0, len(m.Rules))
	for i, cr := range m.Rules {
		r := &Rule{Name: cr.Name}
		var e *config.Expr
		switch {
		case cr.IgnoreRows != nil:
			r.Kind, e, r.path = RuleIgnoreRows, cr.IgnoreRows, fmt.Sprintf("mappings[%d].rules[%d].ignore_rows", index, i)
		case cr.Equal != nil:
			r.Kind, e, r.path = RuleEqual, cr.Equal, fmt.Sprintf("mappings[%d].rules[%d].equal", index, i)
		default:
			r.Kind = RuleIgnoreColumn
		}
		if c := cr.TargetColumn(); c != "" {
			for _, o := range m.To {
				if col, ok := strings.CutPrefix(c, o.Table+"."); ok {
					r.Table, r.Column = o.Table, col
				}
			}
			if r.Column == "" {
				errs = append(errs, fmt.Errorf("%s: mappings[%d].rules[%d]: %q is not <to table>.<column> of this mapping", cr.Pos, index, i, c))
			}
		}
		if e != nil {
			env := valuesEnv
			if r.Kind == RuleIgnoreRows {
				env = rowEnv
			}
			prg, _, err := compile(env, *e, r.path, true)
			if err != nil {
				errs = append(errs, err)
			}
			r.prg, r.text = prg, e.Text
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Equal reports whether a RuleEqual rule holds the two values of its
// column equal: source, what the mapping computes, and target, what the
// target holds (NULL is nil). An evaluation error is an *EvalError, and
// not equal.
func (r *Rule) Equal(source, target any) (bool, error) {
	if r.Kind != RuleEqual {
		return false, nil
	}
	act, err := interpreter.NewActivation(map[string]any{"source": celValue(source), "target": celValue(target)})
	if err != nil {
		return false, err
	}
	return r.holds(act)
}

// Matches reports whether a RuleIgnoreRows rule takes the source row out
// of the comparison. An evaluation error is an *EvalError, and no match.
func (r *Rule) Matches(row change.Row) (bool, error) {
	if r.Kind != RuleIgnoreRows {
		return false, nil
	}
	return r.holds(activation{row: map[string]any(row)})
}

// holds evaluates the rule's boolean expression.
func (r *Rule) holds(act interpreter.Activation) (bool, error) {
	v, err := eval(r.prg, act)
	if err != nil {
		return false, &EvalError{Mapping: "rule " + r.Name, Path: r.path, Expr: r.text, Err: err}
	}
	b, ok := v.(bool)
	if !ok {
		return false, &EvalError{Mapping: "rule " + r.Name, Path: r.path, Expr: r.text, Err: fmt.Errorf("got %s, want a bool", show(v))}
	}
	return b, nil
}

// celValue is a value as CEL takes it: NULL as null.
func celValue(v any) any {
	if v == nil {
		return types.NullValue
	}
	return v
}

// absFunction is abs(x) for the rules' expressions over two values
// (abs(source - target) <= 1), beside ext.Math's math.abs.
func absFunction() cel.EnvOption {
	return cel.Function("abs",
		cel.Overload("abs_int", []*cel.Type{cel.IntType}, cel.IntType, cel.UnaryBinding(func(v ref.Val) ref.Val {
			i := v.(types.Int)
			switch {
			case i == math.MinInt64:
				return types.NewErr("abs: integer overflow")
			case i < 0:
				return -i
			}
			return i
		})),
		cel.Overload("abs_double", []*cel.Type{cel.DoubleType}, cel.DoubleType, cel.UnaryBinding(func(v ref.Val) ref.Val {
			return types.Double(math.Abs(float64(v.(types.Double))))
		})))
}

// InverseReads returns, for each source column the mapping's inverse gives
// back, the target columns ("<table>.<column>", the table as configured)
// its expression reads: where a rule or tolerance of a target column
// applies to the round trip. nil without an inverse.
func (m *Mapping) InverseReads() map[string][]string {
	if m.inverse == nil {
		return nil
	}
	tables := map[string]string{} // inverse variable -> table
	for i, o := range m.outputs {
		tables[m.inverse.vars[i]] = o.table
	}
	out := make(map[string][]string, len(m.inverse.columns))
	for _, c := range m.inverse.columns {
		out[c.name] = targetReads(c.text, tables)
	}
	return out
}

// parseEnv parses inverse expressions again, for their syntax tree only.
var parseEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(cel.OptionalTypes(), cel.EnableIdentifierEscapeSyntax())
})

// targetReads lists the target columns an inverse expression selects
// (orders.total, orders["total"]) from the variables of tables.
func targetReads(text string, tables map[string]string) []string {
	env, err := parseEnv()
	if err != nil {
		return nil
	}
	ast, iss := env.Parse(text)
	if iss != nil && iss.Err() != nil {
		return nil
	}
	var out []string
	add := func(v, col string) {
		if t, ok := tables[v]; ok {
			out = append(out, t+"."+col)
		}
	}
	celast.PreOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		switch e.Kind() {
		case celast.SelectKind:
			if op := e.AsSelect().Operand(); op.Kind() == celast.IdentKind {
				add(op.AsIdent(), e.AsSelect().FieldName())
			}
		case celast.CallKind:
			call := e.AsCall()
			args := call.Args()
			if call.FunctionName() == operators.Index && len(args) == 2 && args[0].Kind() == celast.IdentKind && args[1].Kind() == celast.LiteralKind {
				if name, ok := args[1].AsLiteral().(types.String); ok {
					add(args[0].AsIdent(), string(name))
				}
			}
		}
	}))
	return out
}
