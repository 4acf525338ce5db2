package transform

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// ordersHead is the head of the test configs: one mapping of shop.orders
// to public.orders by id; what follows adds its other columns.
const ordersHead = `source:
  kind: postgres
  dsn: postgres://u@h/db
  tables: [shop.orders]
target:
  kind: postgres
  dsn: postgres://u@h/db
mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
`

const mappingYAML = ordersHead + `          total_cents: int(double(row.total) * 100.0 + 0.5)
          status: 'row.status == "" ? "pending" : row.status'
          paid: row.paid
          blob: row.blob
          note: row.note
      - table: public.payments
        key: [order_id]
        mode: create_if_absent
        when: row.method != ""
        columns:
          order_id: row.id
          kind: row.method
`

func compileYAML(t *testing.T, yaml string) (*Mapping, error) {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return Compile(0, cfg.Mappings[0])
}

func TestApply_MapsOneRowToSeveralTables(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	row := change.Row{"id": int64(7), "total": "12.34", "status": "", "paid": true, "blob": []byte{0, 1}, "note": nil, "method": "card"}
	got, err := m.Apply(t.Context(), row)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{
			"id": int64(7), "total_cents": int64(1234), "status": "pending", "paid": true, "blob": []byte{0, 1}, "note": nil}},
		{Table: "public.payments", Key: []string{"order_id"}, CreateIfAbsent: true, Columns: map[string]any{"order_id": int64(7), "kind": "card"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Apply (-want +got):\n%s", diff)
	}
}

func TestApplyUpdate_RowThatStopsMatchingYieldsItsKey(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	row := change.Row{"id": int64(7), "total": "1", "status": "paid", "paid": false, "blob": nil, "note": "x", "method": ""}
	rows, gone, err := m.ApplyUpdate(t.Context(), row, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []Row{{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{
		"id": int64(7), "total_cents": int64(100), "status": "paid", "paid": false, "blob": nil, "note": "x"}}}
	if diff := cmp.Diff(wantRows, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	want := []Key{{Table: "public.payments", Key: []string{"order_id"}, Columns: map[string]any{"order_id": int64(7)}}}
	if diff := cmp.Diff(want, gone); diff != "" {
		t.Errorf("gone keys (-want +got):\n%s", diff)
	}
}

func TestKeys_EvaluatesOnlyKeyColumns(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	// A key-only before-image: evaluating total_cents would fail.
	got, err := m.Keys(t.Context(), change.Row{"id": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Key{
		{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{"id": int64(7)}},
		{Table: "public.payments", Key: []string{"order_id"}, Columns: map[string]any{"order_id": int64(7)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
}

func TestApply_MissingColumnIsAnEvalErrorNotNull(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply(t.Context(), change.Row{"id": int64(1)})
	var ee *EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("Apply on a row without its columns = %v, want an *EvalError", err)
	}
	if !strings.Contains(ee.Error(), "mapping shop.orders: to[0].columns.total_cents") {
		t.Errorf("error %q does not name the mapping and column", ee.Error())
	}
}

func TestCompile_ErrorsNameFileLineColumn(t *testing.T) {
	tests := []struct {
		name, from, to string
		want           string
	}{
		{"syntax error", "int(double(row.total) * 100.0 + 0.5)", "int(double(row.total) * )",
			"tandem.yaml:15:48: mappings[0].to[0].columns.total_cents: Syntax error"},
		{"unknown function", "int(double(row.total) * 100.0 + 0.5)", "round(row.total)",
			"tandem.yaml:15:29: mappings[0].to[0].columns.total_cents: undeclared reference to 'round'"},
		{"when not boolean", `when: row.method != ""`, `when: row.method + "x"`,
			"tandem.yaml:23:15: mappings[0].to[1].when: must be a boolean expression"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.Replace(mappingYAML, tc.from, tc.to, 1)
			_, err := compileYAML(t, yaml)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNative_ConvertsCELResults(t *testing.T) {
	m, err := compileYAML(t, strings.Replace(mappingYAML, "note: row.note", `note: '{"a": [1, "x"], "t": timestamp("2026-11-23T10:00:00Z")}'`, 1))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Apply(t.Context(), change.Row{"id": int64(1), "total": "0", "status": "x", "paid": nil, "blob": nil, "method": ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{
		"id": int64(1), "total_cents": int64(0), "status": "x", "paid": nil, "blob": nil,
		"note": map[string]any{"a": []any{int64(1), "x"}, "t": time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows, the map result in note (-want +got):\n%s", diff)
	}
}

func TestApply_WhenOfNonBooleanValueIsAnError(t *testing.T) {
	m, err := compileYAML(t, strings.Replace(mappingYAML, `when: row.method != ""`, `when: row.method`, 1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Apply(t.Context(), change.Row{"id": int64(1), "total": "0", "status": "", "paid": nil, "blob": nil, "note": nil, "method": "card"})
	var ee *EvalError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "must be a boolean") {
		t.Errorf("Apply with a string-valued when = %v, want an EvalError saying it must be a boolean", err)
	}
}

func TestApplyUpdate_ColumnsOfUnsentValuesAreLeftOut(t *testing.T) {
	yaml := strings.Replace(mappingYAML, "note: row.note", `note: 'row["note"] + "!"'`, 1)
	m, err := compileYAML(t, yaml)
	if err != nil {
		t.Fatal(err)
	}
	// note was not sent (an unchanged TOASTed value): the note column is not
	// written, every other column is.
	row := change.Row{"id": int64(7), "total": "1", "status": "paid", "paid": true, "blob": nil, "method": ""}
	rows, _, err := m.ApplyUpdate(t.Context(), row, map[string]bool{"note": true})
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{
		"id": int64(7), "total_cents": int64(100), "status": "paid", "paid": true, "blob": nil}}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	// A key computed from an unsent column cannot be.
	if _, _, err := m.ApplyUpdate(t.Context(), change.Row{"total": "1"}, map[string]bool{"id": true}); err == nil || !strings.Contains(err.Error(), "did not send") {
		t.Errorf("key from an unsent column: err = %v", err)
	}
}

func TestRowReads(t *testing.T) {
	tests := []struct {
		expr string
		want reads
	}{
		{`row.a + row["b"]`, reads{cols: []string{"a", "b"}}},
		{`has(row.a) ? row.a : 0`, reads{cols: []string{"a", "a"}}},
		{`size(row) > 2`, reads{any: true}},
		{`1 + 2`, reads{}},
	}
	env, err := newEnv(nil, newLookups(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		ast, iss := parseRow(env, tc.expr)
		if iss.Err() == nil {
			ast, iss = env.Check(ast)
		}
		if iss.Err() != nil {
			t.Fatal(iss.Err())
		}
		if diff := cmp.Diff(tc.want, rowReads(ast), cmp.AllowUnexported(reads{}), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
			t.Errorf("rowReads(%s) (-want +got):\n%s", tc.expr, diff)
		}
	}
}

func TestReads_ListsEveryColumnTheMappingReads(t *testing.T) {
	m, err := compileYAML(t, mappingYAML)
	if err != nil {
		t.Fatal(err)
	}
	cols, anyCol := m.Reads()
	want := []string{"id", "total", "status", "paid", "blob", "note", "method"}
	if diff := cmp.Diff(want, cols); diff != "" || anyCol {
		t.Errorf("Reads() = %v, any %v; want %v, false (-want +got):\n%s", cols, anyCol, want, diff)
	}
}
