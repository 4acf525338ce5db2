package transform

import (
	"errors"
	"testing"

	"github.com/tandemcdc/tandem/internal/change"
)

func TestEvalError_ShowsHiddenCharactersOfTheValues(t *testing.T) {
	yaml := ordersHead + `          method: '{"代金引換": "cod", "card": "card"}[row.method]'
`
	m := compileMapping(t, yaml)
	tests := []struct {
		row  change.Row
		want string
	}{{
		row:  change.Row{"id": int64(1), "method": "代金引換\r"},
		want: `mapping shop.orders: to[0].columns.method ({"代金引換": "cod", "card": "card"}[row.method]): no such key: "代金引換\r"`,
	}, {
		row:  change.Row{"id": int64(1), "method": "card "},
		want: `mapping shop.orders: to[0].columns.method ({"代金引換": "cod", "card": "card"}[row.method]): no such key: "card "`,
	}, {
		row:  change.Row{"id": int64(1)},
		want: `mapping shop.orders: to[0].columns.method ({"代金引換": "cod", "card": "card"}[row.method]): no such key: "method"`,
	}}
	for _, tt := range tests {
		_, err := m.Apply(t.Context(), tt.row)
		var ee *EvalError
		if !errors.As(err, &ee) {
			t.Fatalf("Apply(%v) = %v, want an *EvalError", tt.row, err)
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Apply(%q):\n got %s\nwant %s", tt.row["method"], got, tt.want)
		}
	}
}

func TestShowHidden_EscapesWhatDoesNotPrint(t *testing.T) {
	for in, want := range map[string]string{
		"division by zero":           "division by zero",
		"bad value a\rb\x00c\u00a0d": `bad value a\rb\x00c\u00a0d`,
		"日本語 ok":                     "日本語 ok",
		"no such key: 1":             `no such key: "1"`,
	} {
		if got := showHidden(in); got != want {
			t.Errorf("showHidden(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDescribeWhere_QuotesStrings(t *testing.T) {
	got := describeWhere(map[string]any{"legacy_id": int64(77), "code": "a\r"})
	if want := `code = "a\r" and legacy_id = 77`; got != want {
		t.Errorf("describeWhere = %s, want %s", got, want)
	}
}
