package transform

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
)

// clearYAML maps old payment rows into columns of new orders (a merge:
// another mapping owns the rest of each row), refunds that only some
// payments have, and a payment log the mapping owns whole.
const clearYAML = `source:
  kind: postgres
  dsn: postgres://u@h/db
  tables: [shop.payment_infos]
target:
  kind: postgres
  dsn: postgres://u@h/db
mappings:
  - from: shop.payment_infos
    to:
      - table: public.orders
        key: [id]
        on_delete: clear
        columns:
          id: row.order_id
          pay_method: row.method
          paid_at: row.paid_at
      - table: public.refunds
        key: [order_id]
        on_delete: clear
        when: row.refunded
        columns:
          order_id: row.order_id
          refunded: row.refunded
      - table: public.payment_log
        key: [payment_id]
        columns:
          payment_id: row.order_id
          method: row.method
`

func payment(id int64, refunded bool) change.Row {
	return change.Row{"order_id": id, "method": "card", "paid_at": "2026-01-02 03:04:05+00", "refunded": refunded}
}

func TestWrites_ClearOutputsSetTheirColumnsToNullInsteadOfDeleting(t *testing.T) {
	m := compileMapping(t, clearYAML)
	clearOrder := func(id int64) change.Write {
		return change.Write{Table: "public.orders", Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": id, "pay_method": nil, "paid_at": nil}}
	}
	clearRefund := func(id int64) change.Write {
		return change.Write{Table: "public.refunds", Op: change.WriteUpsert, Key: []string{"order_id"}, Row: map[string]any{"order_id": id, "refunded": nil}}
	}
	deleteLog := func(id int64) change.Write {
		return change.Write{Table: "public.payment_log", Op: change.WriteDelete, Key: []string{"payment_id"}, Row: map[string]any{"payment_id": id}}
	}
	writeAll := func(op change.WriteOp, id int64, refunded bool) []change.Write {
		ws := []change.Write{{Table: "public.orders", Op: op, Key: []string{"id"}, Row: map[string]any{"id": id, "pay_method": "card", "paid_at": "2026-01-02 03:04:05+00"}}}
		if refunded {
			ws = append(ws, change.Write{Table: "public.refunds", Op: op, Key: []string{"order_id"}, Row: map[string]any{"order_id": id, "refunded": true}})
		}
		return append(ws, change.Write{Table: "public.payment_log", Op: op, Key: []string{"payment_id"}, Row: map[string]any{"payment_id": id, "method": "card"}})
	}
	tests := []struct {
		name string
		ev   change.Event
		want []change.Write
	}{{
		name: "delete clears, and deletes the output it owns",
		ev:   change.Event{Op: change.OpDelete, Before: payment(7, true)},
		want: []change.Write{clearOrder(7), clearRefund(7), deleteLog(7)},
	}, {
		name: "delete of a row whose when was false clears nothing there",
		ev:   change.Event{Op: change.OpDelete, Before: payment(7, false)},
		want: []change.Write{clearOrder(7), deleteLog(7)},
	}, {
		name: "delete with a key-only before-image clears every output",
		ev:   change.Event{Op: change.OpDelete, Before: change.Row{"order_id": int64(7)}},
		want: []change.Write{clearOrder(7), clearRefund(7), deleteLog(7)},
	}, {
		name: "key change clears the old key and writes the new",
		ev:   change.Event{Op: change.OpUpdate, Before: payment(7, true), After: payment(8, true)},
		want: append([]change.Write{clearOrder(7), clearRefund(7), deleteLog(7)}, writeAll(change.WriteUpsert, 8, true)...),
	}, {
		name: "key change with a key-only before-image (PostgreSQL) clears the old key",
		ev:   change.Event{Op: change.OpUpdate, Before: change.Row{"order_id": int64(7)}, After: payment(8, false)},
		want: append([]change.Write{clearOrder(7), clearRefund(7), deleteLog(7)}, writeAll(change.WriteUpsert, 8, false)...),
	}, {
		name: "when turning false clears once",
		ev:   change.Event{Op: change.OpUpdate, Before: payment(7, true), After: payment(7, false)},
		want: append([]change.Write{clearRefund(7)}, writeAll(change.WriteUpsert, 7, false)...),
	}, {
		name: "when staying false clears nothing",
		ev:   change.Event{Op: change.OpUpdate, Before: payment(7, false), After: payment(7, false)},
		want: writeAll(change.WriteUpsert, 7, false),
	}, {
		name: "when false without a before-image clears nothing",
		ev:   change.Event{Op: change.OpUpdate, After: payment(7, false)},
		want: writeAll(change.WriteUpsert, 7, false),
	}, {
		name: "a backfilled row is copies only",
		ev:   change.Event{Op: change.OpRead, After: payment(7, true)},
		want: writeAll(change.WriteCopy, 7, true),
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

// The clear of a mapping's first output also waits on its `when`: a
// delete of a row that never matched it clears nothing there.
func TestWrites_TheFirstOutputsClearHonoursItsWhen(t *testing.T) {
	yaml := strings.Replace(clearYAML, `      - table: public.orders
        key: [id]
        on_delete: clear
        columns:
          id: row.order_id
          pay_method: row.method
          paid_at: row.paid_at
`, "", 1)
	m := compileMapping(t, yaml)
	deleteLog := change.Write{Table: "public.payment_log", Op: change.WriteDelete, Key: []string{"payment_id"}, Row: map[string]any{"payment_id": int64(7)}}
	clearRefund := change.Write{Table: "public.refunds", Op: change.WriteUpsert, Key: []string{"order_id"}, Row: map[string]any{"order_id": int64(7), "refunded": nil}}
	for refunded, want := range map[bool][]change.Write{false: {deleteLog}, true: {clearRefund, deleteLog}} {
		got, reason, err := Writes(t.Context(), m, &change.Event{Op: change.OpDelete, Before: payment(7, refunded)})
		if err != nil {
			t.Fatalf("Writes: %s: %v", reason, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("delete of a payment refunded=%v: Writes (-want +got):\n%s", refunded, diff)
		}
	}
}

// An update that did not send a column (PostgreSQL's unchanged TOASTed
// value: in the event's types, not in its after-image) writes the row
// without the columns computed from it, so the target keeps their values.
func TestWrites_AnUpdateLeavesOutTheColumnsOfWhatItDidNotSend(t *testing.T) {
	m := compileMapping(t, ordersHead+"          note: row.note\n")
	ev := change.Event{Op: change.OpUpdate, After: change.Row{"id": int64(7)},
		Types: map[string]change.Type{"id": change.TypeInt, "note": change.TypeString}}
	got, reason, err := Writes(t.Context(), m, &ev)
	if err != nil {
		t.Fatalf("Writes: %s: %v", reason, err)
	}
	want := []change.Write{{Table: "public.orders", Op: change.WriteUpsert, Key: []string{"id"}, Row: map[string]any{"id": int64(7)}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Writes (-want +got):\n%s", diff)
	}
}
