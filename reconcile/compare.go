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

// column is a target column as the comparison sees it.
type column struct {
	kind  kind
	scale int // decimal places of a numeric(p,s) / decimal(p,s); -1 unknown
}

// columnOf classifies a target column by its SQL type, as RowReader
// names it (PostgreSQL or MySQL spelling).
func columnOf(sqlType string) column {
	t := strings.ToLower(strings.TrimSpace(sqlType))
	base, args, _ := strings.Cut(t, "(")
	base = strings.TrimSpace(base)
	c := column{scale: -1}
	switch {
	case t == "tinyint(1)" || base == "boolean" || base == "bool":
		c.kind = kindBool
	case slices.Contains(integerTypes, strings.Fields(base + " ")[0]):
		c.kind = kindInt
	case base == "numeric" || base == "decimal" || strings.HasPrefix(base, "decimal") || strings.HasPrefix(base, "numeric"):
		c.kind = kindDecimal
		if _, s, ok := strings.Cut(strings.TrimSuffix(args, ")"), ","); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(s, ")"))); err == nil {
				c.scale = n
			}
		}
	case base == "real" || base == "double precision" || base == "float" || base == "double" || strings.HasPrefix(base, "float") || strings.HasPrefix(base, "double"):
		c.kind = kindFloat
	case base == "bytea" || strings.Contains(base, "blob") || strings.Contains(base, "binary"):
		c.kind = kindBytes
	case strings.HasPrefix(base, "timestamp") || strings.HasPrefix(base, "datetime"):
		c.kind = kindTime
	case base == "json" || base == "jsonb":
		c.kind = kindJSON
	case base == "uuid":
		c.kind = kindUUID
	}
	return c
}

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
// got (what the target holds) are the same data in a column of kind c:
// NULL is distinct from "" and "NULL" (unless null_equals_empty), numbers
// compare exactly by value (-0.0 == 0.0; a decimal rounded to its column's
// scale), timestamps as instants at microsecond precision (milliseconds
// with time_precision_ms), JSON semantically, uuids case-insensitively.
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
		a, aok := number(want)
		b, bok := number(got)
		if aok && bok {
			if c.kind == kindDecimal && c.scale >= 0 {
				a = roundTo(a, c.scale)
			}
			return a.Cmp(b) == 0
		}
	case kindFloat:
		a, aok := float(want)
		b, bok := float(got)
		if aok && bok {
			switch {
			case a == b, math.IsNaN(a) && math.IsNaN(b):
				return true
			case float64(float32(a)) == b: // a float8 value written into a float4 column
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
			prec := time.Microsecond
			if tol.timeMS {
				prec = time.Millisecond
			}
			return a.Truncate(prec).Equal(b.Truncate(prec))
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
	a, b := tol.text(text(want)), tol.text(text(got))
	if tol.caseInsensitive {
		return strings.EqualFold(a, b)
	}
	return a == b
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

func instant(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v, true
	case string:
		s := strings.TrimSpace(v)
		for _, l := range timeLayouts {
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
