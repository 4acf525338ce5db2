package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tandemcdc/tandem/internal/config"
	"github.com/tandemcdc/tandem/transform"
)

// kind is how a target column's values compare.
type kind int

const (
	kindText kind = iota
	kindInt
	kindDecimal
	kindFloat
	kindBool
	kindBytes
	kindTime // a timestamp: compared as an instant
	kindJSON
	kindUUID
)

// column is a target column as the comparison sees it: its kind, and
// what the target database does to a value it stores there (rounds a
// decimal to its scale, a timestamp to its fractional digits, a double to
// a float4; pads or strips a char(n)). The type is parsed once per column
// (columnOf); equal converts each expected value by it.
type column struct {
	kind  kind
	scale int // decimal places of a numeric(p,s) / decimal(p,s); -1 unknown
	// float4 is a PostgreSQL real or a MySQL FLOAT: values are stored as
	// float32.
	float4 bool
	// timeStep is the stored precision of a timestamp, in microseconds (1:
	// timestamp(6), 1000: timestamp(3), 1e6: datetime); 0 is 1.
	timeStep int64
	// mysqlTime is a MySQL or MariaDB DATETIME/TIMESTAMP: digits beyond
	// its precision are truncated (MariaDB, without TIME_ROUND_FRACTIONAL)
	// or rounded (MySQL 8, without TIME_TRUNCATE_FRACTIONAL). The column's
	// type does not say which server it is: either result is what it
	// stores. Otherwise (PostgreSQL) they are rounded half away from zero.
	mysqlTime bool
	// chars is how text is stored: padded, stripped or cut at length
	// characters.
	chars  charRule
	length int // n of a char(n) / varchar(n)
}

// charRule is what a character column does to trailing spaces.
type charRule uint8

const (
	charsAsIs charRule = iota
	// charsLimited is a varchar(n), on either database: trailing spaces
	// beyond n characters are cut; other characters beyond n are an error
	// (the row is refused: nothing to convert).
	charsLimited
	// charsPadded is a PostgreSQL character(n): cut as charsLimited, then
	// padded with spaces to n characters, and read so.
	charsPadded
	// charsStripped is a MySQL/MariaDB CHAR(n): stored padded, read with
	// every trailing space stripped (without PAD_CHAR_TO_FULL_LENGTH).
	charsStripped
)

// columnOf classifies a target column by its SQL type, as RowReader
// names it (PostgreSQL or MySQL spelling), with the type modifiers that
// change what it stores: a numeric's scale, a timestamp's fractional
// digits, float4, char(n) and varchar(n). PostgreSQL spells its
// timestamps "timestamp(p) with[out] time zone"; a bare "timestamp(p)" or
// "datetime(p)" is MySQL's.
func columnOf(sqlType string) column {
	t := strings.ToLower(strings.TrimSpace(sqlType))
	base, args, _ := strings.Cut(t, "(")
	base = strings.TrimSpace(base)
	args, rest, _ := strings.Cut(args, ")")
	c := column{scale: -1}
	switch {
	case t == "tinyint(1)" || base == "boolean" || base == "bool":
		c.kind = kindBool
	case slices.Contains(integerTypes, strings.Fields(base + " ")[0]):
		c.kind = kindInt
	case base == "numeric" || base == "decimal" || strings.HasPrefix(base, "decimal") || strings.HasPrefix(base, "numeric"):
		c.kind = kindDecimal
		if _, s, ok := strings.Cut(args, ","); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				c.scale = n
			}
		}
	case base == "real" || base == "float4" || strings.Fields(base + " ")[0] == "float":
		// PostgreSQL names a float(p) real or double precision; MySQL's
		// COLUMN_TYPE names a FLOAT(p) float up to p = 24, double above.
		// MySQL's deprecated FLOAT(M,D) also rounds to D places: not
		// modelled.
		c.kind, c.float4 = kindFloat, true
	case base == "double precision" || base == "float" || base == "double" || strings.HasPrefix(base, "float") || strings.HasPrefix(base, "double"):
		c.kind = kindFloat
	case base == "bytea" || strings.Contains(base, "blob") || strings.Contains(base, "binary"):
		c.kind = kindBytes
	case strings.HasPrefix(base, "timestamp") || strings.HasPrefix(base, "datetime"):
		c.kind = kindTime
		c.mysqlTime = base == "datetime" || (base == "timestamp" && strings.TrimSpace(rest) == "")
		digits := 6 // PostgreSQL's default
		if c.mysqlTime {
			digits = 0 // MySQL's
		}
		if args != "" {
			if n, err := strconv.Atoi(strings.TrimSpace(args)); err == nil && n >= 0 && n <= 6 {
				digits = n
			}
		}
		c.timeStep = pow10[6-digits]
	case base == "json" || base == "jsonb":
		c.kind = kindJSON
	case base == "uuid":
		c.kind = kindUUID
	case base == "character" || base == "char" || base == "character varying" || base == "varchar":
		// MySQL's CHAR(0) and VARCHAR(0) hold only "" (and NULL): spaces
		// are cut from them as from any other length.
		n, err := strconv.Atoi(strings.TrimSpace(args))
		if err != nil || n < 0 {
			break
		}
		c.length = n
		switch base {
		case "character":
			c.chars = charsPadded
		case "char":
			c.chars = charsStripped
		default:
			c.chars = charsLimited
		}
	}
	return c
}

// pow10 are the powers of ten an int64 holds.
var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// integerTypes are the integer types' first words (PostgreSQL and MySQL:
// "bigint unsigned" is a bigint).
var integerTypes = []string{"smallint", "integer", "int", "bigint", "tinyint", "mediumint", "int2", "int4", "int8",
	"serial", "bigserial", "smallserial", "year", "oid"}

// tolerance is the set of reconcile.tolerate rules in force.
type tolerance struct {
	nullEqualsEmpty, trimSpace, floatEpsilon, timeMS, caseInsensitive bool
}

func newTolerance(rules []config.Tolerance) tolerance {
	return tolerance{
		nullEqualsEmpty: slices.Contains(rules, config.TolerateNullEqualsEmpty),
		trimSpace:       slices.Contains(rules, config.TolerateTrimSpace),
		floatEpsilon:    slices.Contains(rules, config.TolerateFloatEpsilon),
		timeMS:          slices.Contains(rules, config.TolerateTimePrecisionMS),
		caseInsensitive: slices.Contains(rules, config.TolerateCaseInsensitive),
	}
}

// floatEpsilon is float_epsilon's relative tolerance: a float4 column
// keeps about 7 significant digits.
const floatEpsilon = 1e-6

// equal reports whether want (what the mapping computes for a column) and
// got (what the target holds) are the same data in a column c: want is
// first converted as the target database stores it in c (stored), then
// NULL is distinct from "" and "NULL" (unless null_equals_empty), numbers
// compare exactly by value (-0.0 == 0.0), timestamps as instants, JSON
// semantically, uuids case-insensitively.
func (tol tolerance) equal(want, got any, c column) bool {
	// Most values arrive spelled alike on both sides: no parsing then.
	switch w := want.(type) {
	case string:
		if g, ok := got.(string); ok && w == g {
			return true
		}
	case int64:
		if g, ok := got.(int64); ok && w == g {
			return true
		}
	case bool:
		if g, ok := got.(bool); ok && w == g {
			return true
		}
	case float64:
		if g, ok := got.(float64); ok && w == g {
			return true
		}
	}
	if want == nil || got == nil {
		if want == nil && got == nil {
			return true
		}
		if tol.nullEqualsEmpty {
			other := want
			if other == nil {
				other = got
			}
			if s, ok := other.(string); ok {
				return tol.text(s) == ""
			}
		}
		return false
	}
	switch c.kind {
	case kindInt, kindDecimal:
		if c.kind == kindDecimal {
			if eq, ok := c.sameDecimal(want, got); ok {
				return eq
			}
		}
		a, aok := number(want)
		b, bok := number(got)
		if aok && bok {
			if c.kind == kindDecimal {
				if f, ok := want.(float64); ok {
					// Both sinks send a double as its shortest text
					// (PostgreSQL) or the server reads it so (MySQL):
					// 1.005 is 1.005, not 1.00499999999999989...
					a, _ = new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
				}
				if c.scale >= 0 && !fitsScale(want, c.scale) {
					a = roundTo(a, c.scale)
				}
			}
			return a.Cmp(b) == 0
		}
	case kindFloat:
		a, aok := float(want)
		b, bok := float(got)
		if aok && bok {
			if c.float4 {
				// The column holds a float32; got may be its exact value
				// or its shortest text read as a double.
				a, b = float64(float32(a)), float64(float32(b))
			}
			switch {
			case a == b, math.IsNaN(a) && math.IsNaN(b):
				return true
			case tol.floatEpsilon:
				return math.Abs(a-b) <= floatEpsilon*math.Max(math.Abs(a), math.Abs(b))
			}
			return false
		}
	case kindBool:
		a, aok := truth(want)
		b, bok := truth(got)
		if aok && bok {
			return a == b
		}
	case kindBytes:
		return bytes.Equal(asBytes(want), asBytes(got))
	case kindTime:
		a, aok := instant(want)
		b, bok := instant(got)
		if aok && bok {
			return tol.sameInstant(a, b, c)
		}
	case kindJSON:
		a, aok := jsonValue(want)
		b, bok := jsonValue(got)
		if aok && bok {
			return reflect.DeepEqual(a, b)
		}
	case kindUUID:
		return strings.EqualFold(tol.text(text(want)), tol.text(text(got)))
	}
	w := text(want)
	if c.chars != charsAsIs {
		w = c.storedText(w)
	}
	a, b := tol.text(w), tol.text(text(got))
	if tol.caseInsensitive {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// sameInstant reports whether want, stored in timestamp column c, is the
// instant got read from it: both at c's precision (time_precision_ms: at
// most milliseconds), rounded as the database rounds. got, read from c, is
// at c's precision already, unless time_precision_ms cuts it further.
func (tol tolerance) sameInstant(want, got time.Time, c column) bool {
	step := max(c.timeStep, 1)
	if tol.timeMS {
		step = max(step, 1000)
	}
	if !c.mysqlTime {
		return roundHalfAway(want, step).Equal(roundHalfAway(got, step))
	}
	return truncMicros(want, step).Equal(truncMicros(got, step)) || roundHalfUp(want, step).Equal(roundHalfUp(got, step))
}

// pgEpoch is PostgreSQL's timestamp epoch: it stores microseconds since
// then, and rounds them away from it.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// roundHalfAway is t as PostgreSQL stores it in a timestamp(p) column
// whose precision is step microseconds: t rounded to microseconds, then
// to a multiple of step, halves away from its epoch (2000-01-01; before
// it, a half rounds earlier). As AdjustTimestampForTypmod.
func roundHalfAway(t time.Time, step int64) time.Time {
	us := t.Round(time.Microsecond).Sub(pgEpoch).Microseconds()
	if step > 1 {
		if us >= 0 {
			us = (us + step/2) / step * step
		} else {
			us = -((-us + step/2) / step * step)
		}
	}
	return pgEpoch.Add(time.Duration(us) * time.Microsecond)
}

// truncMicros is t as MariaDB stores it in a DATETIME(p) or TIMESTAMP(p)
// whose precision is step microseconds: the fractional second cut to p
// digits (microseconds first, as the sink sends it).
func truncMicros(t time.Time, step int64) time.Time {
	return t.Round(time.Microsecond).Truncate(time.Duration(step) * time.Microsecond)
}

// roundHalfUp is t as MySQL 8 stores it in a DATETIME(p) or TIMESTAMP(p):
// rounded to p digits, halves up.
func roundHalfUp(t time.Time, step int64) time.Time {
	return t.Round(time.Microsecond).Round(time.Duration(step) * time.Microsecond)
}

// storedText is s as a character column c stores and reads it (c.chars
// is not charsAsIs). Text longer than the column, but for trailing
// spaces, is refused by both databases (PostgreSQL always, MySQL in the
// sink's strict sql_mode): it is left as it is, and differs.
func (c column) storedText(s string) string {
	if c.chars == charsStripped {
		return strings.TrimRight(s, " ")
	}
	if len(s) > c.length && utf8.RuneCountInString(s) > c.length {
		// Cut the spaces beyond length, when only spaces are.
		trimmed := strings.TrimRight(s, " ")
		if n := utf8.RuneCountInString(trimmed); n <= c.length {
			s = s[:len(trimmed)+c.length-n]
		}
	}
	if c.chars == charsPadded {
		if n := utf8.RuneCountInString(s); n < c.length {
			s += strings.Repeat(" ", c.length-n)
		}
	}
	return s
}

// text applies trim_space.
func (tol tolerance) text(s string) string {
	if tol.trimSpace {
		return strings.TrimSpace(s)
	}
	return s
}

// text is a value's text form, as a sink writes it into a text column.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case map[string]any, []any:
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

// number is v as an exact number: transform.ExactNumber's, numeric text
// included, and booleans (a MySQL BOOL is a TINYINT).
func number(v any) (*big.Rat, bool) {
	if b, ok := v.(bool); ok {
		if b {
			return big.NewRat(1, 1), true
		}
		return new(big.Rat), true
	}
	return transform.ExactNumber(v, true)
}

// roundTo rounds r half away from zero to places decimal places, as a
// numeric column stores a value with more.
func roundTo(r *big.Rat, places int) *big.Rat {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(scale))
	num, den := scaled.Num(), scaled.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	// |m|*2 >= den: round away from zero.
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return new(big.Rat).SetFrac(q, scale)
}

// sameDecimal compares want, rounded to c's scale as the column stores it,
// with got, when both are decimal text of at most 18 digits (or int64s):
// in fixed point, without big.Rat's allocations. ok is false otherwise.
func (c column) sameDecimal(want, got any) (equal, ok bool) {
	if f, isFloat := want.(float64); isFloat {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return false, false
		}
		want = strconv.FormatFloat(f, 'f', -1, 64) // as the sinks send it
	}
	w, ws, ok := fixed(want)
	if !ok {
		return false, false
	}
	g, gs, ok := fixed(got)
	if !ok {
		return false, false
	}
	if c.scale >= 0 && ws > c.scale {
		// Half away from zero, as numeric and DECIMAL round.
		p := pow10[ws-c.scale]
		q, r := w/p, w%p
		if 2*r >= p {
			q++
		} else if 2*r <= -p {
			q--
		}
		w, ws = q, c.scale
	}
	for ; ws < gs; ws++ {
		if w > math.MaxInt64/10 || w < math.MinInt64/10 {
			return false, false
		}
		w *= 10
	}
	for ; gs < ws; gs++ {
		if g > math.MaxInt64/10 || g < math.MinInt64/10 {
			return false, false
		}
		g *= 10
	}
	return w == g, true
}

// fixed is v as a fixed-point number, mantissa and decimal places, when it
// is an int64 or decimal text of at most 18 digits without an exponent.
func fixed(v any) (mantissa int64, places int, ok bool) {
	switch v := v.(type) {
	case int64:
		return v, 0, true
	case string:
		s := strings.TrimSpace(v)
		neg := false
		if s != "" && (s[0] == '-' || s[0] == '+') {
			neg = s[0] == '-'
			s = s[1:]
		}
		digits, dot := 0, false
		for i := 0; i < len(s); i++ {
			switch ch := s[i]; {
			case ch >= '0' && ch <= '9':
				if digits == 18 {
					return 0, 0, false
				}
				mantissa = mantissa*10 + int64(ch-'0')
				digits++
				if dot {
					places++
				}
			case ch == '.' && !dot:
				dot = true
			default:
				return 0, 0, false
			}
		}
		if digits == 0 {
			return 0, 0, false
		}
		if neg {
			mantissa = -mantissa
		}
		return mantissa, places, true
	}
	return 0, 0, false
}

// fitsScale reports whether v is decimal text with at most scale places
// (no exponent), which a decimal column of that scale stores as it is.
func fitsScale(v any, scale int) bool {
	s, ok := v.(string)
	if !ok {
		_, isInt := v.(int64)
		return isInt
	}
	_, frac, _ := strings.Cut(s, ".")
	return len(frac) <= scale && !strings.ContainsAny(s, "eE")
}

func float(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

func truth(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case int64:
		return v != 0, true
	case string:
		b, err := strconv.ParseBool(v)
		return b, err == nil
	}
	return false, false
}

func asBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return []byte(text(v))
}

// timeLayouts are the timestamp texts sources, sinks and CEL produce:
// PostgreSQL's (offset +hh, +hh:mm), MySQL's (no zone: UTC) and RFC 3339.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07:00:00",
	"2006-01-02 15:04:05.999999999",
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
}

// zonelessLayouts are timeLayouts without a zone.
var zonelessLayouts = []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

func instant(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v, true
	case string:
		s := strings.TrimSpace(v)
		layouts := timeLayouts
		if strings.LastIndexAny(s, "+-Z") < len("2006-01-02") {
			layouts = zonelessLayouts // MySQL's: no parse fails first
		}
		for _, l := range layouts {
			if t, err := time.Parse(l, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// jsonValue is v as a JSON value with exact numbers, so {"a":1.0} and
// {"a": 1} compare equal and key order does not matter.
func jsonValue(v any) (any, bool) {
	var raw []byte
	switch v := v.(type) {
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, false
		}
		raw = b
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, false
	}
	return exactNumbers(out), true
}

// jsonNumber is a JSON number's exact value, apart from strings.
type jsonNumber string

// exactNumbers replaces json.Numbers with their exact values.
func exactNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(v)); ok {
			return jsonNumber(r.RatString())
		}
		return jsonNumber(v)
	case map[string]any:
		for k, e := range v {
			v[k] = exactNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = exactNumbers(e)
		}
	}
	return v
}
