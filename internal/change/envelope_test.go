package change

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEnvelope_RoundTripKeepsTypes(t *testing.T) {
	commit := time.UnixMilli(1_700_000_000_123)
	types := map[string]Type{"id": TypeInt, "total": TypeFloat, "paid": TypeBool, "blob": TypeBytes,
		"note": TypeString, "amount": TypeDecimal, "at": TypeTime, "doc": TypeJSON}
	tests := []struct {
		name string
		ev   Event
	}{
		{"insert", Event{Op: OpCreate, Table: Table{"shop", "orders"}, Key: []string{"id"}, Types: types,
			After: Row{"id": int64(math.MaxInt64), "total": 3.0, "paid": true, "blob": []byte{0, 1, 255},
				"note": "héllo 🍣 寿司", "amount": "12345678901234567890.000000000001", "at": "2026-11-23 10:00:00.123456+00",
				"doc": `{"a": [1, 2]}`},
			Pos: TextPosition("0/16B3748"), TxID: 7, Commit: commit}},
		{"update with nulls and nan", Event{Op: OpUpdate, Table: Table{"shop", "orders"}, Key: []string{"id"}, Types: types,
			Before: Row{"id": int64(-1)},
			After:  Row{"id": int64(-1), "total": math.Inf(-1), "paid": nil, "blob": nil, "note": ""},
			Pos:    TextPosition("0/1"), Commit: commit}},
		{"delete composite key", Event{Op: OpDelete, Table: Table{"shop", "lines"}, Key: []string{"order_id", "line"},
			Types: map[string]Type{"order_id": TypeInt, "line": TypeInt}, Before: Row{"order_id": int64(1), "line": int64(2)},
			Pos: TextPosition("0/2"), Commit: commit}},
	}
	enc := &Encoder{Version: "test", Connector: "postgresql", Name: "tandem", DB: "shop"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := enc.Key(&tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			v, err := enc.Value(&tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(k, v)
			if err != nil {
				t.Fatalf("decode %s: %v", v, err)
			}
			if diff := cmp.Diff(&tc.ev, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncoder_KeyIsStableAndOrdered(t *testing.T) {
	enc := &Encoder{}
	ev := &Event{Key: []string{"b", "a"}, After: Row{"a": int64(1), "b": "x", "c": 3.5}}
	k, err := enc.Key(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(k), `{"b":"x","a":1}`; got != want {
		t.Errorf("key = %s, want %s", got, want)
	}
}

func TestDecode_MalformedIsAnError(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{`[1]`, `{}`},
		{`{"id":1}`, `not json`},
		{`{"id":1}`, `{"op":"x"}`},
	} {
		if _, err := Decode([]byte(tc.key), []byte(tc.value)); err == nil {
			t.Errorf("Decode(%s, %s): no error", tc.key, tc.value)
		}
	}
}

// FuzzDecode: no input may panic the decoder, and whatever it accepts must
// encode again and decode to the same event.
func FuzzDecode(f *testing.F) {
	enc := &Encoder{Version: "fuzz", Connector: "postgresql", Name: "tandem", DB: "shop", Now: func() time.Time { return time.UnixMilli(1) }}
	ev := benchEvent()
	k, _ := enc.Key(ev)
	v, _ := enc.Value(ev)
	f.Add(k, v)
	f.Add([]byte(`{"id":1}`), []byte(`{"before":null,"after":{"x":[1,{"a":"b"}],"y":"\u00e9\\n"},"source":{"types":{"y":"bytes"}},"op":"u"}`))
	f.Add([]byte(`{}`), []byte(`{"op":"d","before":{"f":"NaN"},"source":{"types":{"f":"float64"}}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		e1, err := Decode(key, value)
		if err != nil {
			return
		}
		e1.Key = nil // the key's values live in the rows; only the envelope round-trips
		v2, err := enc.Value(e1)
		if err != nil {
			t.Fatalf("re-encode of an accepted envelope: %v", err)
		}
		e2, err := Decode(nil, v2)
		if err != nil {
			t.Fatalf("decode of a re-encoded envelope %s: %v", v2, err)
		}
		if diff := cmp.Diff(e1, e2, cmpopts.EquateEmpty(), cmpopts.EquateNaNs()); diff != "" {
			t.Errorf("round trip of %s (-first +second):\n%s", value, diff)
		}
	})
}

func TestEncoder_ValueListsColumnsInTableOrder(t *testing.T) {
	enc := &Encoder{Version: "test", Now: func() time.Time { return time.UnixMilli(5) }}
	ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"id"}, Columns: []string{"zeta", "id", "alpha"},
		Types: map[string]Type{"zeta": TypeString, "id": TypeInt, "alpha": TypeString},
		After: Row{"alpha": "a", "id": int64(1), "zeta": "z", "extra": true}, Commit: time.UnixMilli(4)}
	v, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"before":null,"after":{"zeta":"z","id":1,"alpha":"a","extra":true},"source":{"version":"test","connector":"","name":"","ts_ms":4,"snapshot":"false","db":"","sequence":null,"ts_us":4000,"ts_ns":4000000,"schema":"s","table":"t","txId":null,"lsn":null,"xmin":null,"pos":"","types":{"zeta":"string","id":"int64","alpha":"string"}},"transaction":null,"op":"c","ts_ms":5,"ts_us":5000,"ts_ns":5000000}`
	if string(v) != want {
		t.Errorf("Value =\n%s\nwant\n%s", v, want)
	}
}
