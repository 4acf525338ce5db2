package capture

import (
	"fmt"
	"strings"
)

// KeyBounds is the WHERE clause of a table reader's chunk query over the
// key columns keys (quoted as the server wants): the rows after after and
// up to until, in key order, either nil for no bound, as row comparisons
// ("(a, b) > (v1, v2)"). value writes each key value into the clause, in
// the clause's order: a placeholder whose argument the caller keeps, or
// the value rendered as a literal. "" when neither bound is given.
func KeyBounds(keys, after, until []string, value func(string) string) string {
	var conds []string
	for _, b := range []struct {
		op  string
		key []string
	}{{">", after}, {"<=", until}} {
		if b.key == nil {
			continue
		}
		vals := make([]string, len(b.key))
		for i, v := range b.key {
			vals[i] = value(v)
		}
		conds = append(conds, fmt.Sprintf("(%s) %s (%s)", strings.Join(keys, ", "), b.op, strings.Join(vals, ", ")))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}
