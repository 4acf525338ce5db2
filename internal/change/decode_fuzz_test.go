package change

import (
	"errors"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecode (envelope_test.go) feeds Decode arbitrary bytes and checks that
// what it accepts survives a second encode and decode. The targets here
// check the other two promises of the envelope:
//
//   - FuzzEnvelope_RoundTrip: every event a capturer can emit (values of
//     the Go type of their column's logical type, UTF-8 text) encodes, and
//     decodes back to the same event: nothing is lost between capture and
//     apply.
//   - FuzzEnvelope_ValueTypes: whatever bytes Decode accepts, each value
//     has the Go type source.types gives its column, and whatever it
//     refuses wraps ErrMalformed.
//
// Run one at a time: go test -run '^$' -fuzz '^FuzzEnvelope_RoundTrip$' ./internal/change

// fuzzEncoder is the encoder of every fuzz target here; a fixed clock keeps
// seeds reproducible.
var fuzzEncoder = &Encoder{Version: "fuzz", Connector: "postgresql", Name: "tandem", DB: "shop",
	Now: func() time.Time { return time.UnixMilli(1) }}

// fuzzOps are the ops an event can have; the fuzzer picks one by index.
var fuzzOps = []Op{OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate}

// fuzzEvent builds an event with a column of each logical type and two
// without one, from the fuzzer's values: text goes in every text-like
// column and in a column named col (a string column); bit i of nulls makes
// the i-th column NULL; inOrder sets Columns (table order, which encoders
// follow) instead of leaving it nil.
func fuzzEvent(opIndex uint8, schema, table, col, pos, text string, i int64, f float64, b []byte,
	nulls uint16, txID uint32, commitMs int64, inOrder bool) *Event {
	types := map[string]Type{"id": TypeInt, "total": TypeFloat, "paid": TypeBool, "blob": TypeBytes,
		"amount": TypeDecimal, "at": TypeTime, "doc": TypeJSON, "note": TypeString}
	row := Row{"id": i, "total": f, "paid": i%2 == 0, "blob": b, "amount": text, "at": text, "doc": text,
		"note": text, "extra_text": text, "extra_int": i} // the extras have no type: a foreign producer's
	types[col], row[col] = TypeString, text
	for n, c := range slices.Sorted(maps.Keys(row)) {
		if nulls&(1<<n) != 0 && c != "id" {
			row[c] = nil
		}
	}
	e := &Event{Op: fuzzOps[int(opIndex)%len(fuzzOps)], Table: Table{schema, table}, Key: []string{"id"},
		Types: types, Pos: TextPosition(pos), TxID: txID, Commit: time.UnixMilli(commitMs)}
	if inOrder {
		e.Columns = slices.Sorted(maps.Keys(types))
		slices.Reverse(e.Columns)
	}
	switch e.Op {
	case OpCreate, OpRead:
		e.After = row
	case OpUpdate:
		e.Before, e.After = Row{"id": i - 1}, row
	case OpDelete:
		e.Before = Row{"id": i}
	}
	return e
}

// fuzzSeed is one set of fuzzEvent's arguments.
type fuzzSeed struct {
	op                      uint8
	schema, table, col, pos string
	text                    string
	i                       int64
	f                       float64
	b                       []byte
	nulls                   uint16
	txID                    uint32
	commitMs                int64
	inOrder                 bool
}

// fuzzSeeds are events a capturer emits, and their edges: every op,
// extreme numbers, NaN and infinities, text that needs escaping, NULLs.
var fuzzSeeds = []fuzzSeed{
	{0, "shop", "orders", "status", "0/16B3748", "pending", 42, 12.5, []byte{0, 1, 255}, 0, 7, 1_700_000_000_123, true},
	{1, "shop", "orders", "note", "0/1", "héllo 🍣 寿司 \"q\" \\ \n\t\u2028\x00", math.MaxInt64, math.Inf(-1), nil, 0b1010, 0, -1, false},
	{2, "shop", "lines", "x", "mysql-bin.000003:4", "", math.MinInt64, math.NaN(), []byte{}, 0xffff, math.MaxUint32, 0, true},
	{3, "Shop Old", "order", "select", "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", "12345678901234567890.000000000001", 0, math.Copysign(0, -1), []byte("x"), 0, 1, math.MaxInt64, false},
	{4, "", "", "", "", `{"a": [1, 2]}`, -1, 5e-324, nil, 0, 0, math.MinInt64, true},
	{0, "s", "t", "id", "", "2026-11-23 10:00:00.123456+00", 1, math.MaxFloat64, make([]byte, 300), 0, 2, 5, false},
	{1, "s", "t", "a,b", "", "NaN", 2, math.Inf(1), []byte{0xff, 0xfe}, 1 << 2, 3, 6, true},
}

func FuzzEnvelope_RoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.op, s.schema, s.table, s.col, s.pos, s.text, s.i, s.f, s.b, s.nulls, s.txID, s.commitMs, s.inOrder)
	}
	f.Fuzz(func(t *testing.T, op uint8, schema, table, col, pos, text string, i int64, fl float64, b []byte,
		nulls uint16, txID uint32, commitMs int64, inOrder bool) {
		want := fuzzEvent(op, schema, table, col, pos, text, i, fl, b, nulls, txID, commitMs, inOrder)
		key, err := fuzzEncoder.Key(want)
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
		value, err := fuzzEncoder.Value(want)
		// JSON holds only UTF-8: the encoder refuses other text in a row's
		// values and column names. Where it writes names outside a row (of
		// the table, the position, a column in source.types only) it puts
		// U+FFFD instead, silently; capturers give UTF-8 there.
		if !rowsValidUTF8(want) {
			if err == nil {
				t.Fatalf("Value of a row holding invalid UTF-8 succeeded: %s", value)
			}
			return
		}
		if err != nil {
			t.Fatalf("Value: %v", err)
		}
		for _, name := range []string{schema, table, pos, col} { // one by one: "\xda"+"\x84" is UTF-8
			if !utf8.ValidString(name) {
				return
			}
		}
		got, err := Decode(key, value)
		if err != nil {
			t.Fatalf("Decode of the encoder's envelope %s: %v", value, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.EquateNaNs(),
			cmpopts.IgnoreFields(Event{}, "Columns")); diff != "" {
			t.Errorf("round trip of %s (-want +got):\n%s", value, diff)
		}
	})
}

func FuzzEnvelope_ValueTypes(f *testing.F) {
	for _, s := range fuzzSeeds {
		e := fuzzEvent(s.op, s.schema, s.table, s.col, s.pos, s.text, s.i, s.f, s.b, s.nulls, s.txID, s.commitMs, s.inOrder)
		k, kerr := fuzzEncoder.Key(e)
		v, verr := fuzzEncoder.Value(e)
		if err := errors.Join(kerr, verr); err != nil {
			f.Fatalf("seed %+v: %v", s, err)
		}
		f.Add(k, v)
	}
	for _, v := range []string{
		// foreign producers: no types, numbers of both kinds, nested JSON
		`{"before":null,"after":{"i":1,"f":1.5,"big":1e400,"o":{"a":[1,{"b":null}]},"a":[],"s":"x","t":true},"source":{},"op":"c"}`,
		// the wrong JSON kind for a type; numbers where a type wants none of them
		`{"after":{"i":"1"},"source":{"types":{"i":"int64"}},"op":"c"}`,
		`{"after":{"i":1.0},"source":{"types":{"i":"int64"}},"op":"c"}`,
		`{"after":{"f":"1.5"},"source":{"types":{"f":"float64"}},"op":"c"}`,
		`{"after":{"d":12.50},"source":{"types":{"d":"decimal"}},"op":"c"}`,
		`{"after":{"j":{"a":1},"k":[1]},"source":{"types":{"j":"json","k":"json"}},"op":"c"}`,
		`{"after":{"b":"not base64!"},"source":{"types":{"b":"bytes"}},"op":"c"}`,
		`{"after":{"x":"y"},"source":{"types":{"x":"from a newer producer"}},"op":"c"}`,
		// the same field twice, types after the rows, null where objects go
		`{"op":"u","op":"d","before":{"id":1},"source":{"types":null,"ts_ms":null,"txId":-1},"after":null}`,
		`{"source":{"types":{"a":"int64","a":"string"}},"after":{"a":1},"op":"c"}`,
		`{"after":{"a":1,"a":"x"},"source":{"types":{"a":"int64"}},"op":"r"}`,
		`{"source":{"ts_ms":1e3,"txId":4294967296},"op":"t"}`,
		`{"op":"c","after":{"\u0000\ud800":"\udfff"}}`,
		`[]`, `null`, ``, `{"op":"c"} trailing`,
	} {
		f.Add([]byte(`{"id":1}`), []byte(v))
	}
	f.Add([]byte(nil), []byte(`{"op":"c","after":{}}`))
	f.Add([]byte(`{"a":{"nested":[1]},"b":"x"}`), []byte(`{"op":"c","after":{}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		e, err := Decode(key, value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if _, err := ParseOp(e.Op.String()); err != nil {
			t.Errorf("decoded op: %v", err)
		}
		for what, row := range map[string]Row{"before": e.Before, "after": e.After} {
			for c, v := range row {
				if !hasGoTypeOf(v, e.Types[c]) {
					t.Errorf("%s column %q of type %q holds %T %v", what, c, e.Types[c], v, v)
				}
			}
		}
	})
}

// rowsValidUTF8 reports whether the column names and text values of e's
// rows are UTF-8.
func rowsValidUTF8(e *Event) bool {
	for _, r := range []Row{e.Before, e.After} {
		for c, v := range r {
			if s, ok := v.(string); !utf8.ValidString(c) || ok && !utf8.ValidString(s) {
				return false
			}
		}
	}
	return true
}

// hasGoTypeOf reports whether v is NULL or a value of the Go type Decode
// gives logical type typ (with no type: any scalar, JSON text as a string).
func hasGoTypeOf(v any, typ Type) bool {
	switch v.(type) {
	case nil:
		return true
	case int64:
		return typ == TypeInt || typ == ""
	case float64:
		return typ == TypeFloat || typ == ""
	case bool:
		return typ == TypeBool || typ == ""
	case []byte:
		return typ == TypeBytes
	case string:
		switch typ {
		case TypeInt, TypeFloat, TypeBool, TypeBytes:
			return false
		}
		return true
	}
	return false
}
