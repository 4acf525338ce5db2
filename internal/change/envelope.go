package change

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
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

// Connector names the capturer in the envelope's source block, as Debezium does.
type Connector string

// Envelope is the Debezium-compatible JSON value of a change record.
type Envelope struct {
	Before Row        `json:"before"`
	After  Row        `json:"after"`
	Source SourceInfo `json:"source"`
	Op     string     `json:"op"`
	TsMs   int64      `json:"ts_ms"`
}

// SourceInfo is the envelope's source block. Fields beyond Debezium's common
// ones (pos, types) are tandem's; Debezium consumers ignore them.
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
	var buf bytes.Buffer
	buf.WriteByte('{')
	row := e.KeyRow()
	for i, c := range e.Key {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(c)
		buf.Write(name)
		buf.WriteByte(':')
		v, err := json.Marshal(jsonSafe(row[c]))
		if err != nil {
			return nil, fmt.Errorf("encode key column %q of %s: %w", c, e.Table, err)
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Value encodes the event as a Debezium-style JSON envelope.
func (enc *Encoder) Value(e *Event) ([]byte, error) {
	now := time.Now
	if enc.Now != nil {
		now = enc.Now
	}
	pos := ""
	if e.Pos != nil {
		pos = e.Pos.String()
	}
	env := Envelope{
		Before: safeRow(e.Before),
		After:  safeRow(e.After),
		Op:     e.Op.String(),
		TsMs:   now().UnixMilli(),
		Source: SourceInfo{
			Version: enc.Version, Connector: enc.Connector, Name: enc.Name,
			TsMs: e.Commit.UnixMilli(), DB: enc.DB, Schema: e.Table.Schema, Table: e.Table.Name,
			Pos: pos, TxID: e.TxID, Types: e.Types,
		},
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode change of %s: %w", e.Table, err)
	}
	return b, nil
}

// safeRow replaces values JSON cannot hold (NaN, ±Inf) by their text form.
func safeRow(r Row) Row {
	for _, v := range r {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			out := make(Row, len(r))
			for k, v2 := range r {
				out[k] = jsonSafe(v2)
			}
			return out
		}
	}
	return r
}

func jsonSafe(v any) any {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return v
}

// TextPosition is a position read back from an envelope: the capturer's
// String form, opaque to the apply side.
type TextPosition string

// String returns the position's text.
func (p TextPosition) String() string { return string(p) }

// ErrMalformed is wrapped by decode errors caused by the record's bytes.
var ErrMalformed = errors.New("malformed change record")

// Decode reads a record key and an envelope back into an Event. Values come
// back as the Go types the capturer emitted, guided by source.types.
func Decode(key, value []byte) (*Event, error) {
	keyCols, err := keyColumns(key)
	if err != nil {
		return nil, fmt.Errorf("%w: key: %v", ErrMalformed, err)
	}
	var raw struct {
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
		Source SourceInfo     `json:"source"`
		Op     string         `json:"op"`
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
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
	if e.Before, err = typedRow(raw.Before, raw.Source.Types); err != nil {
		return nil, fmt.Errorf("%w: before: %v", ErrMalformed, err)
	}
	if e.After, err = typedRow(raw.After, raw.Source.Types); err != nil {
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

func typedRow(in map[string]any, types map[string]Type) (Row, error) {
	if in == nil {
		return nil, nil
	}
	out := make(Row, len(in))
	for k, v := range in {
		tv, err := typedValue(v, types[k])
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", k, err)
		}
		out[k] = tv
	}
	return out, nil
}

func typedValue(v any, t Type) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.Number:
		switch t {
		case TypeFloat:
			return v.Float64()
		case TypeInt:
			return v.Int64()
		case TypeDecimal, TypeString:
			return v.String(), nil
		}
		if i, err := v.Int64(); err == nil {
			return i, nil
		}
		return v.Float64()
	case string:
		switch t {
		case TypeBytes:
			return base64.StdEncoding.DecodeString(v)
		case TypeFloat:
			return strconv.ParseFloat(v, 64) // NaN, +Inf, -Inf
		}
		return v, nil
	case bool:
		return v, nil
	default:
		// Objects and arrays (a JSON column decoded by a foreign producer):
		// keep them as their JSON text.
		b, err := json.Marshal(v)
		return string(b), err
	}
}
