package change

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DecimalMode is Debezium's decimal.handling.mode: how DECIMAL and NUMERIC
// values are written.
type DecimalMode string

// The decimal modes.
const (
	// DecimalString writes the exact decimal text ("1234.50"): readable by
	// any consumer without the schema. tandem's default.
	DecimalString DecimalMode = "string"
	// DecimalDouble writes a JSON number, which may round.
	DecimalDouble DecimalMode = "double"
	// DecimalPrecise writes Kafka Connect's Decimal: the base64 of the
	// unscaled value's big-endian two's complement, the scale in the schema
	// (io.debezium.data.VariableScaleDecimal {scale, value} when the column
	// has none). Debezium's default, usable only with the schema.
	DecimalPrecise DecimalMode = "precise"
)

// TimeMode is Debezium's time.precision.mode: how DATE, TIME and
// TIMESTAMP (without time zone) values are written.
type TimeMode string

// The time precision modes.
const (
	// TimeAdaptive follows the column's precision: milliseconds up to 3
	// fractional digits, microseconds beyond (io.debezium.time.*).
	TimeAdaptive TimeMode = "adaptive"
	// TimeAdaptiveMicros is TimeAdaptive with TIME always in microseconds.
	TimeAdaptiveMicros TimeMode = "adaptive_time_microseconds"
	// TimeConnect uses Kafka Connect's own Date, Time and Timestamp, all
	// in milliseconds.
	TimeConnect TimeMode = "connect"
)

// Unavailable is what Debezium writes for a value the source did not send
// (an unchanged TOASTed value), its unavailable.value.placeholder default.
const Unavailable = "__debezium_unavailable_value"

// sqlType is a column's source type as Event.SQLTypes names it: a lower-case
// name and its precision and scale ("timestamptz(6)", "numeric(12,2)",
// "bit(5)", "bigint unsigned").
type sqlType struct {
	name       string
	prec, sc   int
	hasPrec    bool
	hasScale   bool
	connectorK byte // 'p' postgresql, 'm' mysql
}

func parseSQLType(connector, s string) sqlType {
	t := sqlType{name: s, connectorK: 'p'}
	if connector == "mysql" {
		t.connectorK = 'm'
	}
	name, args, ok := strings.Cut(s, "(")
	if !ok {
		return t
	}
	rest := ""
	args, rest, _ = strings.Cut(args, ")")
	t.name = name + rest
	p, s2, hasScale := strings.Cut(args, ",")
	if n, err := strconv.Atoi(p); err == nil {
		t.prec, t.hasPrec = n, true
	}
	if n, err := strconv.Atoi(s2); hasScale && err == nil {
		t.sc, t.hasScale = n, true
	}
	return t
}

// fsp is the column's fractional-second digits: its precision, or 6 when
// the type has none (PostgreSQL's default).
func (t sqlType) fsp() int {
	if t.hasPrec {
		return t.prec
	}
	if t.connectorK == 'm' {
		return 0
	}
	return 6
}

// codec turns one column's source values into Debezium's and back. enc
// reports false when the value has no Debezium form (an infinity, a zero
// date, a year before 1 AD): then the source value is written as it is.
// dec reads a value enc wrote back to the source value.
type codec struct {
	schema  connectSchema
	enc     func(v any) (any, bool)
	dec     func(raw jsontext.Value, t Type) (any, error)
	decKind jsontext.Kind // the JSON kind enc writes; another kind is a source value written as it is
}

// connectSchema is a column's Kafka Connect schema, for the schema form.
type connectSchema struct {
	typ     string // int16, int32, int64, float, double, boolean, string, bytes, struct
	name    string // semantic type, "" for none
	version int
	params  [][2]string
}

// rawNumber is JSON number text, appended as it is.
type rawNumber string

// rawObject is a JSON object's text, appended as it is.
type rawObject string

// codecKey identifies a codec: the same for every column of one type.
type codecKey struct {
	connector, sql string
	typ            Type
	dec            DecimalMode
	tm             TimeMode
}

var codecs sync.Map // codecKey -> *codec

// codecFor returns the codec of a column: its logical type t and source
// type sql as the connector names it. Every column has one; columns whose
// value Debezium writes as tandem does get identity codecs.
func codecFor(connector string, t Type, sql string, dm DecimalMode, tm TimeMode) *codec {
	k := codecKey{connector, sql, t, dm, tm}
	if c, ok := codecs.Load(k); ok {
		return c.(*codec)
	}
	c := newCodec(parseSQLType(connector, sql), t, dm, tm)
	codecs.Store(k, c)
	return c
}

func newCodec(st sqlType, t Type, dm DecimalMode, tm TimeMode) *codec {
	if c := temporalCodec(st, t, tm); c != nil {
		return c
	}
	switch st.name {
	case "numeric", "decimal":
		return decimalCodec(st, dm)
	case "bigint unsigned":
		return &codec{schema: connectSchema{typ: "int64"}, decKind: '0',
			enc: func(v any) (any, bool) {
				s, ok := v.(string)
				return rawNumber(s), ok
			},
			dec: func(raw jsontext.Value, _ Type) (any, error) { return string(raw), nil }}
	case "bit":
		return bitCodec(st, t)
	}
	return identityCodec(st, t)
}

// identityCodec writes values as tandem always has; only the schema
// depends on the source type.
func identityCodec(st sqlType, t Type) *codec {
	s := connectSchema{typ: "string"}
	switch t {
	case TypeInt:
		s.typ = "int64"
		switch st.name {
		case "int2", "smallint", "tinyint", "tinyint unsigned":
			s.typ = "int16"
		case "int4", "integer", "int", "mediumint", "smallint unsigned", "mediumint unsigned":
			s.typ = "int32"
		case "year":
			s = connectSchema{typ: "int32", name: "io.debezium.time.Year", version: 1}
		}
	case TypeFloat:
		s.typ = "double"
		if st.name == "float4" || st.name == "float" {
			s.typ = "float"
		}
	case TypeBool:
		s.typ = "boolean"
	case TypeBytes:
		s.typ = "bytes"
	case TypeJSON:
		s.name, s.version = "io.debezium.data.Json", 1
	case TypeDecimal:
		// a decimal with no numeric source type: its text
	default:
		switch st.name {
		case "uuid":
			s.name, s.version = "io.debezium.data.Uuid", 1
		case "enum":
			s.name, s.version = "io.debezium.data.Enum", 1
		case "set":
			s.name, s.version = "io.debezium.data.EnumSet", 1
		}
	}
	return &codec{schema: s}
}

// temporalCodec is the codec of a date or time column, nil for others.
func temporalCodec(st sqlType, t Type, tm TimeMode) *codec {
	if t != TypeTime {
		return nil
	}
	mysql := st.connectorK == 'm'
	switch st.name {
	case "date":
		s := connectSchema{typ: "int32", name: "io.debezium.time.Date", version: 1}
		if tm == TimeConnect {
			s = connectSchema{typ: "int32", name: "org.apache.kafka.connect.data.Date", version: 1}
		}
		return numberCodec(s, func(v string) (int64, bool) {
			d, ok := parseDate(v)
			return d, ok
		}, func(n int64) string { return formatDate(n) })
	case "timestamp", "datetime":
		if st.name == "timestamp" && mysql {
			return zonedCodec(st, "io.debezium.time.ZonedTimestamp", true)
		}
		unit, s := time.Microsecond, connectSchema{typ: "int64", name: "io.debezium.time.MicroTimestamp", version: 1}
		switch {
		case tm == TimeConnect:
			unit, s = time.Millisecond, connectSchema{typ: "int64", name: "org.apache.kafka.connect.data.Timestamp", version: 1}
		case st.fsp() <= 3:
			unit, s = time.Millisecond, connectSchema{typ: "int64", name: "io.debezium.time.Timestamp", version: 1}
		}
		return numberCodec(s, func(v string) (int64, bool) { return parseLocalTimestamp(v, unit) },
			func(n int64) string { return formatLocalTimestamp(n, unit, st) })
	case "timestamptz":
		return zonedCodec(st, "io.debezium.time.ZonedTimestamp", true)
	case "timetz":
		return zonedCodec(st, "io.debezium.time.ZonedTime", false)
	case "time":
		unit, s := time.Microsecond, connectSchema{typ: "int64", name: "io.debezium.time.MicroTime", version: 1}
		switch {
		case tm == TimeConnect:
			unit, s = time.Millisecond, connectSchema{typ: "int32", name: "org.apache.kafka.connect.data.Time", version: 1}
		case tm == TimeAdaptive && st.fsp() <= 3:
			unit, s = time.Millisecond, connectSchema{typ: "int32", name: "io.debezium.time.Time", version: 1}
		}
		return numberCodec(s, func(v string) (int64, bool) { return parseTimeOfDay(v, unit) },
			func(n int64) string { return formatTimeOfDay(n, unit, st) })
	}
	return nil
}

// numberCodec is the codec of a value written as a whole number: parse
// reads the source text, format writes it back.
func numberCodec(s connectSchema, parse func(string) (int64, bool), format func(int64) string) *codec {
	return &codec{schema: s, decKind: '0',
		enc: func(v any) (any, bool) {
			text, ok := v.(string)
			if !ok {
				return nil, false
			}
			n, ok := parse(text)
			return n, ok
		},
		dec: func(raw jsontext.Value, _ Type) (any, error) {
			n, err := strconv.ParseInt(string(raw), 10, 64)
			if err != nil {
				return nil, err
			}
			return format(n), nil
		}}
}

// zonedCodec writes a time with a zone as Debezium's ISO-8601 UTC text,
// the source's zone "+00" (PostgreSQL) or none (MySQL TIMESTAMP, read
// in UTC) becoming "Z"; withDate for timestamps.
func zonedCodec(st sqlType, name string, withDate bool) *codec {
	mysql := st.connectorK == 'm'
	return &codec{schema: connectSchema{typ: "string", name: name, version: 1}, decKind: '"',
		enc: func(v any) (any, bool) {
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			if mysql {
				iso, ok := isoZoned(s, "", withDate)
				return trimFraction(iso), ok
			}
			return isoZoned(s, "+00", withDate)
		},
		dec: func(raw jsontext.Value, _ Type) (any, error) {
			s, err := jsonString(raw)
			if err != nil {
				return nil, err
			}
			if src, ok := fromISOZoned(s, mysql, withDate); ok {
				if mysql {
					src = padFraction(src, st.fsp())
				}
				return src, nil
			}
			return s, nil // a value Debezium has no form for, as the source wrote it
		}}
}

// isoZoned turns "2024-03-01 08:20:30.1+00" into "2024-03-01T08:20:30.1Z":
// only for the zone suffix given, and only where the text is plain
// (four-digit AD years).
func isoZoned(s, zone string, withDate bool) (string, bool) {
	body, ok := strings.CutSuffix(s, zone)
	if !ok {
		return "", false
	}
	if withDate {
		if len(body) < 19 || body[10] != ' ' || !plainDate(body[:10]) || !plainClock(body[11:]) {
			return "", false
		}
		return body[:10] + "T" + body[11:] + "Z", true
	}
	if !plainClock(body) {
		return "", false
	}
	return body + "Z", true
}

// fromISOZoned reverses isoZoned.
func fromISOZoned(s string, mysql, withDate bool) (string, bool) {
	body, ok := strings.CutSuffix(s, "Z")
	if !ok {
		return "", false
	}
	zone := "+00"
	if mysql {
		zone = ""
	}
	if withDate {
		if len(body) < 19 || body[10] != 'T' || !plainDate(body[:10]) || !plainClock(body[11:]) {
			return "", false
		}
		return body[:10] + " " + body[11:] + zone, true
	}
	if !plainClock(body) {
		return "", false
	}
	return body + zone, true
}

// plainDate: "YYYY-MM-DD", digits only.
func plainDate(s string) bool {
	return len(s) == 10 && s[4] == '-' && s[7] == '-' && digits(s[:4]) && digits(s[5:7]) && digits(s[8:]) && s[:4] != "0000"
}

// plainClock: "HH:MM:SS" and an optional fraction, hours below 24.
func plainClock(s string) bool {
	if len(s) < 8 || s[2] != ':' || s[5] != ':' || !digits(s[:2]) || !digits(s[3:5]) || !digits(s[6:8]) || s[:2] > "23" {
		return false
	}
	f := s[8:]
	return f == "" || len(f) > 1 && len(f) <= 10 && f[0] == '.' && digits(f[1:])
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// parseDate reads "YYYY-MM-DD" as days since the epoch.
func parseDate(s string) (int64, bool) {
	if !plainDate(s) {
		return 0, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, false
	}
	// From Unix seconds: a time.Duration holds only ±292 years.
	return floorDiv(t.Unix(), 24*60*60), t.Year() >= 1
}

func formatDate(days int64) string {
	return epoch.AddDate(0, 0, int(days)).Format(time.DateOnly)
}

// parseLocalTimestamp reads "YYYY-MM-DD HH:MM:SS[.f]" as units since the
// epoch, the text taken as UTC.
func parseLocalTimestamp(s string, unit time.Duration) (int64, bool) {
	if len(s) < 19 || s[10] != ' ' || !plainDate(s[:10]) || !plainClock(s[11:]) {
		return 0, false
	}
	t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
	if err != nil {
		return 0, false
	}
	// From Unix seconds: a time.Duration holds only ±292 years.
	return t.Unix()*int64(time.Second/unit) + int64(t.Nanosecond())/int64(unit), true
}

func formatLocalTimestamp(n int64, unit time.Duration, st sqlType) string {
	perSec := int64(time.Second / unit)
	t := time.Unix(floorDiv(n, perSec), (n-floorDiv(n, perSec)*perSec)*int64(unit)).UTC()
	return t.Format(time.DateTime) + fraction(t.Nanosecond(), st)
}

// parseTimeOfDay reads "[-]H+:MM:SS[.f]" as units since midnight (MySQL's
// TIME is a duration: negative, or past 24 hours).
func parseTimeOfDay(s string, unit time.Duration) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	h, rest, ok := strings.Cut(s, ":")
	if !ok || !digits(h) || len(rest) < 5 || rest[2] != ':' || !digits(rest[:2]) || !digits(rest[3:5]) {
		return 0, false
	}
	hours, _ := strconv.ParseInt(h, 10, 64)
	mins, _ := strconv.ParseInt(rest[:2], 10, 64)
	secs, _ := strconv.ParseInt(rest[3:5], 10, 64)
	var nanos int64
	if f := rest[5:]; f != "" {
		if f[0] != '.' || !digits(f[1:]) || len(f) > 10 {
			return 0, false
		}
		nanos, _ = strconv.ParseInt((f[1:] + "000000000")[:9], 10, 64)
	}
	if mins > 59 || secs > 59 {
		return 0, false
	}
	total := ((hours*60+mins)*60+secs)*int64(time.Second) + nanos
	if neg {
		total = -total
	}
	return total / int64(unit), true
}

func formatTimeOfDay(n int64, unit time.Duration, st sqlType) string {
	d := n * int64(unit)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	secs := d / int64(time.Second)
	return fmt.Sprintf("%s%02d:%02d:%02d", sign, secs/3600, secs/60%60, secs%60) + fraction(int(d%int64(time.Second)), st)
}

// fraction writes a fraction of a second as the source does: MySQL with
// exactly the column's digits, PostgreSQL without trailing zeros.
func fraction(nanos int, st sqlType) string {
	if st.connectorK == 'm' {
		if st.fsp() == 0 {
			return ""
		}
		return "." + fmt.Sprintf("%09d", nanos)[:st.fsp()]
	}
	if nanos == 0 {
		return ""
	}
	return "." + strings.TrimRight(fmt.Sprintf("%09d", nanos), "0")
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// decimalCodec writes DECIMAL and NUMERIC as decimal.handling.mode says.
func decimalCodec(st sqlType, dm DecimalMode) *codec {
	switch dm {
	case DecimalDouble:
		return &codec{schema: connectSchema{typ: "double"}, decKind: '0',
			enc: func(v any) (any, bool) {
				s, ok := v.(string)
				if !ok {
					return nil, false
				}
				f, err := strconv.ParseFloat(s, 64)
				if err != nil || f != f || f > 1.7e308 || f < -1.7e308 {
					return nil, false
				}
				return f, true
			},
			dec: func(raw jsontext.Value, _ Type) (any, error) { return string(raw), nil }}
	case DecimalPrecise:
		return preciseCodec(st)
	}
	s := connectSchema{typ: "string"}
	return &codec{schema: s}
}

// preciseCodec writes Kafka Connect's Decimal (fixed scale) or Debezium's
// VariableScaleDecimal (PostgreSQL NUMERIC without a scale).
func preciseCodec(st sqlType) *codec {
	variable := !st.hasScale && st.connectorK == 'p'
	s := connectSchema{typ: "bytes", name: "org.apache.kafka.connect.data.Decimal", version: 1,
		params: [][2]string{{"scale", strconv.Itoa(st.sc)}}}
	if st.hasPrec {
		s.params = append(s.params, [2]string{"connect.decimal.precision", strconv.Itoa(st.prec)})
	}
	kind := jsontext.Kind('"')
	if variable {
		s = connectSchema{typ: "struct", name: "io.debezium.data.VariableScaleDecimal", version: 1}
		kind = '{'
	}
	return &codec{schema: s, decKind: kind,
		enc: func(v any) (any, bool) {
			text, ok := v.(string)
			if !ok {
				return nil, false
			}
			unscaled, scale, ok := parseDecimal(text)
			if !ok || !variable && scale != st.sc {
				return nil, false
			}
			if variable {
				b64 := base64.StdEncoding.EncodeToString(twosComplement(unscaled))
				return rawObject(`{"scale":` + strconv.Itoa(scale) + `,"value":"` + b64 + `"}`), true
			}
			return twosComplement(unscaled), true
		},
		dec: func(raw jsontext.Value, _ Type) (any, error) { return decodePrecise(raw, variable, st.sc) }}
}

// parseDecimal reads "-123.450" as -123450 and scale 3.
func parseDecimal(s string) (*big.Int, int, bool) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	ip, fp, _ := strings.Cut(body, ".")
	if !digits(ip) || fp != "" && !digits(fp) || strings.HasSuffix(body, ".") {
		return nil, 0, false
	}
	n, ok := new(big.Int).SetString(ip+fp, 10)
	if !ok {
		return nil, 0, false
	}
	if neg {
		n.Neg(n)
	}
	return n, len(fp), true
}

// twosComplement is n's minimal big-endian two's complement, as Java's
// BigInteger.toByteArray.
func twosComplement(n *big.Int) []byte {
	if n.Sign() >= 0 {
		b := n.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -n = ^(n-1): the complement of |n|-1's bytes, sign-extended.
	m := new(big.Int).Neg(n)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xFF}, b...)
	}
	return b
}

func fromTwosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

func formatDecimal(n *big.Int, scale int) string {
	neg := n.Sign() < 0
	s := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func decodePrecise(raw jsontext.Value, variable bool, scale int) (any, error) {
	var b64 string
	if variable {
		var v struct {
			Scale int    `json:"scale"`
			Value string `json:"value"`
		}
		if err := jsonv2.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		b64, scale = v.Value, v.Scale
	} else {
		s, err := jsonString(raw)
		if err != nil {
			return nil, err
		}
		b64 = s
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	return formatDecimal(fromTwosComplement(b), scale), nil
}

// bitCodec writes BIT(1) as a boolean and BIT(n) as io.debezium.data.Bits,
// the bits little-endian in (n+7)/8 bytes. tandem's value is an int64, or
// the decimal text of a BIT(64).
func bitCodec(st sqlType, t Type) *codec {
	n := max(st.prec, 1)
	if n == 1 {
		return &codec{schema: connectSchema{typ: "boolean"}, decKind: 't',
			enc: func(v any) (any, bool) {
				i, ok := v.(int64)
				return i == 1, ok && (i == 0 || i == 1)
			},
			dec: func(raw jsontext.Value, _ Type) (any, error) {
				if raw.Kind() == 't' {
					return int64(1), nil
				}
				return int64(0), nil
			}}
	}
	size := (n + 7) / 8
	return &codec{schema: connectSchema{typ: "bytes", name: "io.debezium.data.Bits", version: 1, params: [][2]string{{"length", strconv.Itoa(n)}}}, decKind: '"',
		enc: func(v any) (any, bool) {
			var u uint64
			switch v := v.(type) {
			case int64:
				u = uint64(v)
			case string:
				var err error
				if u, err = strconv.ParseUint(v, 10, 64); err != nil {
					return nil, false
				}
			default:
				return nil, false
			}
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(u >> (8 * i))
			}
			return b, true
		},
		dec: func(raw jsontext.Value, t Type) (any, error) {
			s, err := jsonString(raw)
			if err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, err
			}
			var u uint64
			for i := len(b) - 1; i >= 0; i-- {
				u = u<<8 | uint64(b[i])
			}
			if t == TypeDecimal {
				return strconv.FormatUint(u, 10), nil
			}
			return int64(u), nil
		}}
}

// trimFraction drops the trailing zeros of an ISO time's fraction
// ("...03.654300Z" -> "...03.6543Z"), as Debezium writes them.
func trimFraction(iso string) string {
	dot := strings.LastIndexByte(iso, '.')
	if dot < 0 || !strings.HasSuffix(iso, "Z") {
		return iso
	}
	f := strings.TrimRight(iso[dot+1:len(iso)-1], "0")
	if f == "" {
		return iso[:dot] + "Z"
	}
	return iso[:dot+1] + f + "Z"
}

// padFraction writes a MySQL time's fraction with exactly fsp digits.
func padFraction(s string, fsp int) string {
	body, f, _ := strings.Cut(s, ".")
	if fsp == 0 {
		return body
	}
	return body + "." + (f + strings.Repeat("0", fsp))[:fsp]
}
