package transform

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

// TestOutputs_ListEachTablesKeyColumnsAndCopies: what reconcile reads of
// a mapping, output by output in file order.
func TestOutputs_ListEachTablesKeyColumnsAndCopies(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	want := []Output{
		{Table: "public.orders", Key: []string{"id"}, Columns: []string{"id", "total_cents", "status", "paid", "blob", "note"},
			Copied: map[string]string{"id": "id", "paid": "paid", "blob": "blob", "note": "note"}},
		{Table: "public.payments", Key: []string{"order_id"}, Columns: []string{"order_id", "kind"},
			Copied: map[string]string{"order_id": "id", "kind": "method"}, Conditional: true},
	}
	if diff := cmp.Diff(want, m.Outputs()); diff != "" {
		t.Errorf("Outputs (-want +got):\n%s", diff)
	}
	if m.HasInverse() {
		t.Error("HasInverse: true for a mapping without an inverse")
	}
	inv, err := compileYAML(t, rulesYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !inv.HasInverse() {
		t.Error("HasInverse: false for a mapping with an inverse")
	}
}

// TestApply_AWhenThatFailsNamesTheMappingAndTheWhen: a when that cannot
// be evaluated on a row is an EvalError naming where it is.
func TestApply_AWhenThatFailsNamesTheMappingAndTheWhen(t *testing.T) {
	m, err := compileYAML(t, strings.Replace(mappingYAML, `when: row.method != ""`, `when: int(row.method) > 0`, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply(t.Context(), change.Row{"id": int64(1), "total": "0", "status": "", "paid": nil, "blob": nil, "note": nil, "method": "card"})
	var ee *EvalError
	if !errors.As(err, &ee) || ee.Mapping != "shop.orders" || ee.Path != "when int(row.method) > 0" {
		t.Fatalf("Apply with a failing when = %#v, want an EvalError naming mapping shop.orders and the when", err)
	}
	if want := `mapping shop.orders: when int(row.method) > 0: type conversion error from 'string' to 'int'`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// TestRule_AnEqualThatIsNotABooleanIsAnError: an equal rule whose
// expression gives no boolean (columns of no declared type) says so.
func TestRule_AnEqualThatIsNotABooleanIsAnError(t *testing.T) {
	rules, err := compileRules(t, strings.Replace(rulesYAML, "abs(source - target) <= 1", "source", 1))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := rules[1].Equal(int64(100), int64(100))
	want := "mapping rule cents_rounding: mappings[0].rules[1].equal (source): got 100 (int64), want a bool"
	if ok || err == nil || err.Error() != want {
		t.Errorf("Equal = %v, %v; want false and %q", ok, err, want)
	}
}

// TestQuoted_CutsALongValueAtACharacterBoundary: an error message quotes
// at most 80 bytes of a value, never half a character, and says how long
// the value was.
func TestQuoted_CutsALongValueAtACharacterBoundary(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{strings.Repeat("a", 80), `"` + strings.Repeat("a", 80) + `"`},
		{strings.Repeat("a", 81), `"` + strings.Repeat("a", 80) + `"... (81 bytes)`},
		{strings.Repeat("a", 79) + "é", `"` + strings.Repeat("a", 79) + `"... (81 bytes)`},
		{strings.Repeat("a", 78) + "寿司", `"` + strings.Repeat("a", 78) + `"... (84 bytes)`},
		{strings.Repeat("\x80", 81), `""... (81 bytes)`}, // not UTF-8: no character starts before 80
	} {
		if got := quoted(tc.in); got != tc.want {
			t.Errorf("quoted(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
