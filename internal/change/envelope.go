package change

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
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
// value is {"before", "after", "source", "op", "ts_ms"}, as Debezium's;
// fields beyond Debezium's common ones (pos, types) are tandem's, and
// Debezium consumers ignore them.
type SourceInfo struct {
	Version   string          `json:"version"`
	Connector string          `json:"connector"`
	Name      string          `json:"name"`
	TsMs      int64           `json:"ts_ms"`
	DB        string          `json:"db"`
	Schema    string          `json:"schema"`
	Table     string          `json:"table"`
	Pos       string          `json:"pos"`
	TxID      uint32          `json:"txId,omitempty"`
	Types     map[string]Type `json:"types,omitempty"`
}

// Encoder turns Events into Kafka record keys and values.
type Encoder struct {
	Version   string // tandem version, for source.version
	Connector string // "postgresql", "mysql"
	Name      string // logical server name (the topic prefix)
	DB        string // source database name
	Now       func() time.Time
}

// Key encodes the event's primary key as a JSON object in key-column order,
// e.g. {"id":42}. Equal keys encode to equal bytes, so one row's changes
// always land on the same partition.
func (enc *Encoder) Key(e *Event) ([]byte, error) {
	b := make([]byte, 0, 16*len(e.Key)+2)
	b = append(b, '{')
	row := e.KeyRow()
	for i, c := range e.Key {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		b, _ = jsontext.AppendQuote(b, c)
		b = append(b, ':')
		if b, err = appendValue(b, row[c]); err != nil {
			return nil, fmt.Errorf("encode key column %q of %s: %w", c, e.Table, err)
		}
	}
	return append(b, '}'), nil
}

// Value encodes the event as a Debezium-style JSON envelope. It appends
// JSON directly (no reflection): this runs once per captured change. Keys of
// rows and types are written in sorted order, so equal events encode to
// equal bytes.
func (enc *Encoder) Value(e *Event) ([]byte, error) {
	now := time.Now
	if enc.Now != nil {
		now = enc.Now
	}
	b := make([]byte, 0, 256+64*len(e.After)+64*len(e.Before))
	var err error
	b = append(b, `{"before":`...)
	cols := e.Columns
	if cols == nil {
		cols = slices.Sorted(maps.Keys(e.Types))
	}
	if b, err = appendRow(b, e.Before, cols); err != nil {
		return nil, fmt.Errorf("encode change of %s: before: %w", e.Table, err)
	}
	b = append(b, `,"after":`...)
	if b, err = appendRow(b, e.After, cols); err != nil {
		return nil, fmt.Errorf("encode change of %s: after: %w", e.Table, err)
	}
	b = append(b, `,"source":{"version":`...)
	b, _ = jsontext.AppendQuote(b, enc.Version)
	b = append(b, `,"connector":`...)
	b, _ = jsontext.AppendQuote(b, enc.Connector)
	b = append(b, `,"name":`...)
	b, _ = jsontext.AppendQuote(b, enc.Name)
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, e.Commit.UnixMilli(), 10)
	b = append(b, `,"db":`...)
	b, _ = jsontext.AppendQuote(b, enc.DB)
	b = append(b, `,"schema":`...)
	b, _ = jsontext.AppendQuote(b, e.Table.Schema)
	b = append(b, `,"table":`...)
	b, _ = jsontext.AppendQuote(b, e.Table.Name)
	b = append(b, `,"pos":`...)
	pos := ""
	if e.Pos != nil {
		pos = e.Pos.String()
	}
	b, _ = jsontext.AppendQuote(b, pos)
	if e.TxID != 0 {
		b = append(b, `,"txId":`...)
		b = strconv.AppendUint(b, uint64(e.TxID), 10)
	}
	if len(e.Types) > 0 {
		b = append(b, `,"types":{`...)
		first := true
		for _, col := range cols {
			t, ok := e.Types[col]
			if !ok {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b, _ = jsontext.AppendQuote(b, col)
			b = append(b, ':')
			b, _ = jsontext.AppendQuote(b, string(t))
		}
		b = append(b, '}')
	}
	b = append(b, `},"op":`...)
	b, _ = jsontext.AppendQuote(b, e.Op.String())
	b = append(b, `,"ts_ms":`...)
	b = strconv.AppendInt(b, now().UnixMilli(), 10)
	return append(b, '}'), nil
}

// appendRow appends a row as a JSON object, or null: the columns of cols
// first, in that order, then any others sorted (a row may carry columns
// the type map does not list).
func appendRow(b []byte, r Row, cols []string) ([]byte, error) {
	if r == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	n := 0
	write := func(col string) error {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		var err error
		if b, err = jsontext.AppendQuote(b, col); err != nil {
			return fmt.Errorf("column name %q: %w", col, err)
		}
		b = append(b, ':')
		if b, err = appendValue(b, r[col]); err != nil {
			return fmt.Errorf("column %q: %w", col, err)
		}
		return nil
	}
	for _, col := range cols {
		if _, ok := r[col]; ok {
			if err := write(col); err != nil {
				return nil, err
			}
		}
	}
	if n < len(r) {
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
		for _, col := range rest {
			if err := write(col); err != nil {
				return nil, err
			}
		}
	}
	return append(b, '}'), nil
}

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
	if e.Before, err = raw.Before.typed(raw.Source.Types); err != nil {
		return nil, fmt.Errorf("%w: before: %v", ErrMalformed, err)
	}
	if e.After, err = raw.After.typed(raw.Source.Types); err != nil {
		return nil, fmt.Errorf("%w: after: %v", ErrMalformed, err)
	}
	return e, nil
}

func keyColumns(key []byte) ([]string, error) {
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
}

// rawRow is a row's columns as JSON values, in record order; nil for JSON null.
type rawRow []rawColumn

type rawColumn struct {
	name  string
	value jsontext.Value
}

func (r rawRow) typed(types map[string]Type) (Row, error) {
	if r == nil {
		return nil, nil
	}
	out := make(Row, len(r))
	for _, c := range r {
		v, err := typedValue(c.value, types[c.name])
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.name, err)
		}
		out[c.name] = v
	}
	return out, nil
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
	err := readObject(d, func(name string) error {
		var err error
		switch name {
		case "before":
			env.Before, err = readRawRow(d, value)
		case "after":
			env.After, err = readRawRow(d, value)
		case "op":
			env.Op, err = readString(d)
		case "source":
			err = readSource(d, &env.Source)
		default:
			err = d.SkipValue()
		}
		return err
	})
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

func readSource(d *jsontext.Decoder, src *SourceInfo) error {
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
			var id int64
			id, err = readInt(d)
			src.TxID = uint32(id)
		case "types":
			src.Types, err = readTypes(d)
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
