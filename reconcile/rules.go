package reconcile

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/transform"
)

// Rules (a mapping's `rules`, compiled by transform.CompileRules) are known
// differences, applied wherever rows are compared: the sweep, the
// re-verification of applied rows (Verify), their re-checks and the inverse
// round trip.
//
//   - ignore_column: a difference in that target column is not drift (in
//     the round trip: a difference in a source column whose inverse reads it).
//   - column + equal: a difference in that column is not drift when the
//     rule's expression holds the two values equal.
//   - ignore_rows: a source row it matches is not drift, whatever the kind
//     (missing, mismatch, unmapped, round trip).
//
// The tolerance rules decide first; a rule is asked only about a
// difference they leave. A sweep counts, per rule, the differences it
// absorbed when first compared (tandem_reconcile_rule_rows and
// MappingReport.Rules): for a column rule one per target row (or round
// trip) whose difference it absorbed; for ignore_rows one per drifted row
// (or round trip) a matched source row would have made under the other
// rules, which count nothing for it.

// ruleSet is one mapping's rules, by what they apply to.
type ruleSet struct {
	columns map[string][]*transform.Rule // column rules, by "<table>.<column>"
	rows    []*transform.Rule            // ignore_rows rules
	names   []string                     // every rule's name, in config order
}

func newRuleSet(rules []*transform.Rule) ruleSet {
	s := ruleSet{columns: map[string][]*transform.Rule{}}
	for _, rule := range rules {
		s.names = append(s.names, rule.Name)
		if rule.Kind == transform.RuleIgnoreRows {
			s.rows = append(s.rows, rule)
			continue
		}
		c := rule.Table + "." + rule.Column
		s.columns[c] = append(s.columns[c], rule)
	}
	return s
}

// ignored returns the first ignore_rows rule of mapping i that takes row
// out of the comparison; nil when none does (or there are none). A rule
// that fails on the row does not match it.
func (r *Reconciler) ignored(i int, row change.Row) *transform.Rule {
	for _, rule := range r.rules[i].rows {
		ok, err := rule.Matches(row)
		if err != nil {
			r.log.Debug("reconcile: an ignore_rows rule fails on a source row; comparing it", "mapping", r.mappings[i].Name, "err", err)
			continue
		}
		if ok {
			return rule
		}
	}
	return nil
}

// absorbs returns the column rule of mapping i that holds want and got,
// two values of table.column that differ, the same; nil when none does.
func (r *Reconciler) absorbs(i int, table, column string, want, got any) *transform.Rule {
	rules := r.rules[i].columns
	if len(rules) == 0 {
		return nil
	}
	for _, rule := range rules[table+"."+column] {
		if rule.Kind == transform.RuleIgnoreColumn {
			return rule
		}
		if ok, err := rule.Equal(want, got); ok {
			return rule
		} else if err != nil {
			r.log.Debug("reconcile: an equal rule fails on two values; they differ", "mapping", r.mappings[i].Name, "err", err)
		}
	}
	return nil
}

// count adds one absorbed difference to each of rules, during a sweep
// (outside one, nothing is counted).
func (r *Reconciler) count(i int, rules ...*transform.Rule) {
	if r.hits == nil {
		return
	}
	for _, rule := range rules {
		r.hits[i][rule.Name]++
	}
}

// dropIgnored counts and removes the suspects made of source rows an
// ignore_rows rule matches.
func (r *Reconciler) dropIgnored(i int, suspects []*suspect) []*suspect {
	if len(r.rules[i].rows) == 0 {
		return suspects
	}
	return slices.DeleteFunc(suspects, func(s *suspect) bool {
		if s.ignored != nil {
			r.count(i, s.ignored)
		}
		return s.ignored != nil
	})
}

// differing lists, sorted, the columns of want whose target value differs
// (under the tolerance rules and the column rules), and the rules that
// absorbed a difference.
func (r *Reconciler) differing(i int, table string, want, got map[string]any, cols map[string]column) (diff []string, absorbed []*transform.Rule) {
	for c, w := range want {
		g := got[c]
		if r.tols[i].of(table, c).equal(w, g, cols[c]) {
			continue
		}
		if rule := r.absorbs(i, table, c, w, g); rule != nil {
			if !slices.Contains(absorbed, rule) {
				absorbed = append(absorbed, rule)
			}
			continue
		}
		diff = append(diff, c)
	}
	if len(diff) > 1 {
		slices.Sort(diff)
	}
	return diff, absorbed
}

// roundTrip is the drift of a source row that does not come back through
// mapping i's inverse from mapped, the target rows it makes of it; ok is
// false when it comes back, but for differences the tolerance rules or
// the column rules (backEqual) let pass: those rules are absorbed.
func (r *Reconciler) roundTrip(ctx context.Context, i int, st *change.Schema, row change.Row, mapped []transform.Row) (d Drift, ok bool, absorbed []*transform.Rule) {
	m := r.mappings[i]
	rt, err := m.Back(ctx, row, mapped)
	key := pick(row, st.Key)
	d = Drift{Kind: KindRoundTrip, Table: m.From.String(), Key: key, SourceKey: key, Cohort: r.cohortOf(i, row)}
	if err != nil {
		d.Got = map[string]any{"error": err.Error()}
		d.Error = err.Error()
		return d, true, nil
	}
	for _, df := range rt.Diffs {
		equal, rule := false, (*transform.Rule)(nil)
		if !df.Lost {
			equal, rule = r.backEqual(i, st, df)
		}
		if rule != nil && !slices.Contains(absorbed, rule) {
			absorbed = append(absorbed, rule)
		}
		if !equal {
			if d.Want == nil {
				d.Want, d.Got = map[string]any{}, map[string]any{}
			}
			d.Columns = append(d.Columns, df.Column)
			d.Want[df.Column] = df.Source
			if !df.Lost {
				d.Got[df.Column] = df.Back
			}
		}
	}
	return d, len(d.Columns) > 0, absorbed
}

// backEqual reports whether a source column's round trip difference is
// one the rules let pass: equal under the tolerance rules of the target
// column its inverse reads (the mapping's, when it reads several), or
// absorbed by a column rule of a target column it reads (the rule).
func (r *Reconciler) backEqual(i int, st *change.Schema, df transform.Diff) (bool, *transform.Rule) {
	targets := r.inverseReads[i][df.Column]
	tol := r.tols[i].all
	if len(targets) == 1 {
		table, col := splitColumn(targets[0])
		tol = r.tols[i].of(table, col)
	}
	if tol.equal(df.Source, df.Back, sourceColumn(st.Types[df.Column])) {
		return true, nil
	}
	for _, t := range targets {
		table, col := splitColumn(t)
		if rule := r.absorbs(i, table, col, df.Source, df.Back); rule != nil {
			return true, rule
		}
	}
	return false, nil
}

// splitColumn splits "<table>.<column>" at its last dot.
func splitColumn(s string) (table, column string) {
	if k := strings.LastIndexByte(s, '.'); k >= 0 {
		return s[:k], s[k+1:]
	}
	return "", s
}

// sourceColumn is how a source column of type t compares, as a target
// column of the matching SQL type would (times are compared as their text:
// a source time may be a date or a time of day).
func sourceColumn(t change.Type) column {
	sql := map[change.Type]string{change.TypeInt: "bigint", change.TypeFloat: "double precision", change.TypeBool: "boolean",
		change.TypeBytes: "bytea", change.TypeDecimal: "numeric", change.TypeJSON: "jsonb"}[t]
	return columnOf(cmp.Or(sql, "text"))
}
