package reconcile

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/transform"
)

// dlqTarget is a fakeTarget that stores dead letters.
type dlqTarget struct {
	*fakeTarget
	dls []sink.StoredDeadLetter
}

func (d *dlqTarget) DeadLetters(_ context.Context, mapping string, _ int) ([]sink.StoredDeadLetter, error) {
	var out []sink.StoredDeadLetter
	for _, dl := range d.dls {
		if dl.Mapping == mapping {
			out = append(out, dl)
		}
	}
	return out, nil
}

// deadLetter is the dead letter of an insert of row into shop.orders.
func deadLetter(t *testing.T, mapping string, row change.Row, types map[string]change.Type) sink.StoredDeadLetter {
	t.Helper()
	ev := &change.Event{Op: change.OpCreate, Table: change.Table{Schema: "shop", Name: "orders"}, Key: []string{"id"},
		Types: types, Columns: []string{"id", "status", "note"}, After: row}
	enc := &change.Encoder{Now: time.Now}
	key, err := enc.Key(ev)
	if err != nil {
		t.Fatal(err)
	}
	value, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	return sink.StoredDeadLetter{DeadLetter: sink.DeadLetter{Mapping: mapping, Reason: "transform", Key: key, Value: value}}
}

// failingMapping fails on rows whose status is "bad": row.nope is no column.
const failingMapping = `  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          status: 'row.status == "bad" ? row.nope : row.status'
`

func TestSweep_RowsTheMappingFailsOnAreUnmappedDriftWithTheirErrorAndDeadLetter(t *testing.T) {
	for _, keyType := range []change.Type{change.TypeInt, change.TypeDecimal} {
		t.Run("walked "+strconv.FormatBool(keyType == change.TypeInt), func(t *testing.T) {
			m := compileMapping(t, failingMapping)
			src := &fakeSource{rows: map[int64]change.Row{}, keyType: keyType}
			tgt := &dlqTarget{fakeTarget: &fakeTarget{types: map[string]string{"id": "bigint", "status": "text"},
				tables: map[string]map[int64]map[string]any{"public.orders": {}}}}
			for id := int64(1); id <= 10; id++ {
				src.rows[id] = change.Row{"id": id, "status": "paid", "note": ""}
				tgt.tables["public.orders"][id] = map[string]any{"id": id, "status": "paid"}
			}
			// Rows 3 and 6 cannot be mapped, so the target lacks them; row
			// 3's change is a dead letter, row 6's was dropped (or it failed
			// in the backfill).
			for _, id := range []int64{3, 6} {
				src.rows[id]["status"] = "bad"
				delete(tgt.tables["public.orders"], id)
			}
			src3, _ := src.Describe(context.Background(), m.From)
			tgt.dls = []sink.StoredDeadLetter{deadLetter(t, "shop.orders", src.rows[3], src3.Types)}

			r := New(Config{ChunkRows: 4, Settle: time.Millisecond}, src, tgt, []*transform.Mapping{m}, NewMetrics(prometheus.NewRegistry()), nil)
			rep, err := r.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			yes, no := true, false
			errText := `mapping shop.orders: to[0].columns.status (row.status == "bad" ? row.nope : row.status): no such key: "nope"`
			wantDrift := []Drift{
				{Kind: KindUnmapped, Table: "shop.orders", Key: map[string]any{"id": int64(3)}, SourceKey: change.Row{"id": int64(3)}, Error: errText, DeadLetter: &yes},
				{Kind: KindUnmapped, Table: "shop.orders", Key: map[string]any{"id": int64(6)}, SourceKey: change.Row{"id": int64(6)}, Error: errText, DeadLetter: &no},
			}
			want := MappingReport{Mapping: "shop.orders", Direction: Forward, Unmapped: 2, Samples: wantDrift, Drifted: wantDrift}
			if diff := gocmp.Diff(want, rep.Mappings[0], gocmp.FilterPath(func(p gocmp.Path) bool { return p.Last().String() == ".Checked" }, gocmp.Ignore())); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if rep.Drift() != 2 {
				t.Errorf("drift %d, want 2", rep.Drift())
			}
			if v := testutil.ToFloat64(r.metrics.Drift.WithLabelValues("shop.orders", string(KindUnmapped))); v != 2 {
				t.Errorf("tandem_drift_rows{kind=unmapped} = %v, want 2", v)
			}
			got, err := r.Verify(context.Background(), "shop.orders", []change.Row{{"id": int64(3)}, {"id": int64(4)}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(wantDrift[:1], got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

// rulesOf compiles the rules of the one mapping of yaml, by mapping name.
func rulesOf(t *testing.T, yaml string) map[string][]*transform.Rule {
	t.Helper()
	cfg, err := config.Parse("tandem.yaml", []byte(ordersSource+yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := transform.CompileRules(0, cfg.Mappings[0])
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]*transform.Rule{cfg.Mappings[0].Name: rules}
}

// ruleMapping is splitMapping with a rule of each kind.
const ruleMapping = splitMapping + `    rules:
      - { name: any_note, ignore_column: public.notes.note }
      - { name: paid_ish, column: public.orders.status, equal: 'source == "paid" && target in ["paid", "settled"]' }
      - { name: drafts, ignore_rows: 'row.status == "draft"' }
`

func TestSweepAndVerify_RulesAbsorbKnownDifferencesAndCountThem(t *testing.T) {
	for _, keyType := range []change.Type{change.TypeInt, change.TypeDecimal} {
		t.Run("walked "+strconv.FormatBool(keyType == change.TypeInt), func(t *testing.T) {
			src, tgt, _ := newFixture(t, 10)
			src.keyType = keyType
			m := compileMapping(t, ruleMapping)
			tgt.tables["public.notes"][2]["note"] = "changed"                             // any_note
			tgt.tables["public.notes"][4]["note"] = "other"                               // any_note
			tgt.tables["public.orders"][1]["status"] = "settled"                          // paid_ish
			tgt.tables["public.orders"][3]["status"] = "refunded"                         // drift: paid_ish does not hold
			src.rows[5]["status"] = "draft"                                               // drafts: missing
			delete(tgt.tables["public.orders"], 5)                                        //
			src.rows[7]["status"] = "draft"                                               // drafts: mismatch
			tgt.tables["public.notes"][99] = map[string]any{"id": int64(99), "note": "x"} // drift: no rule for extra rows
			r := New(Config{Settle: time.Millisecond, Rules: rulesOf(t, ruleMapping)}, src, tgt, []*transform.Mapping{m}, NewMetrics(prometheus.NewRegistry()), nil)
			rep, err := r.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := rep.Mappings[0]
			want := []driftSummary{{KindExtra, "public.notes", "map[id:99]"}, {KindMismatch, "public.orders", "map[id:3]"}}
			if diff := gocmp.Diff(want, summarize(got.Drifted)); diff != "" {
				t.Errorf("drift (-want +got):\n%s", diff)
			}
			wantRules := map[string]int{"any_note": 2, "paid_ish": 1, "drafts": 2}
			if diff := gocmp.Diff(wantRules, got.Rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			for rule, n := range wantRules {
				if v := testutil.ToFloat64(r.metrics.RuleRows.WithLabelValues("shop.orders", rule)); v != float64(n) {
					t.Errorf("tandem_reconcile_rule_rows{rule=%s} = %v, want %d", rule, v, n)
				}
			}
			// Re-verification applies the same rules.
			drift, err := r.Verify(context.Background(), "shop.orders", []change.Row{{"id": int64(1)}, {"id": int64(2)}, {"id": int64(3)}, {"id": int64(5)}, {"id": int64(7)}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(want[1:], summarize(drift)); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
		})
	}
}

// roundTripMapping copies shop.orders, trimming status, and gives it back
// with an empty note as NULL: every row whose note is empty does not come
// back equal, unless a rule says so.
const roundTripMapping = `  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns:
          id: row.id
          status: trim(row.status)
          note: row.note
    inverse:
      columns:
        id: orders.id
        status: orders.status
        note: 'orders.note == "" ? null : orders.note'
`

func TestSweep_TheRoundTripHonoursTolerancesAndRules(t *testing.T) {
	tests := []struct {
		name, extra string
		roundTrip   int
		rules       map[string]int
	}{
		{name: "none", roundTrip: 6},
		{name: "tolerance of the column the inverse reads", extra: "    tolerate_columns: {public.orders.status: [trim_space]}\n", roundTrip: 5},
		{name: "ignore_column", extra: "    rules: [{ name: n, ignore_column: public.orders.note }]\n", roundTrip: 1, rules: map[string]int{"n": 5}},
		{name: "equal", extra: "    rules: [{ name: n, column: public.orders.note, equal: 'source == target || source == \"\" && target == null' }]\n",
			roundTrip: 1, rules: map[string]int{"n": 5}},
		{name: "ignore_rows", extra: "    rules: [{ name: n, ignore_rows: 'row.note == \"\"' }]\n", roundTrip: 1, rules: map[string]int{"n": 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := roundTripMapping + tc.extra
			m := compileMapping(t, yaml)
			src := &fakeSource{rows: map[int64]change.Row{}}
			tgt := &fakeTarget{types: map[string]string{"id": "bigint", "status": "text", "note": "text"},
				tables: map[string]map[int64]map[string]any{"public.orders": {}}}
			for id := int64(1); id <= 10; id++ {
				src.rows[id] = change.Row{"id": id, "status": "paid", "note": strings.Repeat("n", int(id%2))}
			}
			src.rows[1]["status"] = "paid " // does not come back with its space
			for id, row := range src.rows {
				mapped, err := m.Apply(context.Background(), row)
				if err != nil {
					t.Fatal(err)
				}
				tgt.tables["public.orders"][id] = maps.Clone(mapped[0].Columns)
			}
			cfg, err := config.Parse("tandem.yaml", []byte(ordersSource+yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			var colTol map[string]map[string][]config.Tolerance
			for _, ct := range cfg.Mappings[0].TolerateColumns {
				colTol = map[string]map[string][]config.Tolerance{"shop.orders": {ct.Column: ct.Rules}}
			}
			r := New(Config{Settle: time.Millisecond, Rules: rulesOf(t, yaml), ColumnTolerate: colTol}, src, tgt, []*transform.Mapping{m}, nil, nil)
			rep, err := r.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := rep.Mappings[0]
			if got.RoundTrip != tc.roundTrip || got.Drift() != tc.roundTrip {
				t.Errorf("round trip %d, drift %d (%v); want %d", got.RoundTrip, got.Drift(), summarize(got.Samples), tc.roundTrip)
			}
			if diff := gocmp.Diff(tc.rules, got.Rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
		})
	}
}
