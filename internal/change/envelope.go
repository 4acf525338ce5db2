package change

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Type is the logical type of a column's values in an Event and in the
// envelope. Capturers map their database types onto these; the envelope
// carries them (source.types) so a decoder gets back exactly the Go values
// the capturer produced.
type Type string

// The logical types. Values of TypeString, TypeDecimal, TypeTime and TypeJSON
// are strings in the source database's text form.
const (
	TypeInt     Type = "int64"
	TypeFloat   Type = "float64"
	TypeBool    Type = "bool"
	TypeBytes   Type = "bytes"
	TypeString  Type = "string"
	TypeDecimal Type = "decimal"
	TypeTime    Type = "time"
	TypeJSON    Type = "json"
)

// SourceInfo is the envelope's source block, as Decode reads it. The JSON
// value is Debezium's {"before", "after", "source", "op", "ts_ms", ...};
// fields beyond Debezium's (pos, types, sql_types, unsent, exact) are
// tandem's, and Debezium consumers ignore them.
type SourceInfo struct {
	Version   string            `json:"version"`
	Connector string            `json:"connector"`
	Name      string            `json:"name"`
	TsMs      int64             `json:"ts_ms"`
	DB        string            `json:"db"`
	Schema    string            `json:"schema"`
	Table     string            `json:"table"`
	Pos       string            `json:"pos"`
	TxID      uint32            `json:"txId,omitempty"`
	Types     map[string]Type   `json:"types,omitempty"`
	SQLTypes  map[string]string `json:"sql_types,omitempty"`
	// The encoder's options that change values, when not the defaults.
	DecimalMode DecimalMode `json:"decimal.handling.mode,omitempty"`
	TimeMode    TimeMode    `json:"time.precision.mode,omitempty"`
	Oversize    string      `json:"oversize,omitempty"` // a marker's reason (Encoder.Marker)
}

// Encoder turns Events into Kafka record keys and values: Debezium's
// change events, with the value encodings of its PostgreSQL and MySQL
// connectors under the options below (see the README's "Kafka records").
type Encoder struct {
	Version   string // tandem version, for source.version; "" or "dev": the build's (BuildVersion)
	Connector string // "postgresql", "mysql"
	Name      string // logical server name (the topic prefix)
	DB        string // source database name
	Now       func() time.Time

	Decimal DecimalMode // decimal.handling.mode; "" is DecimalString
	Time    TimeMode    // time.precision.mode; "" is TimeAdaptive
	// Tombstones: a delete is followed by a record with the same key and
	// a null value (tombstones.on.delete), which log compaction needs.
	Tombstones bool
	// Schemas writes keys and values in Kafka Connect JsonConverter's
	// {"schema", "payload"} form (schemas.enable).
	Schemas bool

	schemaCache sync.Map // schemaKey -> []byte
}

// codec returns the codec of column col of e.
func (enc *Encoder) codec(e *Event, col string) *codec {
	return codecFor(enc.Connector, e.Types[col], e.SQLTypes[col], cmpOr(enc.Decimal, DecimalString), cmpOr(enc.Time, TimeAdaptive))
}

func cmpOr[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// Key encodes the event's primary key as a JSON object in key-column order,
// e.g. {"id":42}, each value as the envelope writes it. Equal keys encode
// to equal bytes, so one row's changes always land on the same partition.
func (enc *Encoder) Key(e *Event) ([]byte, error) {
	b := make([]byte, 0, 16*len(e.Key)+2)
	if enc.Schemas {
		b = append(b, `{"schema":`...)
		b = enc.appendKeySchema(b, e)
		b = append(b, `,"payload":`...)
	}
	b = append(b, '{')
	row := e.KeyRow()
	for i, c := range e.Key {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		b, _ = jsontext.AppendQuote(b, c)
		b = append(b, ':')
		if b, _, err = appendColumn(b, row[c], enc.codec(e, c), e.Types[c]); err != nil {
			return nil, fmt.Errorf("encode key column %q of %s: %w", c, e.Table, err)
		}
	}
	b = append(b, '}')
	if enc.Schemas {
		b = append(b, '}')
	}
	return b, nil
}

// Value encodes the event as a Debezium change event. It appends JSON
// directly (no reflection): this runs once per captured change. Columns are
// written in table order (sorted when unknown), so equal events encode to
// equal bytes apart from the time of encoding (ts_ms, ts_us, ts_ns).
func (enc *Encoder) Value(e *Event) ([]byte, error) {
	now := time.Now
	if enc.Now != nil {
		now = enc.Now
	}
	b := make([]byte, 0, 384+64*len(e.After)+64*len(e.Before))
	if enc.Schemas {
		b = append(b, `{"schema":`...)
		b = append(b, enc.valueSchema(e)...)
		b = append(b, `,"payload":`...)
	}
	cols := e.Columns
	if cols == nil {
		cols = slices.Sorted(maps.Keys(e.Types))
	}
	var imgs [2]image
	var err error
	b = append(b, `{"before":`...)
	if b, imgs[0], err = enc.appendImage(b, e, e.Before, cols, false); err != nil {
		return nil, fmt.Errorf("encode change of %s: before: %w", e.Table, err)
	}
	b = append(b, `,"after":`...)
	if b, imgs[1], err = enc.appendImage(b, e, e.After, cols, true); err != nil {
		return nil, fmt.Errorf("encode change of %s: after: %w", e.Table, err)
	}
	b = append(b, `,"source":`...)
	b = enc.appendSource(b, e, cols, imgs)
	t := now()
	b = append(b, `,"transaction":null,"op":`...)
	b, _ = jsontext.AppendQuote(b, e.Op.String())
	b = appendTimes(b, t)
	b = append(b, '}')
	if enc.Schemas {
		b = append(b, '}')
	}
	return b, nil
}

// appendTimes appends ts_ms, ts_us and ts_ns of t.
func appendTimes(b []byte, t time.Time) []byte {
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	b = append(b, `,"ts_us":`...)
	b = strconv.AppendInt(b, t.UnixMicro(), 10)
	b = append(b, `,"ts_ns":`...)
	return appendUnixNano(b, t)
}

// The times whose nanoseconds since the epoch an int64 holds (1677-09-21
// to 2262-04-11).
var (
	minUnixNano = time.Unix(0, math.MinInt64)
	maxUnixNano = time.Unix(0, math.MaxInt64)
)

// appendUnixNano appends t's nanoseconds since the epoch, or null (ts_ns
// is optional in the schema) for a time an int64 does not hold them of,
// whose UnixNano is undefined: the zero time of an unknown commit time,
// say.
func appendUnixNano(b []byte, t time.Time) []byte {
	if t.Before(minUnixNano) || t.After(maxUnixNano) {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, t.UnixNano(), 10)
}

// image is what encoding a row image leaves for the source block: the
// columns the source did not send, and the exact source values of columns
// whose Debezium value does not give them back.
type image struct {
	unsent []string
	exact  []byte // `"col":value,...`
}

// appendImage appends a row image as Debezium writes it: every column of
// the table, those the source did not send as null (before) or Debezium's
// unavailable-value placeholder (after, an unchanged TOASTed value).
func (enc *Encoder) appendImage(b []byte, e *Event, r Row, cols []string, after bool) ([]byte, image, error) {
	var img image
	if r == nil {
		return append(b, "null"...), img, nil
	}
	b = append(b, '{')
	n := 0
	write := func(col string, v any, sent bool) error {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		var err error
		if b, err = jsontext.AppendQuote(b, col); err != nil {
			return fmt.Errorf("column name %q: %w", col, err)
		}
		b = append(b, ':')
		c := enc.codec(e, col)
		if !sent {
			img.unsent = append(img.unsent, col)
			b = appendPlaceholder(b, c, after)
			return nil
		}
		var exact bool
		if b, exact, err = appendColumn(b, v, c, e.Types[col]); err != nil {
			return fmt.Errorf("column %q: %w", col, err)
		}
		if exact {
			if len(img.exact) > 0 {
				img.exact = append(img.exact, ',')
			}
			img.exact, _ = jsontext.AppendQuote(img.exact, col)
			img.exact = append(img.exact, ':')
			img.exact, _ = appendValue(img.exact, v)
		}
		return nil
	}
	for _, col := range cols {
		v, sent := r[col]
		if err := write(col, v, sent); err != nil {
			return nil, img, err
		}
	}
	if n-len(img.unsent) < len(r) {
		for _, col := range extraColumns(r, cols) {
			if err := write(col, r[col], true); err != nil {
				return nil, img, err
			}
		}
	}
	return append(b, '}'), img, nil
}

// extraColumns are the columns of r that cols does not list, sorted.
func extraColumns(r Row, cols []string) []string {
	listed := make(map[string]bool, len(cols))
	for _, c := range cols {
		listed[c] = true
	}
	var rest []string
	for c := range r {
		if !listed[c] {
			rest = append(rest, c)
		}
	}
	slices.Sort(rest)
	return rest
}

// appendPlaceholder appends the value of a column the source did not send:
// in an after image Debezium's placeholder where the column's type can hold
// it, otherwise null.
func appendPlaceholder(b []byte, c *codec, after bool) []byte {
	switch {
	case after && c.schema.typ == "string":
		return append(b, `"`+Unavailable+`"`...)
	case after && c.schema.typ == "bytes" && c.schema.name == "":
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, []byte(Unavailable))
		return append(b, '"')
	}
	return append(b, "null"...)
}

// appendColumn appends v as its codec writes it. exact reports that the
// written value does not decode back to v, which must then travel beside
// it (source.exact).
func appendColumn(b []byte, v any, c *codec, t Type) (out []byte, exact bool, err error) {
	if _, isBytes := v.([]byte); v == nil || isBytes || c.enc == nil {
		out, err = appendValue(b, v)
		return out, false, err
	}
	start := len(b)
	w, ok := c.enc(v)
	if !ok {
		// No Debezium form: the source value as it is, and where a decoder
		// would take it for one, beside it. source.exact holds text: a
		// value of another type (outside its column's type) is only
		// written.
		out, err = appendValue(b, v)
		if err != nil {
			return nil, false, err
		}
		_, text := v.(string)
		return out, text && jsontext.Value(out[start:]).Kind() == c.decKind, nil
	}
	if out, err = appendValue(b, w); err != nil {
		return nil, false, err
	}
	back, err := c.dec(jsontext.Value(out[start:]), t)
	if err == nil && back == v {
		return out, false, nil
	}
	if _, text := v.(string); text {
		return out, true, nil
	}
	out, err = appendValue(out[:start], v) // not a text exact can carry: as it is
	return out, false, err
}

// appendSource appends the source block: Debezium's fields for the
// connector, then tandem's.
func (enc *Encoder) appendSource(b []byte, e *Event, cols []string, imgs [2]image) []byte {
	b = append(b, `{"version":`...)
	b, _ = jsontext.AppendQuote(b, BuildVersion(enc.Version))
	b = append(b, `,"connector":`...)
	b, _ = jsontext.AppendQuote(b, enc.Connector)
	b = append(b, `,"name":`...)
	b, _ = jsontext.AppendQuote(b, enc.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, e.Commit.UnixMilli(), 10)
	b = append(b, `,"snapshot":`...)
	if e.Op == OpRead {
		b = append(b, `"true"`...)
	} else {
		b = append(b, `"false"`...)
	}
	b = append(b, `,"db":`...)
	b, _ = jsontext.AppendQuote(b, enc.DB)
	b = append(b, `,"sequence":null,"ts_us":`...)
	b = strconv.AppendInt(b, e.Commit.UnixMicro(), 10)
	b = append(b, `,"ts_ns":`...)
	b = appendUnixNano(b, e.Commit)
	b = append(b, `,"schema":`...)
	b, _ = jsontext.AppendQuote(b, e.Table.Schema)
	b = append(b, `,"table":`...)
	b, _ = jsontext.AppendQuote(b, e.Table.Name)
	pos := ""
	if e.Pos != nil {
		pos = e.Pos.String()
	}
	if enc.Connector != "mysql" {
		b = append(b, `,"txId":`...)
		b = appendUintOrNull(b, uint64(e.TxID), e.TxID != 0)
		lsn, ok := parseLSN(pos)
		b = append(b, `,"lsn":`...)
		b = appendUintOrNull(b, lsn, ok)
		b = append(b, `,"xmin":null`...)
	}
	b = append(b, `,"pos":`...)
	b, _ = jsontext.AppendQuote(b, pos)
	if enc.Connector == "mysql" && e.TxID != 0 {
		b = append(b, `,"txId":`...)
		b = strconv.AppendUint(b, uint64(e.TxID), 10)
	}
	if enc.Decimal != "" && enc.Decimal != DecimalString {
		b = append(b, `,"decimal.handling.mode":`...)
		b, _ = jsontext.AppendQuote(b, string(enc.Decimal))
	}
	if enc.Time != "" && enc.Time != TimeAdaptive {
		b = append(b, `,"time.precision.mode":`...)
		b, _ = jsontext.AppendQuote(b, string(enc.Time))
	}
	b = appendStringMap(b, "types", cols, func(c string) (string, bool) { t, ok := e.Types[c]; return string(t), ok })
	b = appendStringMap(b, "sql_types", cols, func(c string) (string, bool) { t, ok := e.SQLTypes[c]; return t, ok })
	b = appendImages(b, "unsent", imgs, func(b []byte, img image) ([]byte, bool) {
		if img.unsent == nil {
			return b, false
		}
		b = append(b, '[')
		for i, c := range img.unsent {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = jsontext.AppendQuote(b, c)
		}
		return append(b, ']'), true
	})
	b = appendImages(b, "exact", imgs, func(b []byte, img image) ([]byte, bool) {
		if img.exact == nil {
			return b, false
		}
		b = append(b, '{')
		b = append(b, img.exact...)
		return append(b, '}'), true
	})
	if e.Oversize != "" {
		b = append(b, `,"oversize":`...)
		b, _ = jsontext.AppendQuote(b, e.Oversize)
	}
	return append(b, '}')
}

func appendUintOrNull(b []byte, v uint64, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return strconv.AppendUint(b, v, 10)
}

// appendStringMap appends `,"name":{"col":"value",...}` for the columns
// get knows, in cols order; nothing when it knows none.
func appendStringMap(b []byte, name string, cols []string, get func(string) (string, bool)) []byte {
	first := true
	for _, col := range cols {
		v, ok := get(col)
		if !ok {
			continue
		}
		if first {
			b = append(b, ',')
			b, _ = jsontext.AppendQuote(b, name)
			b = append(b, ":{"...)
		} else {
			b = append(b, ',')
		}
		first = false
		b, _ = jsontext.AppendQuote(b, col)
		b = append(b, ':')
		b, _ = jsontext.AppendQuote(b, v)
	}
	if !first {
		b = append(b, '}')
	}
	return b
}

// appendImages appends `,"name":{"before":...,"after":...}` with what each
// image has (each says whether it has anything); nothing when neither has.
func appendImages(b []byte, name string, imgs [2]image, each func([]byte, image) ([]byte, bool)) []byte {
	start := len(b)
	b = append(b, ',')
	b, _ = jsontext.AppendQuote(b, name)
	b = append(b, ":{"...)
	wrote := false
	for i, label := range []string{`"before":`, `"after":`} {
		mark := len(b)
		if wrote {
			b = append(b, ',')
		}
		b = append(b, label...)
		var ok bool
		if b, ok = each(b, imgs[i]); !ok {
			b = b[:mark]
			continue
		}
		wrote = true
	}
	if !wrote {
		return b[:start]
	}
	return append(b, '}')
}

// parseLSN reads PostgreSQL's "X/Y" LSN text as its number.
func parseLSN(s string) (uint64, bool) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	return h<<32 | l, err1 == nil && err2 == nil
}

// BuildVersion is v, or when v is "" or "dev" (a build without a release
// version) the version the Go toolchain recorded: the module's, else
// "dev+<revision>".
func BuildVersion(v string) string {
	if v != "" && v != "dev" {
		return v
	}
	buildVersionOnce.Do(func() {
		buildVersion = "dev"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			buildVersion = mv
			return
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				buildVersion = "dev+" + s.Value[:12]
			}
		}
	})
	return buildVersion
}

var (
	buildVersionOnce sync.Once
	buildVersion     string
)

// appendValue appends one value; NaN and ±Inf, which JSON cannot hold, as
// their text form (the envelope's types say to parse them back).
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return jsontext.AppendQuote(b, strconv.FormatFloat(v, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, v, 'g', -1, 64), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return jsontext.AppendQuote(b, v)
	case []byte:
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"'), nil
	case rawNumber:
		return append(b, v...), nil
	case rawObject:
		return append(b, v...), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// TextPosition is a position read back from an envelope: the capturer's
// String form, opaque to the apply side.
type TextPosition string

// String returns the position's text.
func (p TextPosition) String() string { return string(p) }

// ErrMalformed is wrapped by decode errors caused by the record's bytes.
var ErrMalformed = errors.New("malformed change record")

// Decode reads a record key and an envelope back into an Event. Values come
// back as the Go types the capturer emitted, guided by source.types. A nil
// key skips the key (Event.Key stays empty): the apply path does not need it.
func Decode(key, value []byte) (*Event, error) {
	var keyCols []string
	if key != nil {
		var err error
		if keyCols, err = keyColumns(key); err != nil {
			return nil, fmt.Errorf("%w: key: %v", ErrMalformed, err)
		}
	}
	raw, err := parseEnvelope(value)
	if err != nil {
		return nil, fmt.Errorf("%w: value: %v", ErrMalformed, err)
	}
	op, err := ParseOp(raw.Op)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	e := &Event{
		Op:     op,
		Table:  Table{Schema: raw.Source.Schema, Name: raw.Source.Table},
		Key:    keyCols,
		Types:  raw.Source.Types,
		Pos:    TextPosition(raw.Source.Pos),
		TxID:   raw.Source.TxID,
		Commit: time.UnixMilli(raw.Source.TsMs),
	}
	e.SQLTypes = raw.Source.SQLTypes
	e.Oversize = raw.Source.Oversize
	if e.Before, err = raw.Before.typed(&raw.Source, &raw.extra.before); err != nil {
		return nil, fmt.Errorf("%w: before: %v", ErrMalformed, err)
	}
	if e.After, err = raw.After.typed(&raw.Source, &raw.extra.after); err != nil {
		return nil, fmt.Errorf("%w: after: %v", ErrMalformed, err)
	}
	return e, nil
}

// keyColumns returns the column names of a record key, in either form
// (the columns object, or {"schema", "payload": the columns object}).
func keyColumns(key []byte) ([]string, error) {
	cols, err := keyObjectColumns(key)
	if err != nil || len(cols) != 2 || !slices.Contains(cols, "schema") || !slices.Contains(cols, "payload") {
		return cols, err
	}
	var wrapped struct {
		Schema  map[string]any  `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(key, &wrapped); err != nil || wrapped.Schema["type"] != "struct" {
		return cols, nil // a key of two columns named schema and payload
	}
	return keyObjectColumns(wrapped.Payload)
}

func keyObjectColumns(key []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(key))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, got %v", tok)
	}
	var cols []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		cols = append(cols, name)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return cols, nil
}

// rawEnvelope is an envelope whose row values are still JSON.
type rawEnvelope struct {
	Before, After rawRow
	Source        SourceInfo
	Op            string
	extra         struct{ before, after imageExtra }
}

// imageExtra is what the source block says of one image: the columns the
// source did not send, and exact source values.
type imageExtra struct {
	unsent []string
	exact  map[string]string
}

// rawRow is a row's columns as JSON values, in record order; nil for JSON null.
type rawRow []rawColumn

type rawColumn struct {
	name  string
	value jsontext.Value
}

// typed decodes a row image's values: exact values where the source block
// has them, Debezium's encodings of columns with a source type back to the
// source values, the rest by their logical types. Columns the source did
// not send are left out.
func (r rawRow) typed(src *SourceInfo, x *imageExtra) (Row, error) {
	if r == nil {
		return nil, nil
	}
	out := make(Row, len(r))
	for _, c := range r {
		if slices.Contains(x.unsent, c.name) {
			continue
		}
		t := src.Types[c.name]
		var v any
		var err error
		if text, ok := x.exact[c.name]; ok {
			v = text
		} else if sql, ok := src.SQLTypes[c.name]; ok {
			v, err = codecValue(c.value, t, codecFor(src.Connector, t, sql, cmpOr(src.DecimalMode, DecimalString), cmpOr(src.TimeMode, TimeAdaptive)))
		} else {
			v, err = typedValue(c.value, t)
		}
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		out[c.name] = v
	}
	return out, nil
}

// codecValue decodes a value c wrote; a value of another JSON kind is a
// source value written as it is.
func codecValue(raw jsontext.Value, t Type, c *codec) (any, error) {
	k := raw.Kind()
	if c.dec == nil || k == 'n' || k != c.decKind && !(c.decKind == 't' && k == 'f') {
		return typedValue(raw, t)
	}
	return c.dec(raw, t)
}

var decoders = sync.Pool{New: func() any { return jsontext.NewDecoder(bytes.NewReader(nil)) }}

// parseEnvelope reads an envelope with a streaming tokenizer: no reflection,
// one pass, unknown fields skipped. Field order does not matter.
func parseEnvelope(value []byte) (*rawEnvelope, error) {
	d := decoders.Get().(*jsontext.Decoder)
	d.Reset(bytes.NewReader(value))
	defer func() {
		d.Reset(bytes.NewReader(nil)) // let the record be collected
		decoders.Put(d)
	}()
	env := &rawEnvelope{}
	var field func(name string) error
	field = func(name string) error {
		var err error
		switch name {
		case "before":
			env.Before, err = readRawRow(d, value)
		case "after":
			env.After, err = readRawRow(d, value)
		case "op":
			env.Op, err = readString(d)
		case "source":
			err = readSource(d, env)
		case "payload": // the schema + payload form
			err = readObject(d, field)
		default:
			err = d.SkipValue()
		}
		return err
	}
	err := readObject(d, field)
	return env, err
}

// readObject reads one JSON object, calling field for each member name with
// the decoder positioned at the member's value, which field must consume.
func readObject(d *jsontext.Decoder, field func(name string) error) error {
	tok, err := d.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return fmt.Errorf("want a JSON object, got %s", tok.Kind())
	}
	for d.PeekKind() != '}' {
		tok, err := d.ReadToken()
		if err != nil {
			return err
		}
		name := tok.String() // a Token is void after the next read
		if err := field(name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	_, err = d.ReadToken()
	return err
}

// readRawRow reads a row object of input, which d reads, keeping each
// column's JSON value as a slice of input (not a copy: a record's value is
// not reused while its event lives).
func readRawRow(d *jsontext.Decoder, input []byte) (rawRow, error) {
	if d.PeekKind() == 'n' {
		_, err := d.ReadToken()
		return nil, err
	}
	row := make(rawRow, 0, 8)
	err := readObject(d, func(name string) error {
		v, err := d.ReadValue()
		if err != nil {
			return err
		}
		end := int(d.InputOffset())
		if end < len(v) || end > len(input) {
			return fmt.Errorf("column %q: value offset %d out of the record's %d bytes", name, end, len(input))
		}
		row = append(row, rawColumn{name: name, value: jsontext.Value(input[end-len(v) : end : end])})
		return nil
	})
	return row, err
}

func readString(d *jsontext.Decoder) (string, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return "", err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case 'n':
		return "", nil
	}
	return "", fmt.Errorf("want a string, got %s", tok.Kind())
}

func readInt(d *jsontext.Decoder) (int64, error) {
	tok, err := d.ReadToken()
	if err != nil {
		return 0, err
	}
	switch tok.Kind() {
	case '0':
		return tok.Int()
	case 'n':
		return 0, nil
	}
	return 0, fmt.Errorf("want a number, got %s", tok.Kind())
}

func readSource(d *jsontext.Decoder, env *rawEnvelope) error {
	src := &env.Source
	return readObject(d, func(name string) error {
		var err error
		switch name {
		case "version":
			src.Version, err = readString(d)
		case "connector":
			src.Connector, err = readString(d)
		case "name":
			src.Name, err = readString(d)
		case "db":
			src.DB, err = readString(d)
		case "schema":
			src.Schema, err = readString(d)
		case "table":
			src.Table, err = readString(d)
		case "pos":
			src.Pos, err = readString(d)
		case "ts_ms":
			src.TsMs, err = readInt(d)
		case "txId":
			if src.Connector == "mysql" && d.PeekKind() == '"' { // Debezium MySQL's GTID text
				return d.SkipValue()
			}
			var id int64
			id, err = readInt(d)
			src.TxID = uint32(id)
		case "types":
			src.Types, err = readTypes(d)
		case "decimal.handling.mode":
			var m string
			m, err = readString(d)
			src.DecimalMode = DecimalMode(m)
		case "time.precision.mode":
			var m string
			m, err = readString(d)
			src.TimeMode = TimeMode(m)
		case "sql_types":
			src.SQLTypes, err = readSQLTypes(d)
		case "oversize":
			src.Oversize, err = readString(d)
		case "unsent", "exact":
			err = readImageExtras(d, name, &env.extra.before, &env.extra.after)
		default:
			err = d.SkipValue()
		}
		return err
	})
}

// typedValue decodes one JSON value to the Go type of its logical type. A
// value of the wrong JSON kind for a known type is an error; with no type
// (a foreign producer) numbers become int64 or float64 and objects or
// arrays their JSON text.
func typedValue(raw jsontext.Value, t Type) (any, error) {
	if len(raw) == 0 {
		return nil, errors.New("empty value")
	}
	kind := raw.Kind()
	if kind == 'n' {
		return nil, nil
	}
	if !kindFits(kind, t) {
		return nil, fmt.Errorf("a JSON %s is not a %s value", kind, t)
	}
	switch kind {
	case 't', 'f':
		return kind == 't', nil
	case '"':
		s, err := jsonString(raw)
		if err != nil {
			return nil, err
		}
		switch t {
		case TypeBytes:
			return base64.StdEncoding.DecodeString(s)
		case TypeFloat:
			f, err := strconv.ParseFloat(s, 64)
			if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return nil, fmt.Errorf("float %q sent as a string: only NaN and infinities are", s)
			}
			return f, err
		}
		return s, nil
	case '0':
		n := string(raw)
		switch t {
		case TypeFloat:
			return strconv.ParseFloat(n, 64)
		case TypeInt:
			return strconv.ParseInt(n, 10, 64)
		case TypeDecimal:
			return n, nil
		}
		if i, err := strconv.ParseInt(n, 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(n, 64)
	default:
		// Objects and arrays (a JSON column written by a foreign producer):
		// keep them as their JSON text.
		return string(raw), nil
	}
}

// kindFits says whether a JSON value kind can carry a logical type.
func kindFits(kind jsontext.Kind, t Type) bool {
	switch t {
	case "":
		return true
	case TypeInt:
		return kind == '0'
	case TypeFloat:
		return kind == '0' || kind == '"'
	case TypeBool:
		return kind == 't' || kind == 'f'
	case TypeDecimal:
		return kind == '0' || kind == '"'
	case TypeJSON:
		return kind == '"' || kind == '{' || kind == '['
	}
	return kind == '"' // bytes, string, time and types from newer producers
}

// jsonString unquotes a JSON string, without allocating twice when it holds
// no escapes.
func jsonString(raw jsontext.Value) (string, error) {
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// typesCache shares the types map of records whose types object is
// byte-for-byte the same (every record of a table, until its schema
// changes), so it is parsed once. Bounded: objects over typesCacheMaxBytes
// are not cached, and past typesCacheMax distinct objects it stops adding.
// The maps are read-only once shared.
var (
	typesCache     sync.Map // string(raw JSON) -> map[string]Type
	typesCacheSize atomic.Int64
)

const (
	typesCacheMax      = 1024
	typesCacheMaxBytes = 64 << 10
)

func readTypes(d *jsontext.Decoder) (map[string]Type, error) {
	raw, err := d.ReadValue()
	if err != nil {
		return nil, err
	}
	if raw.Kind() == 'n' {
		return nil, nil
	}
	if m, ok := typesCache.Load(string(raw)); ok {
		return m.(map[string]Type), nil
	}
	var m map[string]Type
	if err := jsonv2.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if len(raw) <= typesCacheMaxBytes && typesCacheSize.Load() < typesCacheMax {
		if _, loaded := typesCache.LoadOrStore(string(raw), m); !loaded {
			typesCacheSize.Add(1)
		}
	}
	return m, nil
}

// sqlTypesCache shares sql_types maps as typesCache shares types maps.
var (
	sqlTypesCache     sync.Map // string(raw JSON) -> map[string]string
	sqlTypesCacheSize atomic.Int64
)

func readSQLTypes(d *jsontext.Decoder) (map[string]string, error) {
	raw, err := d.ReadValue()
	if err != nil {
		return nil, err
	}
	if raw.Kind() == 'n' {
		return nil, nil
	}
	if m, ok := sqlTypesCache.Load(string(raw)); ok {
		return m.(map[string]string), nil
	}
	var m map[string]string
	if err := jsonv2.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if len(raw) <= typesCacheMaxBytes && sqlTypesCacheSize.Load() < typesCacheMax {
		if _, loaded := sqlTypesCache.LoadOrStore(string(raw), m); !loaded {
			sqlTypesCacheSize.Add(1)
		}
	}
	return m, nil
}

// readImageExtras reads source.unsent ({"before": [column], "after": ...})
// or source.exact ({"before": {column: text}, "after": ...}).
func readImageExtras(d *jsontext.Decoder, name string, before, after *imageExtra) error {
	if d.PeekKind() == 'n' {
		_, err := d.ReadToken()
		return err
	}
	return readObject(d, func(image string) error {
		x := before
		switch image {
		case "before":
		case "after":
			x = after
		default:
			return d.SkipValue()
		}
		raw, err := d.ReadValue()
		if err != nil || raw.Kind() == 'n' {
			return err
		}
		if name == "unsent" {
			return jsonv2.Unmarshal(raw, &x.unsent)
		}
		return jsonv2.Unmarshal(raw, &x.exact)
	})
}
