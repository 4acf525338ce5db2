package transform

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// rulesYAML is a mapping with one rule of each kind and an inverse.
const rulesYAML = ordersHead + `          total_cents: int(double(row.total) * 100.0)
          note: trim(row.note)
    rules:
      - { name: free_text_note, ignore_column: public.orders.note }
      - { name: cents_rounding, column: public.orders.total_cents, equal: 'abs(source - target) <= 1' }
      - { name: konbini_unpaid, ignore_rows: 'row.method == "konbini" && row.code == null' }
    inverse:
      columns:
        id: orders.id
        note: 'orders["note"] + ""'
        total: string(double(orders.total_cents) / 100.0)
`

func compileRules(t *testing.T, yaml string, opts ...Option) ([]*Rule, error) {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return CompileRules(0, cfg.Mappings[0], opts...)
}

func TestCompileRules_EachKindEvaluates(t *testing.T) {
	rules, err := compileRules(t, rulesYAML)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Name, Table, Column string
		Kind                RuleKind
	}
	var gotRules []got
	for _, r := range rules {
		gotRules = append(gotRules, got{r.Name, r.Table, r.Column, r.Kind})
	}
	want := []got{
		{"free_text_note", "public.orders", "note", RuleIgnoreColumn},
		{"cents_rounding", "public.orders", "total_cents", RuleEqual},
		{"konbini_unpaid", "", "", RuleIgnoreRows},
	}
	if diff := cmp.Diff(want, gotRules); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	equal := []struct {
		source, target any
		want           bool
	}{
		{int64(100), int64(101), true}, {int64(100), int64(98), false}, {1.5, 2.0, true}, {2.5, 4.0, false},
		{int64(100), int64(103), false}, {int64(101), int64(100), true}, // abs of a negative difference
	}
	for _, e := range equal {
		if ok, err := rules[1].Equal(e.source, e.target); ok != e.want || err != nil {
			t.Errorf("Equal(%v, %v) = %v, %v; want %v", e.source, e.target, ok, err, e.want)
		}
	}
	for _, e := range [][2]any{{int64(1), nil}, {int64(3), 3.9}} { // no arithmetic on NULL, nor on int and double
		if ok, err := rules[1].Equal(e[0], e[1]); ok || err == nil {
			t.Errorf("Equal(%v, %v) = %v, %v; want false and an error", e[0], e[1], ok, err)
		}
	}
	for _, row := range []struct {
		row  change.Row
		want bool
	}{
		{change.Row{"method": "konbini", "code": nil}, true},
		{change.Row{"method": "konbini", "code": "K1"}, false},
		{change.Row{"method": "card", "code": nil}, false},
	} {
		if ok, err := rules[2].Matches(row.row); ok != row.want || err != nil {
			t.Errorf("Matches(%v) = %v, %v; want %v", row.row, ok, err, row.want)
		}
	}
	if ok, _ := rules[0].Matches(change.Row{}); ok {
		t.Error("an ignore_column rule matches rows")
	}
}

func TestCompileRules_ErrorsNameTheExpressionsPlace(t *testing.T) {
	yaml := strings.Replace(rulesYAML, "abs(source - target) <= 1", "abs(source - target) <=", 1)
	yaml = strings.Replace(yaml, `row.method == "konbini" && row.code == null`, `row.nope == 1`, 1)
	_, err := compileRules(t, yaml, WithSource(map[string]change.Type{"id": change.TypeInt, "total": change.TypeDecimal,
		"note": change.TypeString, "method": change.TypeString, "code": change.TypeString}))
	want := "tandem.yaml:19:99: mappings[0].rules[1].equal: Syntax error: mismatched input '<EOF>' expecting " +
		"{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n" +
		"tandem.yaml:20:50: mappings[0].rules[2].ignore_rows: undefined field 'nope'"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestInverseReads_NamesTheTargetColumnsOfEachSourceColumn(t *testing.T) {
	m, err := compileYAML(t, rulesYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"id":    {"public.orders.id"},
		"note":  {"public.orders.note"},
		"total": {"public.orders.total_cents"},
	}
	if diff := cmp.Diff(want, m.InverseReads()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
