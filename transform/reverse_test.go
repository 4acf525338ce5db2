package transform

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// reverseYAML is the shop's split of old orders, whose rows carry their
// payment, into new orders and payments (only for orders with a payment
// method), with the inverse that joins them back and each merchant a
// cohort.
const reverseYAML = `source:
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
          merchant_id: row.merchant_id
          total_cents: int(double(row.total) * 100.0 + 0.5)
      - table: public.payments
        key: [order_id]
        when: row.payment_method != ""
        columns:
          order_id: row.id
          merchant_id: row.merchant_id
          kind: row.payment_method
    inverse:
      columns:
        id: orders.id
        merchant_id: orders.merchant_id
        total: double(orders.total_cents) / 100.0
        payment_method: '"kind" in payments ? payments.kind : ""'
`

// newRows is a fake new schema: the current rows of each table by the
// text of their key.
type newRows map[string]map[string]map[string]any

// keyOf is the text a newRows table holds a row of key under.
func keyOf(key map[string]any) string {
	cols := make([]string, 0, len(key))
	for c := range key {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return change.KeyText(cols, key)
}

func (n newRows) current(_ context.Context, table string, key map[string]any) (map[string]any, bool, error) {
	row, ok := n[table][keyOf(key)]
	return row, ok, nil
}

func newOrder(id, merchant, cents int64) map[string]any {
	return map[string]any{"id": id, "merchant_id": merchant, "total_cents": cents}
}

func newPayment(id, merchant int64, kind string) map[string]any {
	return map[string]any{"order_id": id, "merchant_id": merchant, "kind": kind}
}

// db is a new schema holding orders and payments.
func db(orders []map[string]any, payments []map[string]any) newRows {
	n := newRows{"public.orders": {}, "public.payments": {}}
	for _, o := range orders {
		n["public.orders"][keyOf(map[string]any{"id": o["id"]})] = o
	}
	for _, p := range payments {
		n["public.payments"][keyOf(map[string]any{"order_id": p["order_id"]})] = p
	}
	return n
}

func compileReverse(t *testing.T, yaml string) *Reverse {
	t.Helper()
	r, err := NewReverse(compileMapping(t, yaml), []string{"id"})
	if err != nil {
		t.Fatalf("NewReverse: %v", err)
	}
	return r
}

func TestReverse_Tables(t *testing.T) {
	r := compileReverse(t, reverseYAML)
	if diff := cmp.Diff([]string{"public.orders", "public.payments"}, r.Tables()); diff != "" {
		t.Errorf("Tables (-want +got):\n%s", diff)
	}
}

func TestReverse_WritesRebuildTheOldRowFromTheCurrentRows(t *testing.T) {
	r := compileReverse(t, reverseYAML)
	upsert := func(id, merchant int64, total float64, method, cohort string) change.Write {
		return change.Write{Table: "shop.orders", Op: change.WriteUpsert, Key: []string{"id"},
			Row: map[string]any{"id": id, "merchant_id": merchant, "total": total, "payment_method": method}, Cohort: cohort}
	}
	del := func(id int64, cohort string) change.Write {
		return change.Write{Table: "shop.orders", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": id}, Cohort: cohort}
	}
	tests := []struct {
		name  string
		now   newRows
		table string
		ev    change.Event
		want  []change.Write
	}{{
		name:  "insert of the primary joins the secondary's current row",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, []map[string]any{newPayment(1, 7, "card")}),
		table: "public.orders",
		ev:    change.Event{Op: change.OpCreate, After: newOrder(1, 7, 1250)},
		want:  []change.Write{upsert(1, 7, 12.5, "card", "7")},
	}, {
		name:  "insert of the primary without a secondary row",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, nil),
		table: "public.orders",
		ev:    change.Event{Op: change.OpCreate, After: newOrder(1, 7, 1250)},
		want:  []change.Write{upsert(1, 7, 12.5, "", "7")},
	}, {
		name:  "update writes the current rows, not the event's",
		now:   db([]map[string]any{newOrder(1, 7, 2000)}, []map[string]any{newPayment(1, 7, "card")}),
		table: "public.orders",
		ev:    change.Event{Op: change.OpUpdate, Before: newOrder(1, 7, 1250), After: newOrder(1, 7, 1500)},
		want:  []change.Write{upsert(1, 7, 20, "card", "7")},
	}, {
		name:  "update moving the row to another merchant has the new cohort",
		now:   db([]map[string]any{newOrder(1, 8, 1250)}, nil),
		table: "public.orders",
		ev:    change.Event{Op: change.OpUpdate, Before: newOrder(1, 7, 1250), After: newOrder(1, 8, 1250)},
		want:  []change.Write{upsert(1, 8, 12.5, "", "8")},
	}, {
		name:  "delete of the primary deletes the old row, with the deleted row's cohort",
		now:   db(nil, []map[string]any{newPayment(1, 7, "card")}),
		table: "public.orders",
		ev:    change.Event{Op: change.OpDelete, Before: newOrder(1, 7, 1250)},
		want:  []change.Write{del(1, "7")},
	}, {
		name:  "a stale delete of the primary whose row is back rebuilds it",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, nil),
		table: "public.orders",
		ev:    change.Event{Op: change.OpDelete, Before: newOrder(1, 7, 900)},
		want:  []change.Write{upsert(1, 7, 12.5, "", "7")},
	}, {
		name:  "insert of the secondary",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, []map[string]any{newPayment(1, 7, "konbini")}),
		table: "public.payments",
		ev:    change.Event{Op: change.OpCreate, After: newPayment(1, 7, "konbini")},
		want:  []change.Write{upsert(1, 7, 12.5, "konbini", "7")},
	}, {
		name:  "update of the secondary",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, []map[string]any{newPayment(1, 7, "cash")}),
		table: "public.payments",
		ev:    change.Event{Op: change.OpUpdate, After: newPayment(1, 7, "cash")},
		want:  []change.Write{upsert(1, 7, 12.5, "cash", "7")},
	}, {
		name:  "delete of the secondary rebuilds the old row without it, never deletes it",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, nil),
		table: "public.payments",
		ev:    change.Event{Op: change.OpDelete, Before: newPayment(1, 7, "card")},
		want:  []change.Write{upsert(1, 7, 12.5, "", "7")},
	}, {
		name:  "delete of the secondary after the primary's deletes the old row",
		now:   db(nil, nil),
		table: "public.payments",
		ev:    change.Event{Op: change.OpDelete, Before: newPayment(1, 7, "card")},
		want:  []change.Write{del(1, "7")},
	}, {
		name:  "insert of the secondary before the primary's: no old row yet",
		now:   db(nil, []map[string]any{newPayment(1, 7, "card")}),
		table: "public.payments",
		ev:    change.Event{Op: change.OpCreate, After: newPayment(1, 7, "card")},
		want:  []change.Write{del(1, "7")},
	}, {
		name:  "key move of the primary deletes the old key's row and writes the new one",
		now:   db([]map[string]any{newOrder(2, 7, 1250)}, []map[string]any{newPayment(1, 7, "card")}),
		table: "public.orders",
		ev:    change.Event{Op: change.OpUpdate, Before: newOrder(1, 7, 1250), After: newOrder(2, 7, 1250)},
		want:  []change.Write{del(1, "7"), upsert(2, 7, 12.5, "", "7")},
	}, {
		name:  "key move of the secondary rebuilds both old rows",
		now:   db([]map[string]any{newOrder(1, 7, 1250), newOrder(2, 7, 300)}, []map[string]any{newPayment(2, 7, "card")}),
		table: "public.payments",
		ev:    change.Event{Op: change.OpUpdate, Before: newPayment(1, 7, "card"), After: newPayment(2, 7, "card")},
		want:  []change.Write{upsert(1, 7, 12.5, "", "7"), upsert(2, 7, 3, "card", "7")},
	}, {
		name:  "a backfilled row",
		now:   db([]map[string]any{newOrder(1, 7, 1250)}, nil),
		table: "public.orders",
		ev:    change.Event{Op: change.OpRead, After: newOrder(1, 7, 1250)},
		want:  []change.Write{upsert(1, 7, 12.5, "", "7")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Writes(t.Context(), tt.table, &tt.ev, tt.now.current)
			if err != nil {
				t.Fatalf("Writes: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Writes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReverse_WithoutACohortWritesTheDefaultCohort(t *testing.T) {
	r := compileReverse(t, strings.Replace(reverseYAML, "    cohort: row.merchant_id\n", "", 1))
	now := db([]map[string]any{newOrder(1, 7, 1250)}, nil)
	var got []change.Write
	for _, ev := range []change.Event{
		{Op: change.OpCreate, After: newOrder(1, 7, 1250)},
		{Op: change.OpDelete, Before: map[string]any{"id": int64(2)}},
	} {
		ws, err := r.Writes(t.Context(), "public.orders", &ev, now.current)
		if err != nil {
			t.Fatalf("Writes: %v", err)
		}
		got = append(got, ws...)
	}
	want := []change.Write{
		{Table: "shop.orders", Op: change.WriteUpsert, Key: []string{"id"},
			Row: map[string]any{"id": int64(1), "merchant_id": int64(7), "total": 12.5, "payment_method": ""}, Cohort: config.DefaultCohort},
		{Table: "shop.orders", Op: change.WriteDelete, Key: []string{"id"}, Row: map[string]any{"id": int64(2)}, Cohort: config.DefaultCohort},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Writes (-want +got):\n%s", diff)
	}
}

func TestReverse_WritesErrors(t *testing.T) {
	r := compileReverse(t, reverseYAML)
	now := db(nil, nil)
	broken := func(context.Context, string, map[string]any) (map[string]any, bool, error) {
		return nil, false, errors.New("connection refused")
	}
	tests := []struct {
		name    string
		table   string
		ev      change.Event
		current CurrentRow
		want    string
	}{{
		name:    "key-only delete: no cohort",
		table:   "public.orders",
		ev:      change.Event{Op: change.OpDelete, Before: map[string]any{"id": int64(1)}},
		current: now.current,
		want:    "mapping shop.orders: the before-image of the public.orders row has no cohort column merchant_id: with cutover the new schema's tables need their full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
	}, {
		name:    "before-image without the key",
		table:   "public.payments",
		ev:      change.Event{Op: change.OpUpdate, Before: map[string]any{"kind": "card"}, After: newPayment(1, 7, "card")},
		current: now.current,
		want:    "mapping shop.orders: the before-image of the public.payments row has no column order_id (the old row's key column id): with cutover the new schema's tables need their full before-image (REPLICA IDENTITY FULL on PostgreSQL, binlog_row_image=FULL on MySQL)",
	}, {
		name:    "not an output",
		table:   "public.refunds",
		ev:      change.Event{Op: change.OpCreate, After: map[string]any{"id": int64(1)}},
		current: now.current,
		want:    "mapping shop.orders: a change of public.refunds, which is not one of its output tables (public.orders, public.payments)",
	}, {
		name:    "truncate",
		table:   "public.orders",
		ev:      change.Event{Op: change.OpTruncate},
		current: now.current,
		want:    "mapping shop.orders: TRUNCATE of public.orders is not applied to the old schema's shop.orders: delete its rows yourself if that is what you want",
	}, {
		name:    "the new schema cannot be read",
		table:   "public.orders",
		ev:      change.Event{Op: change.OpCreate, After: newOrder(1, 7, 1250)},
		current: broken,
		want:    `mapping shop.orders: read the current row of public.orders ["1"]: connection refused`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Writes(t.Context(), tt.table, &tt.ev, tt.current)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Writes = %v, %v\nwant the error %s", got, err, tt.want)
			}
		})
	}
}

// TestReverse_ReadsListsTheRowsWritesReads checks Reads against what
// Writes asks its CurrentRow for, the same keys in the same order, for
// each kind of change and whatever the new rows are (Writes reads every
// output's row whether or not it finds the primary's).
func TestReverse_ReadsListsTheRowsWritesReads(t *testing.T) {
	r := compileReverse(t, reverseYAML)
	orders := func(id int64) KeyRead {
		return KeyRead{Table: "public.orders", Key: map[string]any{"id": id}}
	}
	payments := func(id int64) KeyRead {
		return KeyRead{Table: "public.payments", Key: map[string]any{"order_id": id}}
	}
	tests := []struct {
		name  string
		table string
		ev    change.Event
		want  []KeyRead
	}{
		{"insert of the primary", "public.orders", change.Event{Op: change.OpCreate, After: newOrder(1, 7, 1250)},
			[]KeyRead{orders(1), payments(1)}},
		{"insert of the secondary", "public.payments", change.Event{Op: change.OpCreate, After: newPayment(3, 7, "card")},
			[]KeyRead{orders(3), payments(3)}},
		{"backfilled row", "public.orders", change.Event{Op: change.OpRead, After: newOrder(1, 7, 1250)},
			[]KeyRead{orders(1), payments(1)}},
		{"update in place", "public.orders", change.Event{Op: change.OpUpdate, Before: newOrder(1, 7, 1250), After: newOrder(1, 8, 900)},
			[]KeyRead{orders(1), payments(1)}},
		{"update without a before-image", "public.payments", change.Event{Op: change.OpUpdate, After: newPayment(1, 7, "cash")},
			[]KeyRead{orders(1), payments(1)}},
		{"key move of the primary reads the key it left first", "public.orders",
			change.Event{Op: change.OpUpdate, Before: newOrder(1, 7, 1250), After: newOrder(2, 7, 1250)},
			[]KeyRead{orders(1), payments(1), orders(2), payments(2)}},
		{"key move of the secondary", "public.payments",
			change.Event{Op: change.OpUpdate, Before: newPayment(5, 7, "card"), After: newPayment(4, 7, "card")},
			[]KeyRead{orders(5), payments(5), orders(4), payments(4)}},
		{"delete reads by the before-image", "public.payments", change.Event{Op: change.OpDelete, Before: newPayment(6, 7, "card")},
			[]KeyRead{orders(6), payments(6)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Reads(tt.table, &tt.ev)
			if err != nil {
				t.Fatalf("Reads: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Reads (-want +got):\n%s", diff)
			}
			// Whatever Writes finds, it asks for exactly these rows.
			for _, now := range []newRows{
				db(nil, nil),
				db([]map[string]any{newOrder(1, 7, 1), newOrder(2, 7, 1), newOrder(3, 7, 1), newOrder(4, 7, 1), newOrder(5, 7, 1), newOrder(6, 7, 1)},
					[]map[string]any{newPayment(1, 7, "x"), newPayment(2, 7, "x"), newPayment(3, 7, "x"), newPayment(4, 7, "x"), newPayment(5, 7, "x"), newPayment(6, 7, "x")}),
			} {
				var asked []KeyRead
				record := func(ctx context.Context, table string, key map[string]any) (map[string]any, bool, error) {
					asked = append(asked, KeyRead{Table: table, Key: key})
					return now.current(ctx, table, key)
				}
				if _, err := r.Writes(t.Context(), tt.table, &tt.ev, record); err != nil {
					t.Fatalf("Writes: %v", err)
				}
				if diff := cmp.Diff(asked, got); diff != "" {
					t.Errorf("Reads, beside what Writes asked its CurrentRow for (-asked +listed):\n%s", diff)
				}
			}
		})
	}
}

// TestReverse_ReadsRefusesWhatWritesRefuses: a change Writes cannot
// rebuild from is an error of Reads too, the same error, so a caller
// reading ahead leaves it to Writes.
func TestReverse_ReadsRefusesWhatWritesRefuses(t *testing.T) {
	r := compileReverse(t, reverseYAML)
	for _, tt := range []struct {
		table string
		ev    change.Event
	}{
		{"public.refunds", change.Event{Op: change.OpCreate, After: map[string]any{"id": int64(1)}}},
		{"public.orders", change.Event{Op: change.OpTruncate}},
		{"public.orders", change.Event{Op: change.OpCreate}},
		{"public.payments", change.Event{Op: change.OpUpdate, Before: map[string]any{"kind": "card"}, After: newPayment(1, 7, "card")}},
		{"public.payments", change.Event{Op: change.OpCreate, After: map[string]any{"kind": "card"}}},
	} {
		_, werr := r.Writes(t.Context(), tt.table, &tt.ev, db(nil, nil).current)
		got, err := r.Reads(tt.table, &tt.ev)
		if werr == nil || err == nil || err.Error() != werr.Error() {
			t.Errorf("Reads(%s, %+v) = %v, %v; want Writes' error %v", tt.table, tt.ev, got, err, werr)
		}
	}
}

func TestNewReverse_RefusesWhatCannotLeadBackToTheOldRow(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string
		sourceKey []string
		want      string
	}{{
		name:      "no inverse",
		from:      reverseYAML[strings.Index(reverseYAML, "    inverse:"):],
		to:        "",
		sourceKey: []string{"id"},
		want:      "mapping shop.orders has no inverse: the reverse stream rebuilds the old row of shop.orders through it; add inverse.columns computing each of its columns from the new rows",
	}, {
		name:      "no source key",
		sourceKey: nil,
		want:      "mapping shop.orders: source table shop.orders has no key: the reverse stream needs it to find the old row",
	}, {
		name:      "an output keyed by another column",
		from:      "        key: [order_id]\n",
		to:        "        key: [kind]\n",
		sourceKey: []string{"id"},
		want:      "tandem.yaml:18:16: mapping shop.orders: key column kind of public.payments is row.payment_method, not a column of the source key (id) copied as it is: the reverse stream finds the old row by it; make it row.<key column>, or give public.payments a key that is",
	}, {
		name:      "an output key computed from the source key",
		from:      "          order_id: row.id\n",
		to:        "          order_id: int(row.id)\n",
		sourceKey: []string{"id"},
		want: "tandem.yaml:18:16: mapping shop.orders: key column order_id of public.payments is int(row.id), not a column of the source key (id) copied as it is: the reverse stream finds the old row by it; make it row.<key column>, or give public.payments a key that is\n" +
			"tandem.yaml:18:16: mapping shop.orders: public.payments does not copy source key column id as it is, so a change of its rows does not tell which old row it is of; add a column such as id: row.id to public.payments",
	}, {
		name:      "a source key column an output does not copy",
		sourceKey: []string{"id", "region"},
		want: "tandem.yaml:12:16: mapping shop.orders: public.orders does not copy source key column region as it is, so a change of its rows does not tell which old row it is of; add a column such as region: row.region to public.orders\n" +
			"tandem.yaml:18:16: mapping shop.orders: public.payments does not copy source key column region as it is, so a change of its rows does not tell which old row it is of; add a column such as region: row.region to public.payments",
	}, {
		name:      "an output without a cohort column",
		from:      "          merchant_id: row.merchant_id\n          kind:",
		to:        "          kind:",
		sourceKey: []string{"id"},
		want:      "tandem.yaml:18:16: mapping shop.orders: table public.payments has no cohort column: none of its columns is row.merchant_id as it is; add to[].cohort naming the column of public.payments that holds the row's cohort, or a column merchant_id: row.merchant_id",
	}, {
		name:      "an inverse that does not give the cohort back",
		from:      "        merchant_id: orders.merchant_id\n",
		to:        "",
		sourceKey: []string{"id"},
		want:      "mapping shop.orders: the inverse does not give back the cohort column merchant_id, so the old rows the reverse stream writes would have no cohort; add inverse.columns.merchant_id",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := reverseYAML
			if tt.from != "" {
				if !strings.Contains(yaml, tt.from) {
					t.Fatalf("the config has no %q", tt.from)
				}
				yaml = strings.Replace(yaml, tt.from, tt.to, 1)
			}
			r, err := NewReverse(compileMapping(t, yaml), tt.sourceKey)
			if err == nil || err.Error() != tt.want {
				t.Errorf("NewReverse = %v, %v\nwant the error\n%s", r, err, tt.want)
			}
		})
	}
}
