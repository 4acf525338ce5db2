package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"
)

// functions returns the helper functions mapping expressions may call, on
// top of CEL's standard library (size, contains, startsWith, endsWith,
// matches, int(), double(), string(), timestamp(), duration(), ...). This
// comment is the user reference.
//
// Null handling: tandem's helpers take nullable arguments and give null when
// a data argument is null (SQL-like), so a NULL column flows through a
// cleaning chain instead of failing the row: lower(null) == null. A layout,
// a number of places or a namespace is not data: give a literal. The member
// functions of cel-go's strings extension (s.split(","), s.replace(...), ...)
// fail on null like the standard library does; guard them with
// coalesce(row.s, "").
//
// Strings (tandem):
//
//	lower(s) -> string            Unicode lower case: lower("ÀB") == "àb"
//	upper(s) -> string            Unicode upper case
//	trim(s) -> string             leading and trailing Unicode white space removed
//	null_if_empty(s) -> string    null when s is "" (only ""; write
//	                              null_if_empty(trim(s)) for blank text)
//
// lowerAscii and upperAscii below change ASCII letters only; prefer lower
// and upper. trim(s) and s.trim() are one function: the global form also
// takes null.
//
// Strings (cel-go ext.Strings, member functions, null is an error):
//
//	s.charAt(i), s.indexOf(sub[, from]), s.lastIndexOf(sub[, from]),
//	s.lowerAscii(), s.upperAscii(), s.replace(old, new[, n]),
//	s.split(sep[, n]) -> list, s.substring(start[, end]), s.trim(),
//	s.reverse(), list.join([sep]), fmt.format(list) (printf-like: %s %d %f
//	%e %b %x %X %o), strings.quote(s)
//
// Nulls:
//
//	coalesce(a, b[, c, d, e, f]) -> T   the first argument that is not null
//	                                    (null if all are); 2 to 6 arguments
//	                                    of one type: coalesce(row.nick, row.name, "anonymous")
//
// There is no default(x, d): it would be coalesce(x, d).
//
// Parsing and formatting (null in, null out; a value that does not parse is
// an evaluation error naming it, so the row goes to the dead-letter topic):
//
//	parse_int(s) -> int           base-10 int64, optional sign, no spaces: parse_int("-12")
//	parse_double(s) -> double     "12.5", "-1e3", "NaN", "Inf"; out of range is an error
//	parse_time(s, layout) -> timestamp
//	format_time(t, layout) -> string
//
// A layout is a Go reference layout ("02/01/2006 15:04") or one of these
// names:
//
//	"rfc3339"   2006-01-02T15:04:05.999999999Z07:00 (fraction optional)
//	"mysql"     2006-01-02 15:04:05.999999, MySQL DATETIME/TIMESTAMP text
//	"postgres"  PostgreSQL timestamptz text "2024-01-02 03:04:05.123456+00"
//	            (offsets +hh, +hh:mm or +hh:mm:ss) or timestamp text without
//	            a zone; formats as 2006-01-02 15:04:05.999999+00
//	"date"      2006-01-02
//
// parse_time keeps every fractional digit given and returns the instant in
// UTC; text without a zone is UTC. Years outside 1..9999, MySQL's zero date
// and PostgreSQL's infinity and BC values do not parse. format_time formats
// the instant in UTC, trailing zeros of the fraction dropped; "mysql" and
// "postgres" keep at most microseconds (truncated).
//
// Exact decimals (no float64 round trip). Numeric columns arrive as text;
// each argument is decimal text ("-12.50", "+3", ".5") or an int, and a null
// argument gives null. NaN, Infinity, exponents and doubles are rejected (a
// double does not type-check: it is already rounded). Results are canonical
// decimal text: no leading zeros or "+", "-" only on non-zero values, and
// the scale (digits after the point) of SQL's numeric arithmetic:
//
//	decimal_add(a, b) -> string        a + b, scale max(scale a, scale b): ("1.10", "2.205") == "3.305"
//	decimal_sub(a, b) -> string        a - b, scale as decimal_add
//	decimal_mul(a, b) -> string        a * b, scale a + scale b: ("19.99", 100) == "1999.00"
//	decimal_round(a, places) -> string half away from zero, scale max(places, 0):
//	                                   ("2.345", 2) == "2.35", ("-2.5", 0) == "-3",
//	                                   ("1.2", 3) == "1.200", ("1250", -2) == "1300";
//	                                   places within -1000..1000
//	decimal_cmp(a, b) -> int           -1, 0 or 1 by value: ("1.0", "1.00") == 0
//
// JSON:
//
//	json(s) -> dyn      JSON text to a CEL value: objects are maps, arrays
//	                    lists; integers that fit int64 are int, other numbers
//	                    double. json(row.meta).customer.name,
//	                    json(row.meta)["a b"]; a missing key is an error, use
//	                    json(row.meta).?customer.?name.orValue(null) for
//	                    optional ones. Invalid JSON or trailing text is an error.
//	to_json(x) -> string  canonical JSON text: object keys sorted, no spaces,
//	                    no HTML escaping, ints exact (even beyond 2^53),
//	                    bytes base64, timestamps RFC 3339 in UTC, durations
//	                    Go's form ("1h30m0s"); int and bool map keys become
//	                    their text. NaN and infinities are errors. A null
//	                    argument gives null, not the text "null".
//
// Encodings (cel-go ext.Encoders version 0):
//
//	base64.encode(bytes) -> string, base64.decode(string) -> bytes
//
// Math (cel-go ext.Math):
//
//	math.greatest(a, b, ...), math.least(a, b, ...), math.ceil(d),
//	math.floor(d), math.round(d) (half away from zero), math.trunc(d),
//	math.abs(x), math.sign(x), math.sqrt(x), math.isNaN(d), math.isInf(d),
//	math.isFinite(d), math.bitAnd/bitOr/bitXor/bitNot/bitShiftLeft/bitShiftRight
//
// Identifiers:
//
//	uuid5(namespace, name) -> string  name-based SHA-1 UUID (RFC 9562 version 5)
//	                                  in lowercase text; namespace is UUID
//	                                  text or "dns", "url", "oid", "x500";
//	                                  name is string or bytes:
//	                                  uuid5("url", "https://shop.example/orders/" + string(row.id))
//
// The cel-go extensions are pinned to their versions in cel-go v0.33.2, so
// upgrading cel-go does not change the mapping language unnoticed.
func functions() []cel.EnvOption {
	return []cel.EnvOption{
		ext.Strings(ext.StringsVersion(5)),
		ext.Encoders(ext.EncodersVersion(0)),
		ext.Math(ext.MathVersion(3)),

		stringFunc("lower", strings.ToLower),
		stringFunc("upper", strings.ToUpper),
		stringFunc("trim", strings.TrimSpace),
		cel.Function("null_if_empty", cel.Overload("null_if_empty_string",
			[]*cel.Type{nullableString}, nullableString,
			cel.UnaryBinding(nullIn(func(v ref.Val) ref.Val {
				if v.(types.String) == "" {
					return types.NullValue
				}
				return v
			})))),
		cel.Function("coalesce", coalesceOverloads()...),

		cel.Function("parse_int", cel.Overload("parse_int_string",
			[]*cel.Type{nullableString}, nullableInt,
			cel.UnaryBinding(nullIn(parseInt)))),
		cel.Function("parse_double", cel.Overload("parse_double_string",
			[]*cel.Type{nullableString}, nullableDouble,
			cel.UnaryBinding(nullIn(parseDouble)))),
		cel.Function("parse_time", cel.Overload("parse_time_string_string",
			[]*cel.Type{nullableString, cel.StringType}, nullableTimestamp,
			cel.BinaryBinding(nullIn2(parseTime)))),
		cel.Function("format_time", cel.Overload("format_time_timestamp_string",
			[]*cel.Type{nullableTimestamp, cel.StringType}, nullableString,
			cel.BinaryBinding(nullIn2(formatTime)))),

		decimalFunc("decimal_add", nullableString, func(a, b decimal) ref.Val { return a.add(b).val() }),
		decimalFunc("decimal_sub", nullableString, func(a, b decimal) ref.Val { return a.add(b.neg()).val() }),
		decimalFunc("decimal_mul", nullableString, func(a, b decimal) ref.Val { return a.mul(b).val() }),
		decimalFunc("decimal_cmp", nullableInt, func(a, b decimal) ref.Val { return types.Int(a.cmp(b)) }),
		cel.Function("decimal_round",
			cel.Overload("decimal_round_string_int", []*cel.Type{nullableString, cel.IntType}, nullableString,
				cel.BinaryBinding(nullIn2(decimalRound))),
			cel.Overload("decimal_round_int_int", []*cel.Type{nullableInt, cel.IntType}, nullableString,
				cel.BinaryBinding(nullIn2(decimalRound)))),

		cel.Function("json", cel.Overload("json_string",
			[]*cel.Type{nullableString}, cel.DynType,
			cel.UnaryBinding(nullIn(parseJSON)))),
		cel.Function("to_json", cel.Overload("to_json_dyn",
			[]*cel.Type{cel.DynType}, nullableString,
			cel.UnaryBinding(nullIn(toJSON)))),

		cel.Function("uuid5",
			cel.Overload("uuid5_string_string", []*cel.Type{cel.StringType, nullableString}, nullableString,
				cel.BinaryBinding(nullIn2(uuid5))),
			cel.Overload("uuid5_string_bytes", []*cel.Type{cel.StringType, nullableBytes}, nullableString,
				cel.BinaryBinding(nullIn2(uuid5)))),
	}
}

var (
	nullableString    = cel.NullableType(cel.StringType)
	nullableInt       = cel.NullableType(cel.IntType)
	nullableDouble    = cel.NullableType(cel.DoubleType)
	nullableBytes     = cel.NullableType(cel.BytesType)
	nullableTimestamp = cel.NullableType(cel.TimestampType)
)

// nullIn makes a unary binding give null for a null argument.
func nullIn(f func(ref.Val) ref.Val) func(ref.Val) ref.Val {
	return func(v ref.Val) ref.Val {
		if v == types.NullValue {
			return types.NullValue
		}
		return f(v)
	}
}

// nullIn2 makes a binary binding give null when either argument is null.
func nullIn2(f func(a, b ref.Val) ref.Val) func(a, b ref.Val) ref.Val {
	return func(a, b ref.Val) ref.Val {
		if a == types.NullValue || b == types.NullValue {
			return types.NullValue
		}
		return f(a, b)
	}
}

// stringFunc declares a global string -> string function, null in null out.
func stringFunc(name string, f func(string) string) cel.EnvOption {
	return cel.Function(name, cel.Overload(name+"_string",
		[]*cel.Type{nullableString}, nullableString,
		cel.UnaryBinding(nullIn(func(v ref.Val) ref.Val {
			return types.String(f(string(v.(types.String))))
		}))))
}

// errVal is an evaluation error of function fn.
func errVal(fn, format string, args ...any) ref.Val {
	return types.NewErr("%s: %s", fn, fmt.Sprintf(format, args...))
}

// quoted quotes a value for an error message, cut to 80 bytes: a value can
// be a whole JSON document, and the message goes to logs and dead letters.
func quoted(s string) string {
	const max = 80
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// maxCoalesceArgs is the most arguments coalesce takes.
const maxCoalesceArgs = 6

func coalesceOverloads() []cel.FunctionOpt {
	t := cel.TypeParamType("T")
	var opts []cel.FunctionOpt
	for n := 2; n <= maxCoalesceArgs; n++ {
		opts = append(opts, cel.Overload(fmt.Sprintf("coalesce_%d", n), slices.Repeat([]*cel.Type{t}, n), t,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				for _, a := range args {
					if a != types.NullValue {
						return a
					}
				}
				return types.NullValue
			})))
	}
	return opts
}

func parseInt(v ref.Val) ref.Val {
	s := string(v.(types.String))
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return errVal("parse_int", "%s is out of the int64 range", quoted(s))
		}
		return errVal("parse_int", "%s is not a base-10 integer", quoted(s))
	}
	return types.Int(i)
}

func parseDouble(v ref.Val) ref.Val {
	s := string(v.(types.String))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return errVal("parse_double", "%s is out of the double range", quoted(s))
		}
		return errVal("parse_double", "%s is not a number", quoted(s))
	}
	return types.Double(f)
}

// timeLayout is a named layout: the layouts tried in order when parsing,
// and the one used to format.
type timeLayout struct {
	parse  []string
	format string
}

var namedLayouts = map[string]timeLayout{
	"rfc3339": {parse: []string{time.RFC3339Nano}, format: time.RFC3339Nano},
	"mysql":   {parse: []string{"2006-01-02 15:04:05.999999999"}, format: "2006-01-02 15:04:05.999999"},
	"postgres": {parse: []string{
		"2006-01-02 15:04:05.999999999Z07",
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02 15:04:05.999999999Z07:00:00",
		"2006-01-02 15:04:05.999999999",
	}, format: "2006-01-02 15:04:05.999999-07"},
	"date": {parse: []string{time.DateOnly}, format: time.DateOnly},
}

// layoutOf resolves a layout argument: a name or a Go reference layout.
func layoutOf(layout string) (timeLayout, bool) {
	if l, ok := namedLayouts[layout]; ok {
		return l, true
	}
	if layout == "" {
		return timeLayout{}, false
	}
	return timeLayout{parse: []string{layout}, format: layout}, true
}

// CEL's timestamp range: years 1 to 9999.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func parseTime(sv, lv ref.Val) ref.Val {
	s, layout := string(sv.(types.String)), string(lv.(types.String))
	l, ok := layoutOf(layout)
	if !ok {
		return errVal("parse_time", "empty layout")
	}
	var err error
	for _, p := range l.parse {
		var t time.Time
		t, err = time.Parse(p, s)
		if err != nil {
			continue
		}
		if t.Before(minTime) || !t.Before(maxTime) {
			return errVal("parse_time", "%s with layout %q: year %d is outside 1..9999", quoted(s), layout, t.Year())
		}
		return types.Timestamp{Time: t.UTC()}
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		// pe's own text repeats value and layout; keep only what is wrong.
		err = errors.New(strings.TrimPrefix(pe.Message, ": "))
		if pe.Message == "" {
			err = fmt.Errorf("cannot parse %q as %q", pe.ValueElem, pe.LayoutElem)
		}
	}
	return errVal("parse_time", "%s does not match layout %q: %v", quoted(s), layout, err)
}

func formatTime(tv, lv ref.Val) ref.Val {
	layout := string(lv.(types.String))
	l, ok := layoutOf(layout)
	if !ok {
		return errVal("format_time", "empty layout")
	}
	return types.String(tv.(types.Timestamp).Time.UTC().Format(l.format))
}

// decimal is an exact decimal number: unscaled × 10^-scale.
type decimal struct {
	unscaled *big.Int
	scale    int // digits after the point, >= 0
}

// maxDecimalPlaces bounds decimal_round's places, as PostgreSQL bounds a
// numeric's display scale: a larger one would only allocate.
const maxDecimalPlaces = 1000

// parseDecimal reads decimal text: an optional sign, digits, an optional
// point and more digits, at least one digit in all.
func parseDecimal(s string) (decimal, error) {
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 {
		return decimal{}, fmt.Errorf("%s is not a decimal number", quoted(s))
	}
	if strings.EqualFold(digits, "nan") || strings.EqualFold(digits, "inf") || strings.EqualFold(digits, "infinity") {
		return decimal{}, fmt.Errorf("%s is not a finite decimal", quoted(s))
	}
	intPart, frac, _ := strings.Cut(digits, ".")
	if len(intPart)+len(frac) == 0 || !allDigits(intPart) || !allDigits(frac) {
		return decimal{}, fmt.Errorf("%s is not a decimal number", quoted(s))
	}
	var u *big.Int
	if len(intPart)+len(frac) <= 18 { // fits an int64: no big scan, no concatenation
		var n int64
		for _, part := range [2]string{intPart, frac} {
			for i := 0; i < len(part); i++ {
				n = n*10 + int64(part[i]-'0')
			}
		}
		u = big.NewInt(n)
	} else {
		u, _ = new(big.Int).SetString(intPart+frac, 10)
	}
	if strings.HasPrefix(s, "-") {
		u.Neg(u)
	}
	return decimal{unscaled: u, scale: len(frac)}, nil
}

// allDigits reports whether s holds only ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decimalArg reads a decimal function's argument: decimal text or an int.
func decimalArg(v ref.Val) (decimal, error) {
	switch v := v.(type) {
	case types.Int:
		return decimal{unscaled: big.NewInt(int64(v))}, nil
	case types.String:
		return parseDecimal(string(v))
	}
	return decimal{}, fmt.Errorf("%s is not decimal text or an int", v.Type().TypeName())
}

// rescale returns d with scale s >= d.scale, the same value.
func (d decimal) rescale(s int) decimal {
	if s == d.scale {
		return d
	}
	u := new(big.Int).Mul(d.unscaled, pow10(s-d.scale))
	return decimal{unscaled: u, scale: s}
}

func pow10(n int) *big.Int {
	if n < len(smallPow10) {
		return new(big.Int).Set(smallPow10[n])
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// smallPow10 are 10^0 to 10^18, computed once.
var smallPow10 = func() []*big.Int {
	out := make([]*big.Int, 19)
	p := int64(1)
	for i := range out {
		out[i] = big.NewInt(p)
		p *= 10
	}
	return out
}()

func (d decimal) add(o decimal) decimal {
	s := max(d.scale, o.scale)
	a, b := d.rescale(s), o.rescale(s)
	return decimal{unscaled: new(big.Int).Add(a.unscaled, b.unscaled), scale: s}
}

func (d decimal) neg() decimal {
	return decimal{unscaled: new(big.Int).Neg(d.unscaled), scale: d.scale}
}

func (d decimal) mul(o decimal) decimal {
	return decimal{unscaled: new(big.Int).Mul(d.unscaled, o.unscaled), scale: d.scale + o.scale}
}

func (d decimal) cmp(o decimal) int {
	s := max(d.scale, o.scale)
	return d.rescale(s).unscaled.Cmp(o.rescale(s).unscaled)
}

// round rounds half away from zero to places digits after the point; a
// negative places rounds to tens, hundreds, ... with scale 0.
func (d decimal) round(places int) decimal {
	if places >= d.scale {
		return d.rescale(places)
	}
	unit := pow10(d.scale - places)
	q, r := new(big.Int).QuoRem(new(big.Int).Abs(d.unscaled), unit, new(big.Int))
	if r.Lsh(r, 1).Cmp(unit) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if d.unscaled.Sign() < 0 {
		q.Neg(q)
	}
	if places < 0 {
		return decimal{unscaled: q.Mul(q, pow10(-places))}
	}
	return decimal{unscaled: q, scale: places}
}

// String is the canonical text: no leading zeros, "-" only when non-zero,
// exactly scale digits after the point.
func (d decimal) String() string {
	var digits string
	if d.unscaled.IsInt64() && d.unscaled.Int64() != math.MinInt64 {
		n := d.unscaled.Int64()
		digits = strconv.FormatInt(max(n, -n), 10)
	} else {
		digits = new(big.Int).Abs(d.unscaled).String()
	}
	if d.scale > 0 {
		if len(digits) <= d.scale {
			digits = strings.Repeat("0", d.scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-d.scale] + "." + digits[len(digits)-d.scale:]
	}
	if d.unscaled.Sign() < 0 {
		return "-" + digits
	}
	return digits
}

func (d decimal) val() ref.Val { return types.String(d.String()) }

// decimalFunc declares a binary decimal function over every mix of decimal
// text and int, null in null out.
func decimalFunc(name string, result *cel.Type, f func(a, b decimal) ref.Val) cel.EnvOption {
	binding := cel.BinaryBinding(nullIn2(func(av, bv ref.Val) ref.Val {
		a, err := decimalArg(av)
		if err != nil {
			return errVal(name, "%v", err)
		}
		b, err := decimalArg(bv)
		if err != nil {
			return errVal(name, "%v", err)
		}
		return f(a, b)
	}))
	kinds := []struct {
		id string
		t  *cel.Type
	}{{"string", nullableString}, {"int", nullableInt}}
	var overloads []cel.FunctionOpt
	for _, a := range kinds {
		for _, b := range kinds {
			overloads = append(overloads, cel.Overload(name+"_"+a.id+"_"+b.id, []*cel.Type{a.t, b.t}, result, binding))
		}
	}
	return cel.Function(name, overloads...)
}

func decimalRound(av, pv ref.Val) ref.Val {
	a, err := decimalArg(av)
	if err != nil {
		return errVal("decimal_round", "%v", err)
	}
	places := int64(pv.(types.Int))
	if places < -maxDecimalPlaces || places > maxDecimalPlaces {
		return errVal("decimal_round", "places %d is outside -%d..%d", places, maxDecimalPlaces, maxDecimalPlaces)
	}
	return a.round(int(places)).val()
}

func parseJSON(v ref.Val) ref.Val {
	s := string(v.(types.String))
	// Lenient as PostgreSQL's json type and MySQL are: a repeated name
	// keeps its last value; text that is not UTF-8 is kept as it is.
	dec := jsonDecoders.Get().(*jsontext.Decoder)
	defer jsonDecoders.Put(dec)
	dec.Reset(strings.NewReader(s), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	x, err := readJSON(dec)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errVal("json", "%s is not JSON: unexpected EOF", quoted(s))
	case err != nil && strings.HasPrefix(err.Error(), "number"):
		return errVal("json", "%s: %v", quoted(s), err)
	case err != nil:
		return errVal("json", "%s is not JSON: %v", quoted(s), err)
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errVal("json", "%s: text after the JSON value", quoted(s))
	}
	return types.DefaultTypeAdapter.NativeToValue(x)
}

// jsonDecoders are reused between calls of json(): a decoder's buffers
// cost more than most documents.
var jsonDecoders = sync.Pool{New: func() any { return jsontext.NewDecoder(strings.NewReader("")) }}

// readJSON reads one JSON value token by token into Go values: objects as
// map[string]any, arrays as []any, numbers as int64 when they are integers
// that fit and float64 otherwise.
func readJSON(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't', 'f':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		raw := tok.String()
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return i, nil
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, fmt.Errorf("number %s is out of the double range", raw)
		}
		return f, nil
	case '[':
		out := []any{}
		for dec.PeekKind() != ']' {
			e, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		_, err := dec.ReadToken()
		return out, err
	case '{':
		out := map[string]any{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			name := tok.String() // before the next read voids tok
			e, err := readJSON(dec)
			if err != nil {
				return nil, err
			}
			out[name] = e
		}
		_, err := dec.ReadToken()
		return out, err
	}
	return nil, fmt.Errorf("unexpected %v", tok.Kind())
}

func toJSON(v ref.Val) ref.Val {
	x, err := jsonValue(v)
	if err != nil {
		return errVal("to_json", "%v", err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return errVal("to_json", "%v", err)
	}
	return types.String(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

// jsonValue converts a CEL value to the Go value encoding/json writes as
// its canonical JSON (maps are written with sorted keys).
func jsonValue(v ref.Val) (any, error) {
	switch v := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bool:
		return bool(v), nil
	case types.Int:
		return int64(v), nil
	case types.Uint:
		return uint64(v), nil
	case types.Double:
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v has no JSON form", f)
		}
		return float64(v), nil
	case types.String:
		return string(v), nil
	case types.Bytes:
		return []byte(v), nil
	case types.Timestamp:
		return v.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return v.Duration.String(), nil
	case *types.Optional:
		if !v.HasValue() {
			return nil, nil
		}
		return jsonValue(v.GetValue())
	case traits.Mapper:
		m := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			var key string
			switch k := k.(type) {
			case types.String:
				key = string(k)
			case types.Int, types.Uint, types.Bool:
				key = fmt.Sprint(k.Value())
			default:
				return nil, fmt.Errorf("a map key of type %s has no JSON form", k.Type().TypeName())
			}
			e, err := jsonValue(v.Get(k))
			if err != nil {
				return nil, err
			}
			m[key] = e
		}
		return m, nil
	case traits.Lister:
		l := []any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			e, err := jsonValue(it.Next())
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
		return l, nil
	}
	return nil, fmt.Errorf("a value of type %s has no JSON form", v.Type().TypeName())
}

// uuidNamespaces are the RFC 9562 namespaces uuid5 knows by name.
var uuidNamespaces = map[string]uuid.UUID{
	"dns":  uuid.NameSpaceDNS,
	"url":  uuid.NameSpaceURL,
	"oid":  uuid.NameSpaceOID,
	"x500": uuid.NameSpaceX500,
}

func uuid5(nsv, namev ref.Val) ref.Val {
	nsText := string(nsv.(types.String))
	ns, ok := uuidNamespaces[nsText]
	if !ok {
		var err error
		if ns, err = uuid.Parse(nsText); err != nil {
			return errVal("uuid5", "namespace %s is neither a UUID nor one of dns, url, oid, x500", quoted(nsText))
		}
	}
	var name []byte
	switch n := namev.(type) {
	case types.String:
		name = []byte(n)
	case types.Bytes:
		name = n
	}
	return types.String(uuid.NewSHA1(ns, name).String())
}
