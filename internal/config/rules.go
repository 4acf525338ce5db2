package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Rule is a known difference of a mapping (an entry of its rules): one of
//
//	{name, ignore_column: <to table>.<column>}   the column is not compared
//	{name, column: <to table>.<column>, equal: <CEL>}
//	    the column's values are equal when the expression, over source
//	    (what the mapping computes) and target (what the target holds), is true
//	{name, ignore_rows: <CEL>}                   source rows for which the
//	    expression, over row, is true are not compared at all
//
// Reconcile applies every rule in its sweep, its re-verification of applied
// rows and the inverse round trip, and counts the differences each absorbed
// (tandem_reconcile_rule_rows{mapping,rule}). The expressions compile with
// the mapping (package transform).
type Rule struct {
	Name         string `yaml:"name"`          // unique in the mapping; the rule label of the metric
	IgnoreColumn string `yaml:"ignore_column"` // "<to table>.<column>"; "" unless that kind
	Column       string `yaml:"column"`        // "<to table>.<column>" compared by Equal
	Equal        *Expr  `yaml:"equal"`         // CEL over source and target; nil unless Column is set
	IgnoreRows   *Expr  `yaml:"ignore_rows"`   // CEL over row; nil unless that kind
	Pos          Pos    // position of the entry
}

// Kind names the rule's kind by its key: "ignore_column", "column" or
// "ignore_rows" ("" when none is set).
func (r Rule) Kind() string {
	switch {
	case r.IgnoreColumn != "":
		return "ignore_column"
	case r.Column != "" || r.Equal != nil:
		return "column"
	case r.IgnoreRows != nil:
		return "ignore_rows"
	}
	return ""
}

// TargetColumn returns the "<to table>.<column>" a column rule is about, ""
// for ignore_rows.
func (r Rule) TargetColumn() string {
	if r.IgnoreColumn != "" {
		return r.IgnoreColumn
	}
	return r.Column
}

// ruleNameRE is what a rule name may be: it is a metric label value, and
// people type it.
var ruleNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

// rules checks the rules of mapping m, at path p.
func (v *validator) rules(p string, m Mapping) {
	names := map[string]int{}
	for i, r := range m.Rules {
		rp := fmt.Sprintf("%s[%d]", p, i)
		switch j, dup := names[r.Name]; {
		case r.Name == "":
			v.add(r.Pos, rp+".name", "required: the rule's name (the rule label of tandem_reconcile_rule_rows)")
		case !ruleNameRE.MatchString(r.Name):
			v.add(r.Pos, rp+".name", "must be 1 to 100 letters, digits, '_', '.' or '-'"+v.got(rp+".name", r.Name))
		case dup:
			v.add(r.Pos, rp+".name", fmt.Sprintf("duplicate rule name %q (first in %s[%d])", r.Name, p, j))
		default:
			names[r.Name] = i
		}
		kinds := 0
		for _, set := range []bool{r.IgnoreColumn != "", r.Column != "" || r.Equal != nil, r.IgnoreRows != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			v.add(r.Pos, rp, "must set exactly one of ignore_column, column (with equal) or ignore_rows")
			continue
		case r.Column != "" && r.Equal == nil:
			v.add(r.Pos, rp+".equal", "required with column: a CEL expression over source and target that is true when they are equal")
		case r.Equal != nil && r.Column == "":
			v.add(r.Equal.Pos, rp+".column", "required with equal: the <to table>.<column> it compares")
		}
		if c := r.TargetColumn(); c != "" {
			v.ruleColumn(r, rp+"."+r.Kind(), c, m)
		}
	}
}

// ruleColumn checks that c, the column of rule r at path p, is a
// non-key column mapping m writes.
func (v *validator) ruleColumn(r Rule, p, c string, m Mapping) {
	for _, o := range m.To {
		table, col, ok := strings.Cut(c, o.Table+".")
		if !ok || table != "" || !slices.ContainsFunc(o.Columns, func(oc Column) bool { return oc.Name == col }) {
			continue
		}
		if slices.Contains(o.Key, col) {
			v.add(r.Pos, p, "is a key column: a row whose key differs is missing or extra, never equal"+v.got(p, c))
		}
		return
	}
	v.add(r.Pos, p, "is not <to table>.<column> of a column this mapping writes"+v.got(p, c))
}
