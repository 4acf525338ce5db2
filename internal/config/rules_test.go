package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rulesHead is a valid config up to a mapping's rules (line 14 is the
// first rule).
const rulesHead = `source:
  kind: postgres
  dsn: postgres://u:pw@h/db
  tables: [shop.orders]
target:
  kind: postgres
  dsn: postgres://u:pw@h/db
mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns: {id: row.id, note: row.note, total_cents: int(row.total * 100.0)}
    rules:
`

func TestParse_RulesOfTheThreeKinds(t *testing.T) {
	cfg, err := Parse("tandem.yaml", []byte(rulesHead+
		"      - { name: free_text_note, ignore_column: public.orders.note }\n"+
		"      - { name: cents_rounding, column: public.orders.total_cents, equal: 'abs(source - target) <= 1' }\n"+
		"      - { name: konbini_unpaid, ignore_rows: 'row.payment_method == \"konbini\"' }\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Name: "free_text_note", IgnoreColumn: "public.orders.note", Pos: Pos{File: "tandem.yaml", Line: 15, Col: 9}},
		{Name: "cents_rounding", Column: "public.orders.total_cents",
			Equal: &Expr{Text: "abs(source - target) <= 1", Pos: Pos{File: "tandem.yaml", Line: 16, Col: 76}},
			Pos:   Pos{File: "tandem.yaml", Line: 16, Col: 9}},
		{Name: "konbini_unpaid", IgnoreRows: &Expr{Text: `row.payment_method == "konbini"`, Pos: Pos{File: "tandem.yaml", Line: 17, Col: 47}},
			Pos: Pos{File: "tandem.yaml", Line: 17, Col: 9}},
	}
	if diff := cmp.Diff(want, cfg.Mappings[0].Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	var kinds []string
	for _, r := range cfg.Mappings[0].Rules {
		kinds = append(kinds, r.Kind()+" "+r.TargetColumn())
	}
	if diff := cmp.Diff([]string{"ignore_column public.orders.note", "column public.orders.total_cents", "ignore_rows "}, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
}

func TestParse_BadRulesGiveExactErrors(t *testing.T) {
	_, err := Parse("tandem.yaml", []byte(rulesHead+
		"      - { ignore_column: public.orders.note }\n"+
		"      - { name: a, ignore_column: public.orders.nope }\n"+
		"      - { name: a, ignore_column: public.orders.id }\n"+
		"      - { name: b, column: public.orders.note }\n"+
		"      - { name: c, equal: 'source == target' }\n"+
		"      - { name: d, ignore_column: public.orders.note, ignore_rows: 'true' }\n"+
		"      - { name: 'bad name', ignore_rows: 'true' }\n"+
		"      - { name: e, ignore_rows: 'true', colour: red }\n"), nil)
	want := `tandem.yaml:15:9: mappings[0].rules[0].name: required: the rule's name (the rule label of tandem_reconcile_rule_rows)
tandem.yaml:16:35: mappings[0].rules[1].ignore_column: is not <to table>.<column> of a column this mapping writes, got "public.orders.nope"
tandem.yaml:17:17: mappings[0].rules[2].name: duplicate rule name "a" (first in mappings[0].rules[1])
tandem.yaml:17:35: mappings[0].rules[2].ignore_column: is a key column: a row whose key differs is missing or extra, never equal, got "public.orders.id"
tandem.yaml:18:9: mappings[0].rules[3].equal: required with column: a CEL expression over source and target that is true when they are equal
tandem.yaml:19:9: mappings[0].rules[4].column: required with equal: the <to table>.<column> it compares
tandem.yaml:20:9: mappings[0].rules[5]: must set exactly one of ignore_column, column (with equal) or ignore_rows
tandem.yaml:21:17: mappings[0].rules[6].name: must be 1 to 100 letters, digits, '_', '.' or '-', got "bad name"
tandem.yaml:22:41: mappings[0].rules[7].colour: unknown key (known: name, ignore_column, column, equal, ignore_rows)`
	if err == nil {
		t.Fatal("no error")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
