package change

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// schemaKey identifies the schema of a table's records: the same as long
// as the capturer shares the table's column list and type maps (until its
// schema changes).
type schemaKey struct {
	table            Table
	cols, types, sql uintptr
	key              bool
}

func (enc *Encoder) schemaKeyOf(e *Event, key bool) schemaKey {
	k := schemaKey{table: e.Table, key: key,
		types: reflect.ValueOf(e.Types).Pointer(), sql: reflect.ValueOf(e.SQLTypes).Pointer()}
	if len(e.Columns) > 0 {
		k.cols = reflect.ValueOf(e.Columns).Pointer()
	}
	return k
}

// topicName is the record name Debezium gives a table's schemas.
func (enc *Encoder) topicName(e *Event) string {
	return enc.Name + "." + e.Table.Schema + "." + e.Table.Name
}

// appendKeySchema appends the Kafka Connect schema of the event's key.
func (enc *Encoder) appendKeySchema(b []byte, e *Event) []byte {
	k := enc.schemaKeyOf(e, true)
	if s, ok := enc.schemaCache.Load(k); ok && k.types != 0 {
		return append(b, s.([]byte)...)
	}
	s := enc.structSchema(nil, e, e.Key, enc.topicName(e)+".Key", "", false, true)
	enc.schemaCache.Store(k, s)
	return append(b, s...)
}

// valueSchema is the Kafka Connect schema of the event's change event:
// Debezium's Envelope with the table's Value struct.
func (enc *Encoder) valueSchema(e *Event) []byte {
	k := enc.schemaKeyOf(e, false)
	if s, ok := enc.schemaCache.Load(k); ok && k.types != 0 {
		return s.([]byte)
	}
	cols := e.Columns
	if cols == nil {
		cols = slices.Sorted(mapsKeys(e.Types))
	}
	name := enc.topicName(e)
	b := []byte(`{"type":"struct","fields":[`)
	b = enc.structSchema(b, e, cols, name+".Value", "before", true, false)
	b = append(b, ',')
	b = enc.structSchema(b, e, cols, name+".Value", "after", true, false)
	b = append(b, ',')
	b = enc.sourceSchema(b)
	b = append(b, `,{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}`...)
	b = append(b, `,{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],"optional":false,"name":`...)
	b, _ = jsontext.AppendQuote(b, name+".Envelope")
	b = append(b, `,"version":2}`...)
	enc.schemaCache.Store(k, b)
	return b
}

func mapsKeys(m map[string]Type) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// structSchema appends a struct schema of cols; field names it as a field
// of its parent ("" for a top-level schema). Key columns are not optional.
func (enc *Encoder) structSchema(b []byte, e *Event, cols []string, name, field string, optional, key bool) []byte {
	b = append(b, `{"type":"struct","fields":[`...)
	for i, col := range cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendFieldSchema(b, enc.codec(e, col).schema, col, key || slices.Contains(e.Key, col))
	}
	b = append(b, `],"optional":`...)
	b = strconv.AppendBool(b, optional)
	b = append(b, `,"name":`...)
	b, _ = jsontext.AppendQuote(b, name)
	if field != "" {
		b = append(b, `,"field":`...)
		b, _ = jsontext.AppendQuote(b, field)
	}
	return append(b, '}')
}

// variableScaleFields are the fields of io.debezium.data.VariableScaleDecimal.
const variableScaleFields = `[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}]`

func appendFieldSchema(b []byte, s connectSchema, field string, required bool) []byte {
	b = append(b, `{"type":`...)
	b, _ = jsontext.AppendQuote(b, s.typ)
	if s.typ == "struct" {
		b = append(b, `,"fields":`+variableScaleFields...)
	}
	b = append(b, `,"optional":`...)
	b = strconv.AppendBool(b, !required)
	if s.name != "" {
		b = append(b, `,"name":`...)
		b, _ = jsontext.AppendQuote(b, s.name)
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(s.version), 10)
	}
	if len(s.params) > 0 {
		b = append(b, `,"parameters":{`...)
		for i, p := range s.params {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = jsontext.AppendQuote(b, p[0])
			b = append(b, ':')
			b, _ = jsontext.AppendQuote(b, p[1])
		}
		b = append(b, '}')
	}
	b = append(b, `,"field":`...)
	b, _ = jsontext.AppendQuote(b, field)
	return append(b, '}')
}

// sourceSchema appends the schema of the source block: Debezium's fields of
// the connector, then tandem's.
func (enc *Encoder) sourceSchema(b []byte) []byte {
	type f struct{ typ, name, field string }
	fields := []f{{"string", "", "version"}, {"string", "", "connector"}, {"string", "", "name"}, {"int64", "", "ts_ms"},
		{"string", "io.debezium.data.Enum", "snapshot"}, {"string", "", "db"}, {"string?", "", "sequence"},
		{"int64?", "", "ts_us"}, {"int64?", "", "ts_ns"}, {"string", "", "schema"}, {"string", "", "table"}}
	source := "io.debezium.connector.postgresql.Source"
	if enc.Connector == "mysql" {
		source = "io.debezium.connector.mysql.Source"
	} else {
		fields = append(fields, f{"int64?", "", "txId"}, f{"int64?", "", "lsn"}, f{"int64?", "", "xmin"})
	}
	fields = append(fields, f{"string", "", "pos"})
	if enc.Connector == "mysql" {
		fields = append(fields, f{"int64?", "", "txId"})
	}
	b = append(b, `{"type":"struct","fields":[`...)
	for i, fl := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		typ, optional := fl.typ, false
		if typ[len(typ)-1] == '?' {
			typ, optional = typ[:len(typ)-1], true
		}
		b = append(b, `{"type":"`+typ+`","optional":`+strconv.FormatBool(optional)...)
		if fl.name != "" {
			b = append(b, `,"name":"`+fl.name+`","version":1`...)
		}
		b = append(b, `,"field":"`+fl.field+`"}`...)
	}
	b = append(b, `,{"type":"string","optional":true,"field":"decimal.handling.mode"},{"type":"string","optional":true,"field":"time.precision.mode"}`...)
	for _, m := range []string{"types", "sql_types"} {
		b = append(b, `,{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":false},"optional":true,"field":"`+m+`"}`...)
	}
	// unsent: {before, after: [column]}; exact: {before, after: {column: text}}.
	list := `{"type":"array","items":{"type":"string","optional":false},"optional":true,"field":"%s"}`
	dict := `{"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":false},"optional":true,"field":"%s"}`
	for _, m := range []struct{ field, item string }{{"unsent", list}, {"exact", dict}} {
		b = fmt.Appendf(b, `,{"type":"struct","fields":[`+m.item+`,`+m.item+`],"optional":true,"field":"%s"}`, "before", "after", m.field)
	}
	b = append(b, `],"optional":false,"name":"`+source+`","field":"source"}`...)
	return b
}
