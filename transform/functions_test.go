package transform

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testVars are the variables of the functions' test environment: a dynamic
// row as today's mappings see it, and nullable typed columns as per-table
// environments declare them.
var testVars = []cel.EnvOption{
	cel.Variable("row", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("s", cel.NullableType(cel.StringType)),
	cel.Variable("i", cel.NullableType(cel.IntType)),
	cel.Variable("d", cel.NullableType(cel.DoubleType)),
	cel.Variable("b", cel.NullableType(cel.BytesType)),
	cel.Variable("t", cel.NullableType(cel.TimestampType)),
}

func functionsEnv(t testing.TB) *cel.Env {
	t.Helper()
	opts := append([]cel.EnvOption{cel.CrossTypeNumericComparisons(true), cel.OptionalTypes()}, testVars...)
	e, err := cel.NewEnv(append(opts, functions()...)...)
	if err != nil {
		t.Fatalf("build CEL environment: %v", err)
	}
	return e
}

// testRow is the row the tests and the fuzzer evaluate on.
var testRow = map[string]any{
	"id":     int64(7),
	"email":  "  Ann@Example.COM ",
	"nick":   nil,
	"name":   "Ann",
	"total":  "19.99",
	"qty":    int64(3),
	"price":  2.5,
	"paid":   true,
	"blob":   []byte{0, 1},
	"meta":   `{"customer":{"name":"Ann","tags":["a","b"]},"a b":1,"n":12345678901234567890}`,
	"ts":     "2024-01-02 03:04:05.123456+00",
	"dt":     "2024-01-02 03:04:05",
	"day":    "2024-01-02",
	"empty":  "",
	"blank":  "   ",
	"nan":    "NaN",
	"ns":     "6ba7b811-9dad-11d1-80b4-00c04fd430c8",
	"amount": "-0.005",
}

// testActivation binds every test variable; typed columns are null unless set.
func testActivation(vars map[string]any) map[string]any {
	act := map[string]any{"row": testRow, "s": nil, "i": nil, "d": nil, "b": nil, "t": nil}
	for k, v := range vars {
		act[k] = v
	}
	return act
}

// goValue turns a result into a value go-cmp can compare: what sinks are
// given, except that a timestamp is its RFC 3339 text, so its zone shows.
func goValue(t *testing.T, v ref.Val) any {
	t.Helper()
	if ts, ok := v.(types.Timestamp); ok {
		return ts.Time.Format(time.RFC3339Nano)
	}
	n, err := native(v)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type evalCase struct {
	expr    string
	vars    map[string]any // typed variables; unset ones are null
	want    any
	wantErr string // the evaluation error, exactly
}

func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	e := functionsEnv(t)
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			a, iss := e.Compile(c.expr)
			if iss.Err() != nil {
				t.Fatalf("compile: %v", iss.Err())
			}
			prg, err := e.Program(a)
			if err != nil {
				t.Fatalf("program: %v", err)
			}
			v, _, err := prg.Eval(testActivation(c.vars))
			if c.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want error %q", v, c.wantErr)
				}
				if err.Error() != c.wantErr {
					t.Fatalf("error:\n got %q\nwant %q", err.Error(), c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("eval: %v", err)
			}
			if diff := cmp.Diff(c.want, goValue(t, v), cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFunctions_Strings(t *testing.T) {
	runEvalCases(t, []evalCase{
		{expr: `lower("ÀÉ Straße")`, want: "àé straße"},
		{expr: `upper("émile")`, want: "ÉMILE"},
		{expr: `lower(trim(row.email))`, want: "ann@example.com"},
		{expr: `lower(s)`, want: nil},
		{expr: `upper(s)`, vars: map[string]any{"s": "x"}, want: "X"},
		{expr: `upper(row.nick)`, want: nil},
		{expr: `trim(" \t a b\n")`, want: "a b"},
		{expr: "trim(\"\u00a0x\u3000\")", want: "x"},
		{expr: `trim(s)`, want: nil},
		{expr: `" a ".trim()`, want: "a"},
		{expr: `s.trim()`, wantErr: "no such overload: trim(null_type)"},
		{expr: `null_if_empty("")`, want: nil},
		{expr: `null_if_empty(row.empty)`, want: nil},
		{expr: `null_if_empty(row.blank)`, want: "   "},
		{expr: `null_if_empty(trim(row.blank))`, want: nil},
		{expr: `null_if_empty("x")`, want: "x"},
		{expr: `null_if_empty(s)`, want: nil},
		// cel-go's strings extension
		{expr: `"a,b".split(",")`, want: []any{"a", "b"}},
		{expr: `row.name.replace("n", "N")`, want: "ANN"},
		{expr: `"%s-%d".format([row.name, row.id])`, want: "Ann-7"},
		{expr: `row.email.lowerAscii()`, want: "  ann@example.com "},
		{expr: `base64.encode(row.blob)`, want: "AAE="},
		{expr: `base64.decode("AAE=")`, want: []byte{0, 1}},
		{expr: `math.round(row.price)`, want: 3.0},
		{expr: `math.greatest(1, row.qty, 2)`, want: int64(3)},
	})
}

func TestFunctions_Coalesce(t *testing.T) {
	runEvalCases(t, []evalCase{
		{expr: `coalesce(s, "x")`, want: "x"},
		{expr: `coalesce(s, "x")`, vars: map[string]any{"s": "S"}, want: "S"},
		{expr: `coalesce(s, "")`, vars: map[string]any{"s": ""}, want: ""},
		{expr: `coalesce(i, 0)`, want: int64(0)},
		{expr: `coalesce(row.nick, row.name)`, want: "Ann"},
		{expr: `coalesce(row.nick, null)`, want: nil},
		{expr: `coalesce(s, row.nick, "c")`, want: "c"},
		{expr: `coalesce(s, s, s, s, "e")`, want: "e"},
		{expr: `coalesce(s, s, s, s, s, "f")`, want: "f"},
		{expr: `coalesce(s, s, s, s, s, s)`, want: nil},
		{expr: `coalesce(row.nick, 1)`, want: int64(1)},
		{expr: `coalesce(s, "x").trim()`, want: "x"},
	})
}

func TestFunctions_Parse(t *testing.T) {
	long := strings.Repeat("9", 100)
	runEvalCases(t, []evalCase{
		{expr: `parse_int("42")`, want: int64(42)},
		{expr: `parse_int("-12")`, want: int64(-12)},
		{expr: `parse_int("+7")`, want: int64(7)},
		{expr: `parse_int(s)`, want: nil},
		{expr: `parse_int(row.nick)`, want: nil},
		{expr: `parse_int(" 1")`, wantErr: `parse_int: " 1" is not a base-10 integer`},
		{expr: `parse_int("1.0")`, wantErr: `parse_int: "1.0" is not a base-10 integer`},
		{expr: `parse_int("9223372036854775808")`, wantErr: `parse_int: "9223372036854775808" is out of the int64 range`},
		{expr: `parse_int("x` + long + `")`, wantErr: `parse_int: "x` + long[:79] + `"... (101 bytes) is not a base-10 integer`},
		{expr: `parse_double("12.5")`, want: 12.5},
		{expr: `parse_double("-1e3")`, want: -1000.0},
		{expr: `parse_double(row.nan)`, want: math.NaN()},
		{expr: `parse_double(row.total)`, want: 19.99},
		{expr: `parse_double(s)`, want: nil},
		{expr: `parse_double("1e400")`, wantErr: `parse_double: "1e400" is out of the double range`},
		{expr: `parse_double("abc")`, wantErr: `parse_double: "abc" is not a number`},
	})
}

func TestFunctions_Time(t *testing.T) {
	runEvalCases(t, []evalCase{
		{expr: `parse_time(row.ts, "postgres")`, want: "2024-01-02T03:04:05.123456Z"},
		{expr: `parse_time("2024-01-02 03:04:05+05:30", "postgres")`, want: "2024-01-01T21:34:05Z"},
		{expr: `parse_time("2024-01-02 03:04:05.5-08", "postgres")`, want: "2024-01-02T11:04:05.5Z"},
		{expr: `parse_time("1900-01-01 00:00:00+00:53:28", "postgres")`, want: "1899-12-31T23:06:32Z"},
		{expr: `parse_time("2024-01-02 03:04:05.000001", "postgres")`, want: "2024-01-02T03:04:05.000001Z"},
		{expr: `parse_time("infinity", "postgres")`, wantErr: `parse_time: "infinity" does not match layout "postgres": cannot parse "infinity" as "2006"`},
		{expr: `parse_time("2024-01-02 03:04:05+0x", "postgres")`, wantErr: `parse_time: "2024-01-02 03:04:05+0x" does not match layout "postgres": extra text: "+0x"`},
		{expr: `parse_time(row.dt, "mysql")`, want: "2024-01-02T03:04:05Z"},
		{expr: `parse_time("2024-01-02 03:04:05.000001", "mysql")`, want: "2024-01-02T03:04:05.000001Z"},
		{expr: `parse_time("0000-00-00 00:00:00", "mysql")`, wantErr: `parse_time: "0000-00-00 00:00:00" does not match layout "mysql": month out of range`},
		{expr: `parse_time("2024-01-02T03:04:05.123456789+02:00", "rfc3339")`, want: "2024-01-02T01:04:05.123456789Z"},
		{expr: `parse_time("2024-01-02T03:04:05Z", "rfc3339")`, want: "2024-01-02T03:04:05Z"},
		{expr: `parse_time(row.day, "date")`, want: "2024-01-02T00:00:00Z"},
		{expr: `parse_time("2024-02-30", "date")`, wantErr: `parse_time: "2024-02-30" does not match layout "date": day out of range`},
		{expr: `parse_time("02/01/2024 15:04", "02/01/2006 15:04")`, want: "2024-01-02T15:04:00Z"},
		{expr: `parse_time("0000-01-01", "date")`, wantErr: `parse_time: "0000-01-01" with layout "date": year 0 is outside 1..9999`},
		{expr: `parse_time("2024", "")`, wantErr: `parse_time: empty layout`},
		{expr: `parse_time(s, "postgres")`, want: nil},
		{expr: `parse_time(row.nick, "mysql")`, want: nil},
		{expr: `parse_time(row.ts, "postgres") > timestamp("2024-01-01T00:00:00Z")`, want: true},
		{expr: `format_time(parse_time(row.ts, "postgres"), "postgres")`, want: "2024-01-02 03:04:05.123456+00"},
		{expr: `format_time(parse_time(row.ts, "postgres"), "mysql")`, want: "2024-01-02 03:04:05.123456"},
		{expr: `format_time(timestamp("2024-01-02T03:04:05Z"), "mysql")`, want: "2024-01-02 03:04:05"},
		{expr: `format_time(timestamp("2024-01-02T03:04:05.123456789Z"), "mysql")`, want: "2024-01-02 03:04:05.123456"},
		{expr: `format_time(timestamp("2024-01-02T03:04:05.123456789Z"), "rfc3339")`, want: "2024-01-02T03:04:05.123456789Z"},
		{expr: `format_time(timestamp("2024-01-02T01:04:05+02:00"), "mysql")`, want: "2024-01-01 23:04:05"},
		{expr: `format_time(timestamp("2024-01-02T03:04:05Z"), "date")`, want: "2024-01-02"},
		{expr: `format_time(timestamp("2024-01-02T03:04:05Z"), "02.01.2006")`, want: "02.01.2024"},
		{expr: `format_time(t, "date")`, want: nil},
		{expr: `format_time(t, "date")`, vars: map[string]any{"t": time.Date(2024, 5, 6, 23, 0, 0, 0, time.FixedZone("", -3600))}, want: "2024-05-07"},
		{expr: `format_time(parse_time(row.nick, "mysql"), "date")`, want: nil},
		{expr: `format_time(t, "")`, vars: map[string]any{"t": time.Unix(0, 0)}, wantErr: `format_time: empty layout`},
	})
}

func TestFunctions_Decimal(t *testing.T) {
	runEvalCases(t, []evalCase{
		{expr: `decimal_add("1.10", "2.205")`, want: "3.305"},
		{expr: `decimal_add("0.1", "0.2")`, want: "0.3"},
		{expr: `decimal_add("-1.50", 1)`, want: "-0.50"},
		{expr: `decimal_add(1, 2)`, want: "3"},
		{expr: `decimal_add("007.5", "0")`, want: "7.5"},
		{expr: `decimal_add(".5", "+5.")`, want: "5.5"},
		{expr: `decimal_add("-0.00", 0)`, want: "0.00"},
		{expr: `decimal_add("99999999999999999999999999.99", "0.01")`, want: "100000000000000000000000000.00"},
		{expr: `decimal_add(row.total, row.qty)`, want: "22.99"},
		// More than 18 digits, most after the point: not an int64.
		{expr: `decimal_add("9.9999999999999999999", "0.0000000000000000001")`, want: "10.0000000000000000000"},
		// A scale 19 places up: past the precomputed powers of ten.
		{expr: `decimal_add("1", "0.0000000000000000001")`, want: "1.0000000000000000001"},
		{expr: `decimal_sub("1", "1.000")`, want: "0.000"},
		{expr: `decimal_sub(-2, "3.5")`, want: "-5.5"},
		{expr: `decimal_sub("0.3", "0.1")`, want: "0.2"},
		// The int64 whose negation is itself: written through big.Int.
		{expr: `decimal_sub(-9223372036854775807, 1)`, want: "-9223372036854775808"},
		{expr: `decimal_add("-9223372036854775808", 0)`, want: "-9223372036854775808"},
		{expr: `decimal_mul("19.99", 100)`, want: "1999.00"},
		{expr: `decimal_mul(row.total, row.qty)`, want: "59.97"},
		{expr: `decimal_mul("-0.5", "0.5")`, want: "-0.25"},
		{expr: `decimal_mul("1.1", "1.1")`, want: "1.21"},
		{expr: `decimal_mul("0.0", "-5")`, want: "0.0"},
		{expr: `decimal_mul(9223372036854775807, 9223372036854775807)`, want: "85070591730234615847396907784232501249"},
		{expr: `decimal_round("2.345", 2)`, want: "2.35"},
		{expr: `decimal_round("2.344", 2)`, want: "2.34"},
		{expr: `decimal_round("2.5", 0)`, want: "3"},
		{expr: `decimal_round("-2.5", 0)`, want: "-3"},
		{expr: `decimal_round("1.2", 3)`, want: "1.200"},
		{expr: `decimal_round("1250", -2)`, want: "1300"},
		{expr: `decimal_round("-1249.99", -2)`, want: "-1200"},
		{expr: `decimal_round("0.004", 2)`, want: "0.00"},
		{expr: `decimal_round(row.amount, 2)`, want: "-0.01"},
		{expr: `decimal_round("-0.004", 2)`, want: "0.00"},
		{expr: `decimal_round("9.995", 2)`, want: "10.00"},
		{expr: `decimal_round(12, 1)`, want: "12.0"},
		{expr: `decimal_round(int(decimal_cmp(row.total, 20)), 0)`, want: "-1"},
		{expr: `decimal_round("1", 1001)`, wantErr: `decimal_round: places 1001 is outside -1000..1000`},
		{expr: `decimal_round("1", -1001)`, wantErr: `decimal_round: places -1001 is outside -1000..1000`},
		{expr: `decimal_round("1", -1000)`, want: "0"},
		{expr: `decimal_round("1", 1000)`, want: "1." + strings.Repeat("0", 1000)},
		{expr: `decimal_round(s, 2)`, want: nil},
		{expr: `decimal_cmp("1.0", "1.00")`, want: int64(0)},
		{expr: `decimal_cmp("-1", "0.5")`, want: int64(-1)},
		{expr: `decimal_cmp("2", 1)`, want: int64(1)},
		{expr: `decimal_cmp(3, 3)`, want: int64(0)},
		{expr: `decimal_cmp(row.total, "19.990") == 0`, want: true},
		{expr: `decimal_cmp(s, 1)`, want: nil},
		{expr: `decimal_add(s, 1)`, want: nil},
		{expr: `decimal_add(1, i)`, want: nil},
		{expr: `decimal_mul(row.nick, row.total)`, want: nil},
		{expr: `decimal_add("NaN", 1)`, wantErr: `decimal_add: "NaN" is not a finite decimal`},
		{expr: `decimal_sub(1, "-Infinity")`, wantErr: `decimal_sub: "-Infinity" is not a finite decimal`},
		{expr: `decimal_mul("inf", 1)`, wantErr: `decimal_mul: "inf" is not a finite decimal`},
		{expr: `decimal_add("1e3", 1)`, wantErr: `decimal_add: "1e3" is not a decimal number`},
		{expr: `decimal_add("1/3", 1)`, wantErr: `decimal_add: "1/3" is not a decimal number`},
		{expr: `decimal_add("", 1)`, wantErr: `decimal_add: "" is not a decimal number`},
		{expr: `decimal_add(" 1", 1)`, wantErr: `decimal_add: " 1" is not a decimal number`},
		{expr: `decimal_add("--1", 1)`, wantErr: `decimal_add: "--1" is not a decimal number`},
		{expr: `decimal_add("1.2.3", 1)`, wantErr: `decimal_add: "1.2.3" is not a decimal number`},
		{expr: `decimal_cmp("-", 1)`, wantErr: `decimal_cmp: "-" is not a decimal number`},
		{expr: `decimal_round(".", 1)`, wantErr: `decimal_round: "." is not a decimal number`},
		{expr: `decimal_add(row.price, 1)`, wantErr: `no such overload: decimal_add(double, int)`},
	})
}

func TestFunctions_JSON(t *testing.T) {
	runEvalCases(t, []evalCase{
		{expr: `json(row.meta).customer.name`, want: "Ann"},
		{expr: `json(row.meta)["a b"]`, want: int64(1)},
		{expr: `type(json(row.meta)["a b"]) == int`, want: true},
		{expr: `json(row.meta).n`, want: 12345678901234567890.0},
		{expr: `json(row.meta).customer.tags[1]`, want: "b"},
		{expr: `json(row.meta).?customer.?email.orValue("none")`, want: "none"},
		{expr: `json("[1, 2.5, 1e2, -0, true, null, \"x\"]")`, want: []any{int64(1), 2.5, 100.0, int64(0), true, nil, "x"}},
		{expr: `json("{\"a\":{\"b\":[1]}}")`, want: map[string]any{"a": map[string]any{"b": []any{int64(1)}}}},
		{expr: `json("null")`, want: nil},
		{expr: `json(s)`, want: nil},
		{expr: `json(row.nick)`, want: nil},
		{expr: `json(row.meta).missing`, wantErr: `no such key: missing`},
		{expr: `json("{")`, wantErr: `json: "{" is not JSON: unexpected EOF`},
		{expr: `json("1 2")`, wantErr: `json: "1 2": text after the JSON value`},
		{expr: `json("{} x")`, wantErr: `json: "{} x": text after the JSON value`},
		{expr: `json("1e400")`, wantErr: `json: "1e400": number 1e400 is out of the double range`},
		{expr: `to_json({"b": 1, "a": [true, null, 2.5, "x<y"]})`, want: `{"a":[true,null,2.5,"x<y"],"b":1}`},
		{expr: `to_json(9007199254740993)`, want: "9007199254740993"},
		{expr: `to_json(json("{\"z\": 1, \"a\": {\"y\": [1, 2]}}"))`, want: `{"a":{"y":[1,2]},"z":1}`},
		{expr: `to_json(json(row.meta).customer)`, want: `{"name":"Ann","tags":["a","b"]}`},
		{expr: `to_json(b"\x00\x01")`, want: `"AAE="`},
		{expr: `to_json(timestamp("2024-01-02T03:04:05.5+01:00"))`, want: `"2024-01-02T02:04:05.5Z"`},
		{expr: `to_json(duration("90m"))`, want: `"1h30m0s"`},
		{expr: `to_json({1: "a", true: "b"})`, want: `{"1":"a","true":"b"}`},
		{expr: `to_json(1.0)`, want: `1`},
		{expr: `to_json(1e21)`, want: `1e+21`},
		{expr: `to_json(18446744073709551615u)`, want: `18446744073709551615`},
		{expr: `to_json([optional.of(1), optional.none()])`, want: `[1,null]`},
		{expr: `to_json([])`, want: `[]`},
		{expr: `to_json({})`, want: `{}`},
		{expr: `to_json("é\n")`, want: `"é\n"`},
		{expr: `to_json(row.nick)`, want: nil},
		{expr: `to_json(s)`, want: nil},
		{expr: `to_json(null)`, want: nil},
		{expr: `to_json([null])`, want: `[null]`},
		{expr: `to_json(double("NaN"))`, wantErr: `to_json: NaN has no JSON form`},
		{expr: `to_json([double("-Infinity")])`, wantErr: `to_json: -Inf has no JSON form`},
		{expr: `to_json({"t": type(1)})`, wantErr: `to_json: a value of type type has no JSON form`},
	})
}

func TestFunctions_UUID5(t *testing.T) {
	// Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org")
	const pythonOrg = "886313e1-3b8a-5372-9b90-0c9aee199e5d"
	runEvalCases(t, []evalCase{
		{expr: `uuid5("dns", "python.org")`, want: pythonOrg},
		{expr: `uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "python.org")`, want: pythonOrg},
		{expr: `uuid5("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", b"python.org")`, want: pythonOrg},
		{expr: `uuid5("url", "https://shop.example/orders/" + string(row.id)) == uuid5(row.ns, "https://shop.example/orders/7")`, want: true},
		{expr: `uuid5("oid", "1.3.6.1") != uuid5("x500", "1.3.6.1")`, want: true},
		{expr: `uuid5("dns", s)`, want: nil},
		{expr: `uuid5("dns", b)`, want: nil},
		{expr: `uuid5("dns", row.nick)`, want: nil},
		{expr: `uuid5("DNS", "x")`, wantErr: `uuid5: namespace "DNS" is neither a UUID nor one of dns, url, oid, x500`},
		{expr: `uuid5("nope", "x")`, wantErr: `uuid5: namespace "nope" is neither a UUID nor one of dns, url, oid, x500`},
	})
}

// TestFunctions_TypeCheck: wrong argument types are compile errors, also
// with nullable typed columns.
func TestFunctions_TypeCheck(t *testing.T) {
	e := functionsEnv(t)
	for _, c := range []struct {
		expr    string
		wantErr string // "" compiles
		want    string // the output type when it compiles
	}{
		{expr: `lower(s)`, want: "wrapper(string)"},
		{expr: `lower(s) + "x"`, want: "string"},
		{expr: `lower(row.email)`, want: "wrapper(string)"},
		{expr: `lower(1)`, wantErr: "found no matching overload for 'lower' applied to '(int)'"},
		{expr: `trim(b)`, wantErr: "found no matching overload for 'trim' applied to '(wrapper(bytes))'"},
		{expr: `null_if_empty(i)`, wantErr: "found no matching overload for 'null_if_empty'"},
		{expr: `coalesce(s, "x")`, want: "wrapper(string)"},
		{expr: `coalesce(i, 0)`, want: "wrapper(int)"},
		{expr: `coalesce(row.nick, 0)`, want: "dyn"},
		{expr: `coalesce(s, 1)`, wantErr: "found no matching overload for 'coalesce' applied to '(wrapper(string), int)'"},
		{expr: `coalesce(s)`, wantErr: "found no matching overload for 'coalesce' applied to '(wrapper(string))'"},
		{expr: `coalesce(s, s, s, s, s, s, s)`, wantErr: "found no matching overload for 'coalesce'"},
		{expr: `parse_int(s)`, want: "wrapper(int)"},
		{expr: `parse_int(i)`, wantErr: "found no matching overload for 'parse_int' applied to '(wrapper(int))'"},
		{expr: `parse_double(s)`, want: "wrapper(double)"},
		{expr: `parse_time(s, "mysql")`, want: "wrapper(google.protobuf.Timestamp)"},
		{expr: `parse_time(s, "mysql") < timestamp("2024-01-01T00:00:00Z")`, want: "bool"},
		{expr: `parse_time(t, "mysql")`, wantErr: "found no matching overload for 'parse_time'"},
		{expr: `format_time(t, "date")`, want: "wrapper(string)"},
		{expr: `format_time(s, "date")`, wantErr: "found no matching overload for 'format_time' applied to '(wrapper(string), string)'"},
		{expr: `decimal_add(s, i)`, want: "wrapper(string)"},
		{expr: `decimal_add(i, s)`, want: "wrapper(string)"},
		{expr: `decimal_add(1.5, 1)`, wantErr: "found no matching overload for 'decimal_add' applied to '(double, int)'"},
		{expr: `decimal_mul(d, 100)`, wantErr: "found no matching overload for 'decimal_mul' applied to '(wrapper(double), int)'"},
		{expr: `decimal_round(s, "2")`, wantErr: "found no matching overload for 'decimal_round'"},
		{expr: `decimal_cmp(s, "1") < 0`, want: "bool"},
		{expr: `json(s).a`, want: "dyn"},
		{expr: `json(b)`, wantErr: "found no matching overload for 'json' applied to '(wrapper(bytes))'"},
		{expr: `to_json(row)`, want: "wrapper(string)"},
		{expr: `uuid5("dns", s)`, want: "wrapper(string)"},
		{expr: `uuid5("dns", b)`, want: "wrapper(string)"},
		{expr: `uuid5("dns", 1)`, wantErr: "found no matching overload for 'uuid5' applied to '(string, int)'"},
		{expr: `default(s, "x")`, wantErr: "undeclared reference to 'default'"},
		{expr: `json.parse("{}")`, wantErr: "undeclared reference to 'json'"},
	} {
		a, iss := e.Compile(c.expr)
		switch {
		case c.wantErr != "" && iss.Err() == nil:
			t.Errorf("%s: compiled to %s, want error %q", c.expr, a.OutputType(), c.wantErr)
		case c.wantErr != "" && !strings.Contains(iss.Err().Error(), c.wantErr):
			t.Errorf("%s: error %q, want it to contain %q", c.expr, iss.Err(), c.wantErr)
		case c.wantErr == "" && iss.Err() != nil:
			t.Errorf("%s: %v", c.expr, iss.Err())
		case c.wantErr == "" && a.OutputType().String() != c.want:
			t.Errorf("%s: output type %s, want %s", c.expr, a.OutputType(), c.want)
		}
	}
}

// TestFunctions_DocListsEveryFunction: the doc comment of functions() is
// the user reference, so every function it declares must be named there.
func TestFunctions_DocListsEveryFunction(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "functions.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "functions" {
			doc = fd.Doc.Text()
		}
	}
	if doc == "" {
		t.Fatal("functions has no doc comment")
	}
	base, err := cel.NewEnv(append([]cel.EnvOption{cel.OptionalTypes()}, testVars...)...)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for name := range functionsEnv(t).Functions() {
		if _, std := base.Functions()[name]; std || strings.Contains(name, "@") {
			continue // CEL's standard library, or a macro's implementation
		}
		short := name[strings.LastIndex(name, ".")+1:] // math.ceil is listed as math.ceil or ceil
		if !strings.Contains(doc, name) && !strings.Contains(doc, short+"(") && !strings.Contains(doc, "/"+short) {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("functions' doc comment does not list %v", missing)
	}
}
