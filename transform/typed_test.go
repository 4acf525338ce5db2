package transform

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/sink"
)

// ordersColumns is shop.orders as a capturer types it.
var ordersColumns = map[string]change.Type{
	"id": change.TypeInt, "total": change.TypeDecimal, "status": change.TypeString, "paid": change.TypeBool,
	"blob": change.TypeBytes, "note": change.TypeString, "method": change.TypeString, "weight": change.TypeFloat,
	"created_at": change.TypeTime, "odd name": change.TypeString,
}

func compileTypedYAML(t *testing.T, yaml string, opts ...Option) (*Mapping, error) {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return Compile(0, cfg.Mappings[0], append([]Option{WithSource(ordersColumns)}, opts...)...)
}

// mapping wraps columns (YAML lines under `columns:`) in a one-output config.
func mapping(columns string, extra string) string {
	return ordersHead + `` + columns + extra
}

func TestCompileTyped_AcceptsWellTypedExpressions(t *testing.T) {
	m, err := compileTypedYAML(t, mapping(`          cents: int(double(row.total) * 100.0)
          heavy: row.weight > 2.5
          label: 'row.status == null ? "none" : row.status'
          odd: row.`+"`odd name`"+`
          twice: row.id * 2
          known: has(row.note)
`, ""))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Apply(t.Context(), change.Row{"id": int64(3), "total": "1.50", "weight": 3.0, "status": nil, "odd name": "x", "note": "n"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{
		"id": int64(3), "cents": int64(150), "heavy": true, "label": "none", "odd": "x", "twice": int64(6), "known": true}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Apply (-want +got):\n%s", diff)
	}
}

func TestCompileTyped_UnknownColumnsAndTypeErrorsNameFileLineColumn(t *testing.T) {
	tests := []struct {
		name, columns string
		want          []string
	}{
		{"unknown column", "          c: row.custmer_id\n", []string{"tandem.yaml:15:17: mappings[0].to[0].columns.c: undefined field 'custmer_id'"}},
		{"decimal text times a number", "          c: row.total * 100.0\n", []string{"tandem.yaml:15:24:", "no matching overload for '_*_'", "exact text: convert it"}},
		{"bool plus int", "          c: row.paid + 1\n", []string{"tandem.yaml:15:23:", "no matching overload for '_+_' applied to '(wrapper(bool), int)'"}},
		{"index by a computed name", "          c: row[\"sta\" + \"tus\"]\n", []string{"tandem.yaml:15:", "write row.name, or row[\"name\"] with the name as a quoted string"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileTypedYAML(t, mapping(tc.columns, ""))
			if err == nil {
				t.Fatal("compiled")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// The same expressions compile untyped: the source makes the difference.
	cfg, err := config.Parse("tandem.yaml", []byte(mapping("          c: row.custmer_id\n", "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(0, cfg.Mappings[0]); err != nil {
		t.Errorf("untyped compile: %v", err)
	}
}

const inverseYAML = `    inverse:
      columns:
        id: orders.id
        total: orders.total
        status: orders.state
        method: 'has(payments.kind) ? payments.kind : ""'
      ignore: [note]
`

func splitMapping(statusExpr string) string {
	return ordersHead + `          total: row.total
          state: ` + statusExpr + `
      - table: billing.payments
        key: [order_id]
        when: row.method != ""
        columns:
          order_id: row.id
          kind: row.method
` + inverseYAML
}

func TestRoundTrip_EqualWhenTheInverseGivesEveryColumnBack(t *testing.T) {
	m, err := compileTypedYAML(t, splitMapping("row.status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []change.Row{
		{"id": int64(1), "total": "12.50", "status": "paid", "method": "card", "note": "dropped"},
		{"id": int64(2), "total": "0.10", "status": "new", "method": "", "note": nil}, // payments' when is false
	} {
		rt, err := m.RoundTrip(t.Context(), src)
		if err != nil {
			t.Fatal(err)
		}
		if len(rt.Diffs) != 0 {
			t.Errorf("RoundTrip(%v) diffs: %v", src, rt.Diffs)
		}
		want := change.Row{"id": src["id"], "total": src["total"], "status": src["status"], "method": src["method"]}
		if diff := cmp.Diff(want, rt.Back); diff != "" {
			t.Errorf("Back (-want +got):\n%s", diff)
		}
	}
}

func TestRoundTrip_NamesTheColumnLostOrChanged(t *testing.T) {
	m, err := compileTypedYAML(t, splitMapping(`lower(row.status)`))
	if err != nil {
		t.Fatal(err) // lower() is one of the helper functions (functions.go)
	}
	rt, err := m.RoundTrip(t.Context(), change.Row{"id": int64(1), "total": "1", "status": "PAID", "method": "card", "note": "x", "extra": int64(9)})
	if err != nil {
		t.Fatal(err)
	}
	want := []Diff{
		{Column: "extra", Source: int64(9), Lost: true},
		{Column: "status", Source: "PAID", Back: "paid"},
	}
	if diff := cmp.Diff(want, rt.Diffs); diff != "" {
		t.Errorf("Diffs (-want +got):\n%s", diff)
	}
	if s := want[0].String(); !strings.Contains(s, "column extra (9 (int64)) is lost") || !strings.Contains(s, "inverse.ignore") {
		t.Errorf("lost column text: %s", s)
	}
	if s := want[1].String(); s != `column status is "PAID" in the source but "paid" after the round trip` {
		t.Errorf("changed column text: %s", s)
	}
}

func TestCompileTyped_InverseColumnsMustBeSourceColumns(t *testing.T) {
	yaml := strings.Replace(splitMapping("row.status"), "        status: orders.state\n", "        statuz: orders.state\n", 1)
	_, err := compileTypedYAML(t, yaml)
	if err == nil || !strings.Contains(err.Error(), `mappings[0].inverse.columns.statuz: shop.orders has no column "statuz"`) {
		t.Errorf("err = %v", err)
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b any
		t    change.Type
		want bool
	}{
		{nil, nil, change.TypeString, true},
		{nil, "", change.TypeString, false},
		{"", nil, change.TypeString, false},
		{"NULL", nil, change.TypeString, false},
		{int64(2), 2.0, change.TypeInt, true},
		{int64(2), uint64(2), change.TypeInt, true},
		{math.Copysign(0, -1), 0.0, change.TypeFloat, true},
		{math.NaN(), math.NaN(), change.TypeFloat, true},
		{math.Inf(1), math.Inf(1), change.TypeFloat, true},
		{math.Inf(1), math.Inf(-1), change.TypeFloat, false},
		{math.NaN(), 1.0, change.TypeFloat, false},
		{0.1, 0.1000001, change.TypeFloat, false},
		{"12.50", "12.5", change.TypeDecimal, true},
		{"12.50", 12.5, change.TypeDecimal, true},
		{"12.50", "12.51", change.TypeDecimal, false},
		{"12.50", "12.5", change.TypeString, false},
		{"NaN", "NaN", change.TypeDecimal, true},
		{[]byte{0, 1}, []byte{0, 1}, change.TypeBytes, true},
		{[]byte{0, 1}, "\x00\x01", change.TypeBytes, false},
		{"a ", "a", change.TypeString, false},
		{true, true, change.TypeBool, true},
	}
	for _, tc := range tests {
		if got := Equal(tc.a, tc.b, tc.t); got != tc.want {
			t.Errorf("Equal(%#v, %#v, %s) = %v, want %v", tc.a, tc.b, tc.t, got, tc.want)
		}
	}
}

// fakeLookuper is a target with one customers table.
type fakeLookuper struct {
	rows    map[int64]map[string]any // by legacy_id
	calls   atomic.Int64
	failing error
}

func (f *fakeLookuper) Lookup(_ context.Context, table string, where map[string]any) (map[string]any, bool, error) {
	f.calls.Add(1)
	if f.failing != nil {
		return nil, false, f.failing
	}
	if table != "public.customers" {
		return nil, false, errors.New("no table " + table)
	}
	r, ok := f.rows[where["legacy_id"].(int64)]
	return r, ok, nil
}

var _ Lookuper = (*fakeLookuper)(nil)

func TestLookup_FindsCachesAndFailsClearly(t *testing.T) {
	target := &fakeLookuper{rows: map[int64]map[string]any{7: {"id": "c0ffee", "legacy_id": int64(7)}}}
	m, err := compileTypedYAML(t, mapping(`          customer: 'lookup("public.customers", {"legacy_id": row.id}).id'
`, ""), WithLookup(target))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := m.Apply(t.Context(), change.Row{"id": int64(7)})
		if err != nil {
			t.Fatal(err)
		}
		want := []Row{{Table: "public.orders", Key: []string{"id"}, Columns: map[string]any{"id": int64(7), "customer": "c0ffee"}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Apply (-want +got):\n%s", diff)
		}
	}
	if n := target.calls.Load(); n != 1 {
		t.Errorf("target asked %d times for one row, want once (cached)", n)
	}

	// No such row: an evaluation error (a dead letter), never cached.
	for range 2 {
		_, err = m.Apply(t.Context(), change.Row{"id": int64(8)})
		var ee *EvalError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), "lookup in public.customers: no row where legacy_id = 8") || errors.Is(err, ErrLookupUnavailable) {
			t.Errorf("missing row: err = %v", err)
		}
	}
	if n := target.calls.Load(); n != 3 {
		t.Errorf("target asked %d times, want 3 (rows not found are not cached)", n)
	}

	// A target that cannot answer: retry, not a dead letter.
	target.failing = errors.New("connection refused")
	_, err = m.Apply(t.Context(), change.Row{"id": int64(9)})
	if !errors.Is(err, ErrLookupUnavailable) {
		t.Errorf("unavailable target: err = %v, want ErrLookupUnavailable", err)
	}
	// A lookup that matches many rows is the mapping's fault: a dead letter.
	target.failing = fmt.Errorf("lookup in public.customers by (legacy_id): %w", sink.ErrNotUnique)
	_, err = m.Apply(t.Context(), change.Row{"id": int64(10)})
	if !errors.Is(err, sink.ErrNotUnique) || errors.Is(err, ErrLookupUnavailable) {
		t.Errorf("not unique: err = %v", err)
	}

	// A value the lookup column cannot hold is the row's fault: a dead letter.
	target.failing = &sink.Error{Table: "public.customers", Reason: "data", Err: errors.New("invalid input syntax for type bigint")}
	_, err = m.Apply(t.Context(), change.Row{"id": int64(11)})
	var ee *EvalError
	if !errors.As(err, &ee) || errors.Is(err, ErrLookupUnavailable) {
		t.Errorf("data error: err = %v, want an EvalError that is not ErrLookupUnavailable", err)
	}
	// A missing column is the target's trouble until it is created: retry.
	target.failing = &sink.Error{Table: "public.customers", Reason: "column_missing", Err: sink.ErrColumnNotFound}
	if _, err = m.Apply(t.Context(), change.Row{"id": int64(12)}); !errors.Is(err, ErrLookupUnavailable) {
		t.Errorf("column missing: err = %v, want ErrLookupUnavailable", err)
	}

	// Without a target (compiled for a check), lookup fails when evaluated.
	m, err = compileTypedYAML(t, mapping(`          customer: 'lookup("public.customers", {"legacy_id": row.id}).id'
`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(t.Context(), change.Row{"id": int64(7)}); err == nil || !strings.Contains(err.Error(), "no target to look rows up in") {
		t.Errorf("no target: err = %v", err)
	}
}

func TestPlainColumn_OnlyBareSelectsOfRowSkipCEL(t *testing.T) {
	env, err := newEnv(nil, newLookups(nil))
	if err != nil {
		t.Fatal(err)
	}
	for expr, want := range map[string]string{
		"row.total": "total", "row.`odd name`": "odd name", " row.id ": "id",
		"has(row.id)": "", "row.id + 1": "", `row["id"]`: "id", `row["order id"]`: "order id", `row['naïve']`: "naïve", "json(row.meta).a": "", "other.id": "", "row.?id": "",
	} {
		if got := plainColumn(env, expr); got != want {
			t.Errorf("plainColumn(%q) = %q, want %q", expr, got, want)
		}
	}
}

// blockingLookuper answers no lookup until its context ends.
type blockingLookuper struct{ asked chan struct{} }

func (b blockingLookuper) Lookup(ctx context.Context, _ string, _ map[string]any) (map[string]any, bool, error) {
	close(b.asked)
	<-ctx.Done()
	return nil, false, ctx.Err()
}

func TestLookup_EndsWithTheCallersContext(t *testing.T) {
	target := blockingLookuper{asked: make(chan struct{})}
	m, err := compileTypedYAML(t, mapping(`          customer: 'lookup("public.customers", {"legacy_id": row.id}).id'
`, ""), WithLookup(target))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-target.asked
		cancel()
	}()
	_, err = m.Apply(ctx, change.Row{"id": int64(7)})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLookupUnavailable) {
		t.Errorf("Apply with its context cancelled during a lookup: err = %v, want context.Canceled as ErrLookupUnavailable", err)
	}
}

// Each mistake in an inverse is reported with where it is: a column or an
// ignored column the source does not have (only known with the source's
// columns: untyped, any name is taken), an expression that does not
// compile, two outputs whose tables would be one variable.
func TestCompile_InverseMistakesAreEachReported(t *testing.T) {
	compileUntyped := func(yaml string) error {
		cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		_, err = Compile(0, cfg.Mappings[0])
		return err
	}
	errText := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		return err.Error()
	}
	ignoreNope := strings.Replace(splitMapping("row.status"), "ignore: [note]", "ignore: [note, nope]", 1)
	badExpr := strings.Replace(splitMapping("row.status"), "status: orders.state\n", "status: orders.state +\n", 1)
	sameVar := strings.Replace(splitMapping("row.status"), "billing.payments", "billing.orders", 1)
	sameVar = strings.Replace(sameVar, `'has(payments.kind) ? payments.kind : ""'`, `orders.kind`, 1)
	_, typedIgnore := compileTypedYAML(t, ignoreNope)
	_, typedBad := compileTypedYAML(t, badExpr)
	got := map[string]string{
		"ignore, typed":     errText(typedIgnore),
		"ignore, untyped":   errText(compileUntyped(ignoreNope)),
		"valid, untyped":    errText(compileUntyped(splitMapping("row.status"))),
		"expression, typed": errText(typedBad),
		"same variable":     errText(compileUntyped(sameVar)),
	}
	want := map[string]string{
		"ignore, typed":   `tandem.yaml:9:11: mappings[0].inverse.ignore: shop.orders has no column "nope"`,
		"ignore, untyped": "<nil>",
		"valid, untyped":  "<nil>",
		"expression, typed": "tandem.yaml:27:31: mappings[0].inverse.columns.status: Syntax error: mismatched input '<EOF>' expecting " +
			"{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
		"same variable": "tandem.yaml:9:11: mappings[0].inverse: to[0] (public.orders) and to[1] (billing.orders) would both be the variable orders",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
