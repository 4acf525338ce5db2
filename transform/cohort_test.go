package transform

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// cohortYAML maps old orders, each of a merchant (its cohort), into new
// orders that keep the merchant as shop_id, and payments that name it
// through to[].cohort.
const cohortYAML = `source:
  kind: postgres
  dsn: postgres://u@h/db
  tables: [shop.orders]
target:
  kind: postgres
  dsn: postgres://u@h/db
mappings:
  - from: shop.orders
    cohort: row.merchant_id
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          shop_id: row.merchant_id
          total: row.total
      - table: public.payments
        key: [order_id]
        when: row.method != ""
        cohort: row.merchant
        columns:
          order_id: row.id
          merchant: row.merchant_id
          kind: row.method
`

func compileMapping(t *testing.T, yaml string, opts ...Option) *Mapping {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	m, err := Compile(0, cfg.Mappings[0], opts...)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return m
}

func TestCohortOf_IsOneTextForEveryType(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, config.DefaultCohort},
		{"acme", "acme"},
		{int64(7), "7"},
		{7, "7"},
		{uint64(7), "7"},
		{[]byte{0xde, 0xad}, `\xdead`},
		{true, "true"},
	}
	for _, tt := range tests {
		if got := CohortOf(tt.v); got != tt.want {
			t.Errorf("CohortOf(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestCohortColumns(t *testing.T) {
	m := compileMapping(t, cohortYAML)
	type columns struct {
		Has              bool
		Source           string
		Orders, Payments string
	}
	got := columns{Has: m.HasCohort(), Source: m.CohortColumn()}
	var err error
	if got.Orders, err = m.OutputCohortColumn("public.orders"); err != nil {
		t.Fatal(err)
	}
	if got.Payments, err = m.OutputCohortColumn("public.payments"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(columns{Has: true, Source: "merchant_id", Orders: "shop_id", Payments: "merchant"}, got); diff != "" {
		t.Errorf("cohort columns (-want +got):\n%s", diff)
	}

	none := compileMapping(t, strings.Replace(strings.Replace(cohortYAML, "    cohort: row.merchant_id\n", "", 1), "        cohort: row.merchant\n", "", 1))
	got = columns{Has: none.HasCohort(), Source: none.CohortColumn()}
	if got.Orders, err = none.OutputCohortColumn("public.orders"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(columns{}, got); diff != "" {
		t.Errorf("without a cohort (-want +got):\n%s", diff)
	}
}

func TestOutputCohortColumn_Errors(t *testing.T) {
	m := compileMapping(t, strings.Replace(cohortYAML, "shop_id: row.merchant_id", "shop_id: int(row.merchant_id)", 1))
	tests := []struct{ table, want string }{
		{"public.orders", "tandem.yaml:12:16: mapping shop.orders: table public.orders has no cohort column: none of its columns is row.merchant_id as it is; add to[].cohort naming the column of public.orders that holds the row's cohort, or a column merchant_id: row.merchant_id"},
		{"public.nope", "mapping shop.orders has no output table public.nope"},
	}
	for _, tt := range tests {
		_, err := m.OutputCohortColumn(tt.table)
		if err == nil || err.Error() != tt.want {
			t.Errorf("OutputCohortColumn(%s) error = %v\nwant %s", tt.table, err, tt.want)
		}
	}
}

func TestCompile_CohortMustNameAColumn(t *testing.T) {
	tests := []struct {
		name, from, to string
		opts           []Option
		want           string
	}{
		{"mapping cohort is an expression", "cohort: row.merchant_id", "cohort: string(row.merchant_id)", nil,
			`tandem.yaml:10:13: mappings[0].cohort: must name a column of the source row, such as row.merchant_id, got "string(row.merchant_id)": the fence triggers compute the cohort in SQL, so it cannot be an expression`},
		{"mapping cohort is a constant", "cohort: row.merchant_id", `cohort: '"eu"'`, nil,
			`tandem.yaml:10:14: mappings[0].cohort: must name a column of the source row, such as row.merchant_id, got "\"eu\"": the fence triggers compute the cohort in SQL, so it cannot be an expression`},
		{"mapping cohort does not compile", "cohort: row.merchant_id", "cohort: row.", nil,
			"tandem.yaml:10:17: mappings[0].cohort: Syntax error"},
		{"mapping cohort names an unknown column", "cohort: row.merchant_id", "cohort: row.merchant", []Option{WithSource(map[string]change.Type{
			"id": change.TypeInt, "merchant_id": change.TypeInt, "total": change.TypeDecimal, "method": change.TypeString})},
			"tandem.yaml:10:16: mappings[0].cohort: undefined field 'merchant'"},
		{"output cohort is an expression", "cohort: row.merchant\n", "cohort: row.merchant + 0\n", nil,
			`tandem.yaml:21:17: mappings[0].to[1].cohort: must name a column of the public.payments row, such as row.merchant_id, got "row.merchant + 0": the fence triggers compute the cohort in SQL, so it cannot be an expression`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse("tandem.yaml", []byte(strings.Replace(cohortYAML, tt.from, tt.to, 1)), nil)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			_, err = Compile(0, cfg.Mappings[0], tt.opts...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Compile error = %v\nwant it to start with %q", err, tt.want)
			}
		})
	}
}

func TestWrites_WithCohortsSetsEachWritesCohort(t *testing.T) {
	m := compileMapping(t, cohortYAML, WithCohorts())
	order := func(id, merchant int64, method string) change.Row {
		return change.Row{"id": id, "merchant_id": merchant, "total": "9.50", "method": method}
	}
	upsertOrder := func(id, merchant int64, cohort string) change.Write {
		return change.Write{Table: "public.orders", Op: change.WriteUpsert, Key: []string{"id"},
			Row: map[string]any{"id": id, "shop_id": merchant, "total": "9.50"}, Cohort: cohort}
	}
	upsertPayment := func(id, merchant int64, cohort string) change.Write {
		return change.Write{Table: "public.payments", Op: change.WriteUpsert, Key: []string{"order_id"},
			Row: map[string]any{"order_id": id, "merchant": merchant, "kind": "card"}, Cohort: cohort}
	}
	deleteOrder := func(id int64, cohort string) change.Write {
		return change.Write{Table: "public.orders", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": id}, Cohort: cohort}
	}
	deletePayment := func(id int64, cohort string) change.Write {
		return change.Write{Table: "public.payments", Op: change.WriteDelete, Key: []string{"order_id"}, Row: map[string]any{"order_id": id}, Cohort: cohort}
	}
	tests := []struct {
		name string
		ev   change.Event
		want []change.Write
	}{{
		name: "insert: the new row's cohort",
		ev:   change.Event{Op: change.OpCreate, After: order(1, 7, "card")},
		want: []change.Write{upsertOrder(1, 7, "7"), upsertPayment(1, 7, "7")},
	}, {
		name: "backfilled row",
		ev:   change.Event{Op: change.OpRead, After: order(1, 7, "")},
		want: []change.Write{{Table: "public.orders", Op: change.WriteCopy, Key: []string{"id"}, Row: map[string]any{"id": int64(1), "shop_id": int64(7), "total": "9.50"}, Cohort: "7"}},
	}, {
		name: "update to another merchant: written with the new cohort",
		ev:   change.Event{Op: change.OpUpdate, Before: order(1, 7, "card"), After: order(1, 8, "card")},
		want: []change.Write{upsertOrder(1, 8, "8"), upsertPayment(1, 8, "8")},
	}, {
		name: "when turning false: the removal has the before-image's cohort",
		ev:   change.Event{Op: change.OpUpdate, Before: order(1, 7, "card"), After: order(1, 8, "")},
		want: []change.Write{deletePayment(1, "7"), upsertOrder(1, 8, "8")},
	}, {
		name: "key move: the old key's removals have the before-image's cohort",
		ev:   change.Event{Op: change.OpUpdate, Before: order(1, 7, "card"), After: order(2, 8, "card")},
		want: []change.Write{deleteOrder(1, "7"), deletePayment(1, "7"), upsertOrder(2, 8, "8"), upsertPayment(2, 8, "8")},
	}, {
		name: "update without a before-image that removes nothing",
		ev:   change.Event{Op: change.OpUpdate, After: order(1, 7, "card")},
		want: []change.Write{upsertOrder(1, 7, "7"), upsertPayment(1, 7, "7")},
	}, {
		name: "delete: the before-image's cohort",
		ev:   change.Event{Op: change.OpDelete, Before: order(1, 7, "card")},
		want: []change.Write{deleteOrder(1, "7"), deletePayment(1, "7")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := Writes(t.Context(), m, &tt.ev)
			if err != nil {
				t.Fatalf("Writes: %s: %v", reason, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Writes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWrites_WithCohortsNeedsTheFullBeforeImage(t *testing.T) {
	m := compileMapping(t, cohortYAML, WithCohorts())
	tests := []struct {
		name string
		ev   change.Event
		want string
	}{{
		name: "key-only delete",
		ev:   change.Event{Op: change.OpDelete, Before: change.Row{"id": int64(1)}},
		want: "mapping shop.orders: the before-image of the shop.orders row has no cohort column merchant_id: with cutover the source table needs its full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
	}, {
		name: "key-only key move",
		ev:   change.Event{Op: change.OpUpdate, Before: change.Row{"id": int64(1)}, After: change.Row{"id": int64(2), "merchant_id": int64(7), "total": "1", "method": ""}},
		want: "mapping shop.orders: the before-image of the shop.orders row has no cohort column merchant_id: with cutover the source table needs its full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
	}, {
		name: "when turning false without a before-image",
		ev:   change.Event{Op: change.OpUpdate, After: change.Row{"id": int64(1), "merchant_id": int64(7), "total": "1", "method": ""}},
		want: "mapping shop.orders: the before-image of the shop.orders row is missing, so its cohort (column merchant_id) is unknown: with cutover the source table needs its full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := Writes(t.Context(), m, &tt.ev)
			if err == nil || err.Error() != tt.want || reason != "transform" {
				t.Errorf("Writes = %v, %q, %v\nwant the transform error %s", got, reason, err, tt.want)
			}
		})
	}
}

func TestWrites_WithCohortsWithoutAMappingCohortIsDefault(t *testing.T) {
	m := compileMapping(t, ordersHead, WithCohorts())
	got, _, err := Writes(t.Context(), m, &change.Event{Op: change.OpDelete, Before: change.Row{"id": int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := []change.Write{{Table: "public.orders", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": int64(3)}, Cohort: config.DefaultCohort}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Writes (-want +got):\n%s", diff)
	}
}

func TestWrites_WithoutCohortsLeavesCohortEmpty(t *testing.T) {
	m := compileMapping(t, cohortYAML)
	got, _, err := Writes(t.Context(), m, &change.Event{Op: change.OpDelete, Before: change.Row{"id": int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := []change.Write{
		{Table: "public.orders", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": int64(3)}},
		{Table: "public.payments", Op: change.WriteDelete, Key: []string{"order_id"}, Row: map[string]any{"order_id": int64(3)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Writes (-want +got):\n%s", diff)
	}
}
