package change

import (
	"testing"
	"time"
)

func benchEvent() *Event {
	return &Event{Op: OpCreate, Table: Table{"bench", "items"}, Key: []string{"id"},
		Types: map[string]Type{"id": TypeInt, "name": TypeString, "qty": TypeInt, "price": TypeDecimal, "updated_at": TypeTime},
		After: Row{"id": int64(123456), "name": "item 123456", "qty": int64(7), "price": "12.34", "updated_at": "2026-11-23 10:00:00.123456+00"},
		Pos:   TextPosition("0/16B3748"), TxID: 1234, Commit: time.Now()}
}

func BenchmarkEncoder_Value(b *testing.B) {
	enc, ev := &Encoder{Version: "bench", Connector: "postgresql", Name: "tandem", DB: "shop"}, benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.Value(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	enc, ev := &Encoder{Version: "bench", Connector: "postgresql", Name: "tandem", DB: "shop"}, benchEvent()
	k, _ := enc.Key(ev)
	v, _ := enc.Value(ev)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(k, v); err != nil {
			b.Fatal(err)
		}
	}
}
