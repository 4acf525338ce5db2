package reconcile

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tandemcdc/tandem/internal/config"
)

func TestColumnOf(t *testing.T) {
	tests := map[string]column{
		"bigint": {kind: kindInt, scale: -1}, "integer": {kind: kindInt, scale: -1}, "int(11)": {kind: kindInt, scale: -1},
		"bigint unsigned": {kind: kindInt, scale: -1}, "tinyint(1)": {kind: kindBool, scale: -1}, "boolean": {kind: kindBool, scale: -1},
		"numeric(12,2)": {kind: kindDecimal, scale: 2}, "decimal(65,30)": {kind: kindDecimal, scale: 30}, "numeric": {kind: kindDecimal, scale: -1},
		"double precision": {kind: kindFloat, scale: -1}, "real": {kind: kindFloat, scale: -1}, "float": {kind: kindFloat, scale: -1},
		"bytea": {kind: kindBytes, scale: -1}, "longblob": {kind: kindBytes, scale: -1}, "varbinary(16)": {kind: kindBytes, scale: -1},
		"timestamp with time zone": {kind: kindTime, scale: -1}, "datetime(6)": {kind: kindTime, scale: -1}, "timestamp(3) without time zone": {kind: kindTime, scale: -1},
		"jsonb": {kind: kindJSON, scale: -1}, "json": {kind: kindJSON, scale: -1}, "uuid": {kind: kindUUID, scale: -1},
		"text": {kind: kindText, scale: -1}, "character varying(20)": {kind: kindText, scale: -1}, "date": {kind: kindText, scale: -1},
		"point": {kind: kindText, scale: -1}, "interval": {kind: kindText, scale: -1},
	}
	for sqlType, want := range tests {
		if got := columnOf(sqlType); got != want {
			t.Errorf("columnOf(%q) = %+v, want %+v", sqlType, got, want)
		}
	}
}

func TestEqual_CanonicalPerType(t *testing.T) {
	text, intc, num2, flt, boolc := columnOf("text"), columnOf("bigint"), columnOf("numeric(12,2)"), columnOf("double precision"), columnOf("tinyint(1)")
	ts, js, uu, by := columnOf("timestamptz"), columnOf("jsonb"), columnOf("uuid"), columnOf("bytea")
	tests := []struct {
		name      string
		want, got any
		c         column
		tolerate  []config.Tolerance
		equal     bool
	}{
		{"null is null", nil, nil, text, nil, true},
		{"null is not empty", nil, "", text, nil, false},
		{"empty is not null", "", nil, text, nil, false},
		{"null is not the text NULL", nil, "NULL", text, nil, false},
		{"null_equals_empty", nil, "", text, []config.Tolerance{"null_equals_empty"}, true},
		{"null_equals_empty, other way", "", nil, text, []config.Tolerance{"null_equals_empty"}, true},
		{"null_equals_empty is not null_equals_text", nil, "x", text, []config.Tolerance{"null_equals_empty"}, false},
		{"null_equals_empty with trim_space", "  ", nil, text, []config.Tolerance{"null_equals_empty", "trim_space"}, true},
		{"trailing space differs", "a ", "a", text, nil, false},
		{"trim_space", "a ", " a", text, []config.Tolerance{"trim_space"}, true},
		{"case differs", "Ab", "ab", text, nil, false},
		{"case_insensitive", "Ab", "aB", text, []config.Tolerance{"case_insensitive"}, true},
		{"int by value", int64(42), int64(42), intc, nil, true},
		{"int from text", "42", int64(42), intc, nil, true},
		{"int differs", int64(42), int64(43), intc, nil, false},
		{"uint64 max", uint64(math.MaxUint64), "18446744073709551615", columnOf("bigint unsigned"), nil, true},
		{"decimal exact", "12.50", "12.5", num2, nil, true},
		{"decimal from int", int64(12), "12.00", num2, nil, true},
		{"decimal rounded to scale", 12.345, "12.35", num2, nil, true},
		{"decimal differs", "12.50", "12.51", num2, nil, false},
		{"negative zero", math.Copysign(0, -1), 0.0, flt, nil, true},
		{"float exact", 0.1, 0.1, flt, nil, true},
		{"float differs", 0.1, 0.1000001, flt, nil, false},
		{"float_epsilon", 1000.0, 1000.0000001, flt, []config.Tolerance{"float_epsilon"}, true},
		{"float_epsilon still catches", 1000.0, 1000.1, flt, []config.Tolerance{"float_epsilon"}, false},
		{"float into float4", 0.1, float64(float32(0.1)), columnOf("real"), nil, true},
		{"NaN", math.NaN(), math.NaN(), flt, nil, true},
		{"bool as tinyint", true, int64(1), boolc, nil, true},
		{"bool differs", false, int64(1), boolc, nil, false},
		{"timestamp as instant", "2026-01-02 03:04:05.123456+02", "2026-01-02 01:04:05.123456+00", ts, nil, true},
		{"timestamp from RFC 3339", time.Date(2026, 1, 2, 1, 4, 5, 123456000, time.UTC), "2026-01-02 01:04:05.123456+00", ts, nil, true},
		{"timestamp microseconds count", "2026-01-02 01:04:05.123456+00", "2026-01-02 01:04:05.123457+00", ts, nil, false},
		{"time_precision_ms", "2026-01-02 01:04:05.123456+00", "2026-01-02 01:04:05.123999+00", ts, []config.Tolerance{"time_precision_ms"}, true},
		{"time_precision_ms still catches", "2026-01-02 01:04:05.123+00", "2026-01-02 01:04:05.124+00", ts, []config.Tolerance{"time_precision_ms"}, false},
		{"MySQL datetime is UTC", "2026-01-02 01:04:05.5", "2026-01-02 01:04:05.5+00", ts, nil, true},
		{"json key order and spacing", `{"a":1,"b":[true,null]}`, `{"b": [true, null], "a": 1}`, js, nil, true},
		{"json numbers by value", `{"a":1.0}`, `{"a":1}`, js, nil, true},
		{"json string is not a number", `{"a":"1"}`, `{"a":1}`, js, nil, false},
		{"json from a CEL map", map[string]any{"a": int64(1)}, `{"a":1}`, js, nil, true},
		{"uuid case", "C0FFEE00-0000-4000-8000-000000000001", "c0ffee00-0000-4000-8000-000000000001", uu, nil, true},
		{"bytes", []byte{0, 1}, []byte{0, 1}, by, nil, true},
		{"bytes differ", []byte{0, 1}, []byte{0, 2}, by, nil, false},
	}
	for _, tc := range tests {
		if got := newTolerance(tc.tolerate).equal(tc.want, tc.got, tc.c); got != tc.equal {
			t.Errorf("%s: equal(%#v, %#v) = %v, want %v", tc.name, tc.want, tc.got, got, tc.equal)
		}
	}
	if diff := cmp.Diff(tolerance{trimSpace: true}, newTolerance([]config.Tolerance{"trim_space"}), cmp.AllowUnexported(tolerance{})); diff != "" {
		t.Error(diff)
	}
}
