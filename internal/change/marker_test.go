package change

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestMarker_DecodesToTheKeyAndTheReasonWithoutTheRow: a marker names the
// change's table, op, position and key, says why, and carries nothing of
// the row beyond its key, in both envelope forms and for both connectors.
func TestMarker_DecodesToTheKeyAndTheReasonWithoutTheRow(t *testing.T) {
	commit := time.UnixMilli(1_700_000_000_123)
	types := map[string]Type{"tenant": TypeString, "id": TypeInt, "amount": TypeDecimal, "body": TypeString}
	sqlTypes := map[string]string{"amount": "numeric(12,2)", "body": "text", "id": "bigint", "tenant": "text"}
	big := strings.Repeat("x", 1<<16)
	const reason = "record of 65,612 bytes exceeds kafka.max_record_bytes 65,536"
	for _, ev := range []Event{
		{Op: OpCreate, After: Row{"tenant": "a", "id": int64(7), "amount": "1.50", "body": big}},
		{Op: OpUpdate, Before: Row{"tenant": "a", "id": int64(7), "amount": "1.50", "body": big}, After: Row{"tenant": "a", "id": int64(7), "amount": "2.50", "body": big}},
		{Op: OpDelete, Before: Row{"tenant": "a", "id": int64(7), "amount": "1.50", "body": big}},
	} {
		ev.Table, ev.Key, ev.Columns = Table{"shop", "docs"}, []string{"tenant", "id"}, []string{"tenant", "id", "amount", "body"}
		ev.Types, ev.SQLTypes, ev.Pos, ev.TxID, ev.Commit = types, sqlTypes, TextPosition("0/16B3748"), 9, commit
		for _, enc := range []*Encoder{
			{Version: "test", Connector: "postgresql", Name: "tandem", DB: "shop"},
			{Version: "test", Connector: "mysql", Name: "tandem", DB: "shop", Schemas: true},
		} {
			t.Run(ev.Op.Name()+"/"+enc.Connector, func(t *testing.T) {
				key, err := enc.Key(&ev)
				if err != nil {
					t.Fatal(err)
				}
				v, err := enc.Marker(&ev, reason)
				if err != nil {
					t.Fatal(err)
				}
				if len(v) > 4096 { // the schema + payload form spends 3 KiB on the schema
					t.Errorf("marker is %d bytes, want a small record: %s", len(v), v)
				}
				got, err := Decode(key, v)
				if err != nil {
					t.Fatalf("decode %s: %v", v, err)
				}
				want := &Event{Op: ev.Op, Table: ev.Table, Key: ev.Key, Before: Row{"tenant": "a", "id": int64(7)},
					Types: map[string]Type{"tenant": TypeString, "id": TypeInt}, SQLTypes: map[string]string{"tenant": "text", "id": "bigint"},
					Pos: ev.Pos, TxID: 9, Commit: commit, Oversize: reason}
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("decoded marker (-want +got):\n%s", diff)
				}
				var env map[string]any
				if err := json.Unmarshal(v, &env); err != nil {
					t.Fatal(err)
				}
				if enc.Schemas {
					env, _ = env["payload"].(map[string]any)
				}
				if env["after"] != nil || env["op"] != ev.Op.String() {
					t.Errorf("marker after, op = %v, %v; want null, %s", env["after"], env["op"], ev.Op)
				}
			})
		}
	}
}

func TestMarker_AChangeIsNoMarker(t *testing.T) {
	enc := &Encoder{Connector: "postgresql"}
	ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"id"}, Types: map[string]Type{"id": TypeInt}, After: Row{"id": int64(1)}}
	v, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(nil, v)
	if err != nil || got.Oversize != "" {
		t.Errorf("Decode of a change: Oversize %q, %v; want none", got.Oversize, err)
	}
	if strings.Contains(string(v), "oversize") {
		t.Errorf("a change's record mentions oversize: %s", v)
	}
}

func TestMarker_NeedsAKeyAndAReason(t *testing.T) {
	enc := &Encoder{Connector: "postgresql"}
	if _, err := enc.Marker(&Event{Op: OpCreate, After: Row{"a": int64(1)}}, "too large"); err == nil {
		t.Error("Marker of a change without key columns: no error")
	}
	if _, err := enc.Marker(&Event{Op: OpCreate, Key: []string{"a"}, After: Row{"a": int64(1)}}, ""); err == nil {
		t.Error("Marker without a reason: no error")
	}
}
