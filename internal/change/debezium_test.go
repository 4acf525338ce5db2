package change

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// debeziumValues are source values as tandem's capturers give them, the
// value Debezium's connector writes for each (its documented data type
// mappings: PostgreSQL's and MySQL's "how the connector maps data types",
// time.precision.mode adaptive, decimal.handling.mode string unless said),
// and whether the exact source text must travel beside it.
var debeziumValues = []struct {
	name      string
	connector string
	typ       Type
	sql       string
	dm        DecimalMode
	tm        TimeMode
	src       any
	want      string // the JSON Debezium writes
	exact     bool
}{
	{"pg timestamptz is ZonedTimestamp UTC", "postgresql", TypeTime, "timestamptz", "", "", "2024-03-01 08:20:30.123456+00", `"2024-03-01T08:20:30.123456Z"`, false},
	{"pg timestamptz without fraction", "postgresql", TypeTime, "timestamptz(0)", "", "", "2024-03-01 08:20:30+00", `"2024-03-01T08:20:30Z"`, false},
	{"pg timestamptz infinity has no Debezium form", "postgresql", TypeTime, "timestamptz", "", "", "infinity", `"infinity"`, true},
	{"pg timestamptz BC has no Debezium form", "postgresql", TypeTime, "timestamptz", "", "", "0044-03-15 12:00:00+00 BC", `"0044-03-15 12:00:00+00 BC"`, true},
	{"pg date is days since the epoch", "postgresql", TypeTime, "date", "", "", "2024-03-01", `19783`, false},
	{"pg date before the epoch", "postgresql", TypeTime, "date", "", "", "1969-12-31", `-1`, false},
	{"pg timestamp(3) is Timestamp millis", "postgresql", TypeTime, "timestamp(3)", "", "", "2024-03-01 08:20:30.123", `1709281230123`, false},
	{"pg timestamp is MicroTimestamp", "postgresql", TypeTime, "timestamp", "", "", "2024-03-01 08:20:30.123456", `1709281230123456`, false},
	{"pg timestamp connect mode is millis", "postgresql", TypeTime, "timestamp", "", TimeConnect, "2024-03-01 08:20:30.123456", `1709281230123`, true},
	{"pg time is MicroTime", "postgresql", TypeTime, "time", "", "", "08:20:30.5", `30030500000`, false},
	{"pg time(0) is Time millis", "postgresql", TypeTime, "time(0)", "", "", "08:20:30", `30030000`, false},
	{"pg time(0) adaptive_time_microseconds", "postgresql", TypeTime, "time(0)", "", TimeAdaptiveMicros, "08:20:30", `30030000000`, false},
	{"pg timetz UTC is ZonedTime", "postgresql", TypeTime, "timetz", "", "", "08:20:30.25+00", `"08:20:30.25Z"`, false},
	{"pg timetz with an offset keeps its text", "postgresql", TypeTime, "timetz", "", "", "08:20:30+02", `"08:20:30+02"`, true},
	{"pg numeric string mode", "postgresql", TypeDecimal, "numeric(12,2)", "", "", "1234.50", `"1234.50"`, false},
	{"pg numeric double mode", "postgresql", TypeDecimal, "numeric(12,2)", DecimalDouble, "", "1234.50", `1234.5`, true},
	{"pg numeric precise mode", "postgresql", TypeDecimal, "numeric(12,2)", DecimalPrecise, "", "1234.50", `"AeI6"`, false},
	{"pg negative numeric precise", "postgresql", TypeDecimal, "numeric(5,2)", DecimalPrecise, "", "-1.28", `"gA=="`, false},
	{"pg unconstrained numeric precise is VariableScaleDecimal", "postgresql", TypeDecimal, "numeric", DecimalPrecise, "", "-0.001", `{"scale":3,"value":"/w=="}`, false},
	{"pg numeric NaN precise has no form", "postgresql", TypeDecimal, "numeric", DecimalPrecise, "", "NaN", `"NaN"`, false},
	{"pg bytea is base64", "postgresql", TypeBytes, "", "", "", []byte{0xDE, 0xAD}, `"3q0="`, false},
	{"pg jsonb is its text", "postgresql", TypeJSON, "jsonb", "", "", `{"a": 1}`, `"{\"a\": 1}"`, false},
	{"pg int8", "postgresql", TypeInt, "int8", "", "", int64(-9223372036854775808), `-9223372036854775808`, false},
	{"mysql datetime(0) is Timestamp millis", "mysql", TypeTime, "datetime(0)", "", "", "2018-06-20 06:37:03", `1529476623000`, false},
	{"mysql datetime(6) is MicroTimestamp", "mysql", TypeTime, "datetime(6)", "", "", "2024-02-29 23:59:58.123456", `1709251198123456`, false},
	{"mysql zero datetime has no form", "mysql", TypeTime, "datetime(0)", "", "", "0000-00-00 00:00:00", `"0000-00-00 00:00:00"`, false},
	{"mysql timestamp is ZonedTimestamp", "mysql", TypeTime, "timestamp(6)", "", "", "2024-02-29 23:02:03.654300", `"2024-02-29T23:02:03.6543Z"`, false},
	{"mysql timestamp(0)", "mysql", TypeTime, "timestamp(0)", "", "", "2018-06-20 13:37:03", `"2018-06-20T13:37:03Z"`, false},
	{"mysql date", "mysql", TypeTime, "date", "", "", "2024-02-29", `19782`, false},
	{"mysql negative time(6) is MicroTime", "mysql", TypeTime, "time(6)", "", "", "-838:59:58.500000", `-3020398500000`, false},
	{"mysql time(0) is Time millis", "mysql", TypeTime, "time(0)", "", "", "12:00:01", `43201000`, false},
	{"mysql year", "mysql", TypeInt, "year", "", "", int64(2155), `2155`, false},
	{"mysql bit(1) is a boolean", "mysql", TypeInt, "bit(1)", "", "", int64(1), `true`, false},
	{"mysql bit(10) is Bits little-endian", "mysql", TypeInt, "bit(10)", "", "", int64(0b1010101010), `"qgI="`, false},
	{"mysql bit(64)", "mysql", TypeDecimal, "bit(64)", "", "", "18446744073709551615", `"//////////8="`, false},
	{"mysql bigint unsigned is a number", "mysql", TypeDecimal, "bigint unsigned", "", "", "18446744073709551615", `18446744073709551615`, false},
	{"mysql decimal string mode", "mysql", TypeDecimal, "decimal(65,30)", "", "", "-1.500000000000000000000000000000", `"-1.500000000000000000000000000000"`, false},
	{"mysql enum", "mysql", TypeString, "enum", "", "", "x'y", `"x'y"`, false},
	{"mysql set", "mysql", TypeString, "set", "", "", "a,c", `"a,c"`, false},
	// At the edges of each form, and values outside it: a value that is not
	// in the form Debezium's type needs is written as it is, its text
	// beside it where a decoder would take it for the form.
	{"pg date in year 1", "postgresql", TypeTime, "date", "", "", "0001-01-01", `-719162`, false},
	{"pg date 9999-12-31", "postgresql", TypeTime, "date", "", "", "9999-12-31", `2932896`, false},
	{"pg timestamp(3) 9999-12-31", "postgresql", TypeTime, "timestamp(3)", "", "", "9999-12-31 23:59:59.999", `253402300799999`, false},
	{"pg timestamp in year 1", "postgresql", TypeTime, "timestamp", "", "", "0001-01-01 00:00:00.000001", `-62135596799999999`, false},
	{"mysql datetime(6) 9999-12-31", "mysql", TypeTime, "datetime(6)", "", "", "9999-12-31 23:59:59.999999", `253402300799999999`, false},
	{"pg time midnight", "postgresql", TypeTime, "time", "", "", "00:00:00", `0`, false},
	{"pg timestamp half a second before the epoch", "postgresql", TypeTime, "timestamp", "", "", "1969-12-31 23:59:59.5", `-500000`, false},
	{"pg timestamp a second before the epoch", "postgresql", TypeTime, "timestamp", "", "", "1969-12-31 23:59:59", `-1000000`, false},
	{"mysql datetime(3) a millisecond before the epoch", "mysql", TypeTime, "datetime(3)", "", "", "1969-12-31 23:59:59.999", `-1`, false},
	{"pg numeric double mode at its largest", "postgresql", TypeDecimal, "numeric", DecimalDouble, "", "17" + strings.Repeat("0", 307), `1.7e+308`, true},
	{"pg numeric double mode at its lowest", "postgresql", TypeDecimal, "numeric", DecimalDouble, "", "-17" + strings.Repeat("0", 307), `-1.7e+308`, true},
	{"pg numeric double mode past a double has no form", "postgresql", TypeDecimal, "numeric", DecimalDouble, "", "18" + strings.Repeat("0", 307), `"18` + strings.Repeat("0", 307) + `"`, false},
	{"pg numeric double mode NaN has no form", "postgresql", TypeDecimal, "numeric", DecimalDouble, "", "NaN", `"NaN"`, false},
	{"pg numeric(10,0) precise", "postgresql", TypeDecimal, "numeric(10,0)", DecimalPrecise, "", "42", `"Kg=="`, false},
	{"pg numeric precise zero", "postgresql", TypeDecimal, "numeric(5,2)", DecimalPrecise, "", "0.00", `"AA=="`, false},
	{"pg numeric precise 128 needs a sign byte", "postgresql", TypeDecimal, "numeric(5,0)", DecimalPrecise, "", "128", `"AIA="`, false},
	{"pg numeric precise -129", "postgresql", TypeDecimal, "numeric(5,0)", DecimalPrecise, "", "-129", `"/38="`, false},
	{"pg numeric precise of another scale has no form", "postgresql", TypeDecimal, "numeric(5,2)", DecimalPrecise, "", "1.5", `"1.5"`, true},
	{"pg numeric precise with a letter has no form", "postgresql", TypeDecimal, "numeric(5,2)", DecimalPrecise, "", "1.5a", `"1.5a"`, true},
	{"pg numeric precise with as many digits as its scale", "postgresql", TypeDecimal, "numeric(5,2)", DecimalPrecise, "", "0.12", `"DA=="`, false},
	{"mysql bit(1) zero is false", "mysql", TypeInt, "bit(1)", "", "", int64(0), `false`, false},
	{"mysql bit(1) given 2 has no form", "mysql", TypeInt, "bit(1)", "", "", int64(2), `2`, false},
	{"pg date with a letter keeps its text", "postgresql", TypeTime, "date", "", "", "2024-O3-01", `"2024-O3-01"`, false},
	{"pg time at its last microsecond", "postgresql", TypeTime, "time", "", "", "23:59:59.999999", `86399999999`, false},
	{"pg time with nanoseconds keeps its text beside", "postgresql", TypeTime, "time", "", "", "08:20:30.123456789", `30030123456`, true},
	{"pg time with ten fractional digits has no form", "postgresql", TypeTime, "time", "", "", "08:20:30.1234567891", `"08:20:30.1234567891"`, false},
	{"pg time with a letter has no form", "postgresql", TypeTime, "time", "", "", "08:2O:30", `"08:2O:30"`, false},
	{"pg time with 60 seconds has no form", "postgresql", TypeTime, "time", "", "", "08:20:60", `"08:20:60"`, false},
	{"pg time with 60 minutes has no form", "postgresql", TypeTime, "time", "", "", "08:60:00", `"08:60:00"`, false},
	{"pg timestamptz at its last microsecond", "postgresql", TypeTime, "timestamptz", "", "", "2024-12-31 23:59:59.999999+00", `"2024-12-31T23:59:59.999999Z"`, false},
	{"pg timestamptz with nanoseconds", "postgresql", TypeTime, "timestamptz", "", "", "2024-03-01 08:20:30.123456789+00", `"2024-03-01T08:20:30.123456789Z"`, false},
	{"pg timestamptz with a letter has no form", "postgresql", TypeTime, "timestamptz", "", "", "2024-03-01 08:2O:30+00", `"2024-03-01 08:2O:30+00"`, true},
	{"pg timestamptz with a lone dot has no form", "postgresql", TypeTime, "timestamptz", "", "", "2024-03-01 08:20:30.+00", `"2024-03-01 08:20:30.+00"`, true},
	{"pg timestamptz at hour 24 has no form", "postgresql", TypeTime, "timestamptz", "", "", "2024-03-01 24:00:00+00", `"2024-03-01 24:00:00+00"`, true},
}

// TestDebezium_EachTypeIsWrittenAsDebeziumWritesIt checks each source
// type's value against Debezium's documented encoding.
func TestDebezium_EachTypeIsWrittenAsDebeziumWritesIt(t *testing.T) {
	for _, tc := range debeziumValues {
		t.Run(tc.name, func(t *testing.T) {
			c := codecFor(tc.connector, tc.typ, tc.sql, cmpOr(tc.dm, DecimalString), cmpOr(tc.tm, TimeAdaptive))
			got, exact, err := appendColumn(nil, tc.src, c, tc.typ)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want || exact != tc.exact {
				t.Errorf("wrote %s (exact beside it: %v), want %s (%v)", got, exact, tc.want, tc.exact)
			}
		})
	}
}

// TestDecode_EveryDebeziumValueGivesBackTheSourceValue: every value of
// the table above, in a record, decodes to exactly the capturer's value.
func TestDecode_EveryDebeziumValueGivesBackTheSourceValue(t *testing.T) {
	for _, tc := range debeziumValues {
		t.Run(tc.name, func(t *testing.T) {
			enc := &Encoder{Version: "test", Connector: tc.connector, Decimal: tc.dm, Time: tc.tm}
			ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"v"}, Types: map[string]Type{"v": tc.typ},
				SQLTypes: map[string]string{"v": tc.sql}, After: Row{"v": tc.src}}
			v, err := enc.Value(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(nil, v)
			if err != nil {
				t.Fatalf("decode %s: %v", v, err)
			}
			if g := got.After["v"]; !sameValue(g, tc.src) {
				t.Errorf("decoded %#v, want %#v (record %s)", g, tc.src, v)
			}
		})
	}
}

func sameValue(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && string(ab) == string(bb)
	}
	return a == b
}

// TestDecode_ReadsDebeziumValuesWrittenByAnotherProducer: a value in
// Debezium's form decodes without tandem having written it.
func TestDecode_ReadsDebeziumValuesWrittenByAnotherProducer(t *testing.T) {
	v := `{"after":{"d":19783,"ts":"2024-03-01T08:20:30.1Z"},"source":{"connector":"postgresql","schema":"s","table":"t",` +
		`"types":{"d":"time","ts":"time"},"sql_types":{"d":"date","ts":"timestamptz"}},"op":"c"}`
	got, err := Decode(nil, []byte(v))
	if err != nil {
		t.Fatal(err)
	}
	if got.After["d"] != "2024-03-01" || got.After["ts"] != "2024-03-01 08:20:30.1+00" {
		t.Errorf("After = %v", got.After)
	}
}

// TestDecode_ADecimalOfNoBytesIsZero: a Connect Decimal whose value is no
// bytes at all (another producer's) decodes as zero, not a panic.
func TestDecode_ADecimalOfNoBytesIsZero(t *testing.T) {
	enc := &Encoder{Version: "test", Connector: "postgresql", Decimal: DecimalPrecise}
	ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"v"}, Types: map[string]Type{"v": TypeDecimal},
		SQLTypes: map[string]string{"v": "numeric(5,2)"}, After: Row{"v": "0.00"}}
	v, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	empty := strings.Replace(string(v), `"v":"AA=="`, `"v":""`, 1)
	if empty == string(v) {
		t.Fatalf("record %s: no value AA== to empty", v)
	}
	got, err := Decode(nil, []byte(empty))
	if err != nil {
		t.Fatalf("decode %s: %v", empty, err)
	}
	if got.After["v"] != "0.00" {
		t.Errorf("decoded %#v, want \"0.00\" (record %s)", got.After["v"], empty)
	}
}

// TestDecode_AValueOutsideItsColumnsTypeStillDecodes: a capturer gives a
// BIT(1) an int64 and a BIGINT UNSIGNED its text; a value of another Go
// type has no Debezium form and is written as it is, in a record that
// decodes (source.exact holds text only), to the value as the column's
// type reads it.
func TestDecode_AValueOutsideItsColumnsTypeStillDecodes(t *testing.T) {
	enc := &Encoder{Version: "test", Connector: "mysql"}
	types := map[string]Type{"flag": TypeInt, "on": TypeInt, "big": TypeDecimal}
	sql := map[string]string{"flag": "bit(1)", "on": "bit(1)", "big": "bigint unsigned"}
	ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"big"}, Types: types, SQLTypes: sql,
		After: Row{"flag": false, "on": true, "big": int64(5)}}
	v, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(nil, v)
	if err != nil {
		t.Fatalf("decode %s: %v", v, err)
	}
	want := Row{"flag": int64(0), "on": int64(1), "big": "5"}
	if diff := cmp.Diff(want, got.After); diff != "" {
		t.Errorf("decoded after image of %s (-want +got):\n%s", v, diff)
	}
}

// TestDecode_ReadsTheTransactionIDOfEitherConnector: Debezium MySQL
// writes a GTID text as source.txId, which is no PostgreSQL transaction
// id and is skipped; a number is the id, from either connector.
func TestDecode_ReadsTheTransactionIDOfEitherConnector(t *testing.T) {
	for _, tc := range []struct {
		source string
		want   uint32
	}{
		{`"connector":"mysql","txId":"3e11fa47-71ca-11e1-9e33-c80aa9429562:23"`, 0},
		{`"connector":"mysql","txId":42`, 42},
		{`"connector":"postgresql","txId":767`, 767},
	} {
		v := `{"after":{"id":1},"source":{` + tc.source + `,"schema":"s","table":"t","types":{"id":"int64"}},"op":"c"}`
		got, err := Decode(nil, []byte(v))
		if err != nil {
			t.Errorf("decode %s: %v", v, err)
			continue
		}
		if got.TxID != tc.want || got.After["id"] != int64(1) {
			t.Errorf("decode %s: TxID %d, after %v; want TxID %d, id 1", v, got.TxID, got.After, tc.want)
		}
	}
	v := `{"after":{"id":1},"source":{"connector":"postgresql","txId":"767","schema":"s","table":"t"},"op":"c"}`
	if _, err := Decode(nil, []byte(v)); err == nil {
		t.Errorf("decode %s: no error for a PostgreSQL txId that is text", v)
	}
}

// TestDecode_AFloatAsTextIsOnlyNaNOrAnInfinity: JSON has no NaN nor
// infinities, so the envelope writes them as text; any other float sent
// as text is an error naming it.
func TestDecode_AFloatAsTextIsOnlyNaNOrAnInfinity(t *testing.T) {
	rec := func(f string) []byte {
		return []byte(`{"after":{"id":1,"f":` + f + `},"source":{"schema":"s","table":"t","types":{"id":"int64","f":"float64"}},"op":"c"}`)
	}
	got, err := Decode(nil, rec(`"-Infinity"`))
	if err != nil || got.After["f"] != math.Inf(-1) {
		t.Errorf("decode of -Infinity: %v, %v; want -Inf", got, err)
	}
	_, err = Decode(nil, rec(`"1.5"`))
	if err == nil || !strings.Contains(err.Error(), `column "f": float "1.5" sent as a string: only NaN and infinities are`) {
		t.Errorf("decode of a float as text: error %v, want one naming the column and the value", err)
	}
}
