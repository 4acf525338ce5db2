package reconcile

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tandemcdc/tandem/internal/config"
)

func TestColumnOf(t *testing.T) {
	plain := func(k kind) column { return column{kind: k, scale: -1} }
	pgTime := func(step int64) column { return column{kind: kindTime, scale: -1, timeStep: step} }
	myTime := func(step int64) column { return column{kind: kindTime, scale: -1, timeStep: step, mysqlTime: true} }
	chars := func(r charRule, n int) column { return column{kind: kindText, scale: -1, chars: r, length: n} }
	tests := map[string]column{
		"bigint": plain(kindInt), "integer": plain(kindInt), "int(11)": plain(kindInt),
		"bigint unsigned": plain(kindInt), "tinyint(1)": plain(kindBool), "boolean": plain(kindBool),
		"numeric(12,2)": {kind: kindDecimal, scale: 2}, "decimal(65,30)": {kind: kindDecimal, scale: 30}, "numeric": plain(kindDecimal),
		"decimal(10,0) unsigned": {kind: kindDecimal, scale: 0},
		"double precision":       plain(kindFloat), "double": plain(kindFloat), "double(10,2)": plain(kindFloat),
		"real": {kind: kindFloat, scale: -1, float4: true}, "float": {kind: kindFloat, scale: -1, float4: true},
		"float unsigned": {kind: kindFloat, scale: -1, float4: true}, "float(10,2)": {kind: kindFloat, scale: -1, float4: true},
		"bytea": plain(kindBytes), "longblob": plain(kindBytes), "varbinary(16)": plain(kindBytes),
		"timestamp with time zone": pgTime(1), "timestamp(3) with time zone": pgTime(1000), "timestamp(0) without time zone": pgTime(1e6),
		"timestamptz": pgTime(1), "timestamp(3) without time zone": pgTime(1000),
		"datetime(6)": myTime(1), "datetime(3)": myTime(1000), "datetime": myTime(1e6), "timestamp": myTime(1e6), "timestamp(2)": myTime(10000),
		"jsonb": plain(kindJSON), "json": plain(kindJSON), "uuid": plain(kindUUID),
		"text": plain(kindText), "date": plain(kindText), "point": plain(kindText), "interval": plain(kindText),
		"character varying(20)": chars(charsLimited, 20), "varchar(20)": chars(charsLimited, 20), "character varying": plain(kindText),
		"character(5)": chars(charsPadded, 5), "char(5)": chars(charsStripped, 5), "bpchar": plain(kindText),
		"char(0)": chars(charsStripped, 0), "varchar(0)": chars(charsLimited, 0), "char(x)": plain(kindText),
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
		{"decimal rounded half away from zero", "-12.345", "-12.35", num2, nil, true},
		{"decimal rounded down", "-12.3449", "-12.34", num2, nil, true},
		{"decimal of 18 digits", "1234567890123456.785", "1234567890123456.79", num2, nil, true},
		{"decimal past 18 digits", "123456789012345678901.785", "123456789012345678901.79", num2, nil, true},
		{"decimal past 18 digits differs", "123456789012345678901.785", "123456789012345678901.78", num2, nil, false},
		{"decimal scaled past int64", "900000000000000000", "9000000000000000.00", columnOf("numeric"), nil, false},
		{"decimal with an exponent", "1.2345e2", "123.45", num2, nil, true},
		{"decimal of a tiny double", 1e-20, "0.00", num2, nil, true},
		{"decimal of a double differs", 2.675, "2.67", num2, nil, false},
		{"decimal of a double past 18 digits", 1.5e20, "150000000000000000000.00", columnOf("numeric(30,2)"), nil, true},
		{"decimal text is not a number", "1,5", "1.50", num2, nil, false},
		{"negative zero", math.Copysign(0, -1), 0.0, flt, nil, true},
		{"float exact", 0.1, 0.1, flt, nil, true},
		{"float differs", 0.1, 0.1000001, flt, nil, false},
		{"float_epsilon", 1000.0, 1000.0000001, flt, []config.Tolerance{"float_epsilon"}, true},
		{"float_epsilon still catches", 1000.0, 1000.1, flt, []config.Tolerance{"float_epsilon"}, false},
		{"float_epsilon holds at exactly 1e-6 of the larger", 1e6, 999999.0, flt, []config.Tolerance{"float_epsilon"}, true},
		{"float_epsilon ends past 1e-6 of the larger", 1e6, 999998.99, flt, []config.Tolerance{"float_epsilon"}, false},
		{"float into float4", 0.1, float64(float32(0.1)), columnOf("real"), nil, true},
		{"NaN", math.NaN(), math.NaN(), flt, nil, true},
		{"bool as tinyint", true, int64(1), boolc, nil, true},
		{"bool differs", false, int64(1), boolc, nil, false},
		{"bools differ", true, false, boolc, nil, false},
		{"timestamp as instant", "2026-01-02 03:04:05.123456+02", "2026-01-02 01:04:05.123456+00", ts, nil, true},
		{"timestamp from RFC 3339", time.Date(2026, 1, 2, 1, 4, 5, 123456000, time.UTC), "2026-01-02 01:04:05.123456+00", ts, nil, true},
		{"timestamp microseconds count", "2026-01-02 01:04:05.123456+00", "2026-01-02 01:04:05.123457+00", ts, nil, false},
		{"time_precision_ms", "2026-01-02 01:04:05.123456+00", "2026-01-02 01:04:05.123499+00", ts, []config.Tolerance{"time_precision_ms"}, true},
		{"time_precision_ms rounds as PostgreSQL", "2026-01-02 01:04:05.1235+00", "2026-01-02 01:04:05.124+00", ts, []config.Tolerance{"time_precision_ms"}, true},
		{"time_precision_ms does not truncate on PostgreSQL", "2026-01-02 01:04:05.1235+00", "2026-01-02 01:04:05.123+00", ts, []config.Tolerance{"time_precision_ms"}, false},
		{"time_precision_ms on MySQL, truncated", "2026-01-02 01:04:05.1239", "2026-01-02 01:04:05.123", columnOf("datetime(6)"), []config.Tolerance{"time_precision_ms"}, true},
		{"time_precision_ms on MySQL, rounded", "2026-01-02 01:04:05.1239", "2026-01-02 01:04:05.124", columnOf("datetime(6)"), []config.Tolerance{"time_precision_ms"}, true},
		{"time_precision_ms on MySQL still catches", "2026-01-02 01:04:05.1239", "2026-01-02 01:04:05.125", columnOf("datetime(6)"), []config.Tolerance{"time_precision_ms"}, false},
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

// storeCase is a value a mapping computes (want) written into a target
// column: stored is what the server keeps, as its RowReader reads it back,
// and differs a value the column can hold that is a real difference.
// TestStoredCases_AreWhatTheServersStore writes each want into a real
// column and reads stored back.
type storeCase struct {
	name    string
	ddl     string // the column's type in CREATE TABLE
	spelled string // the type as ColumnTypes names it
	want    any
	stored  any
	differs any
}

// pgStoreCases are PostgreSQL 15's conversions: timestamps and numerics
// rounded half away from zero (timestamps away from 2000-01-01), real as
// float32, character(n) padded, spaces beyond a varchar(n) cut.
var pgStoreCases = []storeCase{
	{"timestamptz(3) rounds a half up", "timestamptz(3)", "timestamp(3) with time zone",
		"2026-01-02 03:04:05.1235+00", "2026-01-02 03:04:05.124+00", "2026-01-02 03:04:05.123+00"},
	{"timestamptz(3) rounds down", "timestamptz(3)", "timestamp(3) with time zone",
		"2026-01-02 03:04:05.123456+00", "2026-01-02 03:04:05.123+00", "2026-01-02 03:04:05.124+00"},
	{"timestamptz(3) rounds into the next second", "timestamptz(3)", "timestamp(3) with time zone",
		"2026-01-02 03:04:05.9996+00", "2026-01-02 03:04:06+00", "2026-01-02 03:04:05.999+00"},
	{"timestamptz(3) of another zone", "timestamptz(3)", "timestamp(3) with time zone",
		"2026-01-02 12:04:05.4445+09", "2026-01-02 03:04:05.445+00", "2026-01-02 03:04:05.444+00"},
	{"timestamptz(3) before 2000 rounds a half earlier", "timestamptz(3)", "timestamp(3) with time zone",
		"1999-12-31 23:59:59.9995+00", "1999-12-31 23:59:59.999+00", "2000-01-01 00:00:00+00"},
	{"timestamptz(3) of a time.Time", "timestamptz(3)", "timestamp(3) with time zone",
		time.Date(2026, 1, 2, 3, 4, 5, 123600000, time.UTC), "2026-01-02 03:04:05.124+00", "2026-01-02 03:04:05.123+00"},
	{"timestamptz(3) before 2000 is not its mirror after it", "timestamptz(3)", "timestamp(3) with time zone",
		"1999-12-31 23:59:59.9995+00", "1999-12-31 23:59:59.999+00", "2000-01-01 00:00:00.001+00"},
	{"timestamptz(3) just after 2000-01-01 rounds down", "timestamptz(3)", "timestamp(3) with time zone",
		"2000-01-01 00:00:00.0004+00", "2000-01-01 00:00:00+00", "2000-01-01 00:00:00.001+00"},
	{"timestamp(0) rounds a half up", "timestamp(0)", "timestamp(0) without time zone",
		"2026-01-02 03:04:05.5", "2026-01-02 03:04:06", "2026-01-02 03:04:05"},
	{"numeric(10,2) rounds a half up", "numeric(10,2)", "numeric(10,2)", "1.005", "1.01", "1.00"},
	{"numeric(10,2) rounds a negative half away from zero", "numeric(10,2)", "numeric(10,2)", "-1.005", "-1.01", "-1.00"},
	{"numeric(10,2) rounds down", "numeric(10,2)", "numeric(10,2)", "12.344999", "12.34", "12.35"},
	{"numeric(10,2) pads the scale", "numeric(10,2)", "numeric(10,2)", "7", "7.00", "7.01"},
	{"numeric(10,2) of a double is of its shortest text", "numeric(10,2)", "numeric(10,2)", 1.005, "1.01", "1.00"},
	{"numeric(10,2) of another double", "numeric(10,2)", "numeric(10,2)", 2.675, "2.68", "2.67"},
	{"numeric(10,0) rounds a negative half away from zero", "numeric(10,0)", "numeric(10,0)", "-2.5", "-3", "-2"},
	{"numeric(30,0) of more than 18 digits rounds a half up", "numeric(30,0)", "numeric(30,0)", "1234567890123456789.5", "1234567890123456790", "1234567890123456789"},
	{"real keeps a float32", "real", "real", 0.123456789, 0.12345679, 0.1234568},
	{"real rounds an integer past 2^24", "real", "real", 16777217.0, 16777216.0, 16777218.0},
	{"character(5) pads", "character(5)", "character(5)", "ab", "ab   ", "ab  x"},
	{"character(5) cuts the spaces beyond 5", "character(5)", "character(5)", "ab       ", "ab   ", "abc  "},
	{"varchar(4) cuts the spaces beyond 4", "varchar(4)", "character varying(4)", "ab      ", "ab  ", "ab"},
	{"varchar(2) counts characters", "varchar(2)", "character varying(2)", "日本 ", "日本", "日"},
}

// mariaStoreCases are MariaDB 10.11's, in the sink's sql_mode: fractional
// seconds truncated (MySQL 8 would round them), decimals rounded half away
// from zero, FLOAT as float32, CHAR(n) read without trailing spaces,
// spaces beyond a VARCHAR(n) cut.
var mariaStoreCases = []storeCase{
	{"datetime(3) truncates", "datetime(3)", "datetime(3)",
		"2026-01-02 03:04:05.1236", "2026-01-02 03:04:05.123", "2026-01-02 03:04:05.125"},
	{"datetime(3) of PostgreSQL's text in another zone", "datetime(3)", "datetime(3)",
		"2026-01-02 12:04:05.9999+09", "2026-01-02 03:04:05.999", "2026-01-02 03:04:05.998"},
	{"datetime(3) of a time.Time", "datetime(3)", "datetime(3)",
		time.Date(2026, 1, 2, 3, 4, 5, 123600000, time.UTC), "2026-01-02 03:04:05.123", "2026-01-02 03:04:05.125"},
	{"timestamp(3) truncates", "timestamp(3)", "timestamp(3)",
		"2026-01-02 03:04:05.4445", "2026-01-02 03:04:05.444", "2026-01-02 03:04:05.446"},
	{"datetime keeps seconds", "datetime", "datetime", "2026-01-02 03:04:05.5", "2026-01-02 03:04:05", "2026-01-02 03:04:07"},
	{"decimal(10,2) rounds a half up", "decimal(10,2)", "decimal(10,2)", "1.005", "1.01", "1.00"},
	{"decimal(10,2) rounds a negative half away from zero", "decimal(10,2)", "decimal(10,2)", "-1.005", "-1.01", "-1.00"},
	{"decimal(10,2) rounds down", "decimal(10,2)", "decimal(10,2)", "12.344999", "12.34", "12.35"},
	{"decimal(10,2) pads the scale", "decimal(10,2)", "decimal(10,2)", "7", "7.00", "7.01"},
	{"decimal(10,2) of a double is of its shortest text", "decimal(10,2)", "decimal(10,2)", 1.005, "1.01", "1.00"},
	{"decimal(10,2) of another double", "decimal(10,2)", "decimal(10,2)", 2.675, "2.68", "2.67"},
	{"decimal(10,0) rounds a negative half away from zero", "decimal(10,0)", "decimal(10,0)", "-2.5", "-3", "-2"},
	{"decimal(30,0) of more than 18 digits rounds a half up", "decimal(30,0)", "decimal(30,0)", "1234567890123456789.5", "1234567890123456790", "1234567890123456789"},
	{"float keeps a float32", "float", "float", 0.123456789, 0.12345679, 0.1234568},
	{"float rounds an integer past 2^24", "float", "float", 16777217.0, 16777216.0, 16777218.0},
	{"char(5) is read without trailing spaces", "char(5)", "char(5)", "ab  ", "ab", "ab  x"},
	{"varchar(4) cuts the spaces beyond 4", "varchar(4)", "varchar(4)", "ab      ", "ab  ", "ab"},
	{"varchar(2) counts characters", "varchar(2)", "varchar(2)", "日本 ", "日本", "日"},
	{"char(0) holds only the empty text", "char(0)", "char(0)", "  ", "", " "},
	{"varchar(0) cuts every space", "varchar(0)", "varchar(0)", "   ", "", " "},
}

func TestEqual_ConvertsAsTheTargetStores(t *testing.T) {
	for db, cases := range map[string][]storeCase{"postgres": pgStoreCases, "mariadb": mariaStoreCases} {
		for _, tc := range cases {
			c := columnOf(tc.spelled)
			if !(tolerance{}).equal(tc.want, tc.stored, c) {
				t.Errorf("%s: %s: %#v stored as %#v is drift", db, tc.name, tc.want, tc.stored)
			}
			if (tolerance{}).equal(tc.want, tc.differs, c) {
				t.Errorf("%s: %s: %#v against %#v is not drift", db, tc.name, tc.want, tc.differs)
			}
		}
	}
}

// BenchmarkEqual compares the columns of a row of the reconcile
// benchmark's table (spelled alike on both sides), and values a less
// precise column converts: the comparison's cost per value.
func BenchmarkEqual(b *testing.B) {
	values := []struct {
		want, got any
		c         column
	}{
		{int64(42), int64(42), columnOf("bigint")},
		{"name 42", "name 42", columnOf("text")},
		{"123.45", "123.45", columnOf("numeric(12,2)")},
		{"2026-01-02 03:04:05.123456+00", "2026-01-02 03:04:05.123456+00", columnOf("timestamp with time zone")},
		{nil, nil, columnOf("text")},
		{"123.4", "123.40", columnOf("numeric(12,2)")},
		{"123.456", "123.46", columnOf("numeric(10,2)")},
		{1.005, "1.01", columnOf("numeric(10,2)")},
		{"2026-01-02 03:04:05.1235+00", "2026-01-02 03:04:05.124+00", columnOf("timestamp(3) with time zone")},
		{"2026-01-02 03:04:05.1235", "2026-01-02 03:04:05.123", columnOf("datetime(3)")},
		{0.123456789, 0.123456791, columnOf("real")},
		{"ab", "ab   ", columnOf("character(5)")},
	}
	var tol tolerance
	for _, v := range values {
		b.Run(fmt.Sprintf("%v/%T", v.want, v.got), func(b *testing.B) {
			for b.Loop() {
				if !tol.equal(v.want, v.got, v.c) {
					b.Fatalf("equal(%#v, %#v) is false", v.want, v.got)
				}
			}
		})
	}
}
