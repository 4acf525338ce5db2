package change

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// afterFields is the field names, in order, of the after struct of a
// value record written with Schemas.
func afterFields(t *testing.T, value []byte) []string {
	t.Helper()
	var rec struct {
		Schema struct {
			Fields []struct {
				Field  string `json:"field"`
				Fields []struct {
					Field string `json:"field"`
				} `json:"fields"`
			} `json:"fields"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(value, &rec); err != nil {
		t.Fatalf("value %s: %v", value, err)
	}
	for _, f := range rec.Schema.Fields {
		if f.Field == "after" {
			var names []string
			for _, c := range f.Fields {
				names = append(names, c.Field)
			}
			return names
		}
	}
	t.Fatalf("value %s: no after field in its schema", value)
	return nil
}

// TestSchema_FollowsTheEventsColumnList: the Connect schema of a table's
// records is cached while the capturer shares its column list and type
// maps; a new column list (a column dropped, the same type map) gets a
// schema of its own.
func TestSchema_FollowsTheEventsColumnList(t *testing.T) {
	enc := &Encoder{Version: "test", Connector: "postgresql", Name: "tandem", DB: "shop", Schemas: true}
	types := map[string]Type{"id": TypeInt, "note": TypeString, "qty": TypeInt}
	sql := map[string]string{"id": "int8", "qty": "int4"}
	for _, cols := range [][]string{{"id", "note", "qty"}, {"id", "qty"}, {"qty", "id", "note"}, {"id", "note", "qty"}} {
		ev := &Event{Op: OpCreate, Table: Table{"shop", "orders"}, Key: []string{"id"}, Columns: cols, Types: types, SQLTypes: sql,
			After: Row{"id": int64(1), "note": "x", "qty": int64(2)}}
		v, err := enc.Value(ev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(cols, afterFields(t, v)); diff != "" {
			t.Errorf("columns %v: the schema's after fields (-want +got):\n%s", cols, diff)
		}
	}
}

// TestSchema_IsBuiltOncePerTableSchema: the key and value schemas of a
// table are built on its first record and reused for the next ones, as
// long as the capturer shares its column list and type maps: a record
// after the first costs at most half its allocations (building the schema
// costs most of them).
func TestSchema_IsBuiltOncePerTableSchema(t *testing.T) {
	ev := &Event{Op: OpCreate, Table: Table{"shop", "orders"}, Key: []string{"id"}, Columns: pgOrders.cols, Types: pgOrders.types,
		SQLTypes: pgOrders.sql, After: pgRow(1, "first")}
	fresh := func() *Encoder {
		return &Encoder{Version: "test", Connector: "postgresql", Name: "tandem", DB: "shop", Schemas: true}
	}
	for name, encode := range map[string]func(*Encoder) error{
		"key":   func(enc *Encoder) error { _, err := enc.Key(ev); return err },
		"value": func(enc *Encoder) error { _, err := enc.Value(ev); return err },
	} {
		first := testing.AllocsPerRun(20, func() {
			if err := encode(fresh()); err != nil {
				t.Fatal(err)
			}
		})
		warm := fresh()
		if err := encode(warm); err != nil {
			t.Fatal(err)
		}
		next := testing.AllocsPerRun(20, func() {
			if err := encode(warm); err != nil {
				t.Fatal(err)
			}
		})
		if 2*next > first {
			t.Errorf("%s: %v allocations a record after the first, %v for the first: is the schema built again?", name, next, first)
		}
	}
}

// TestSchema_EachSourceTypeHasDebeziumsConnectType pins the Connect type
// and semantic name the schema gives each source type (golden_test.go's
// records hold the tables' other types).
func TestSchema_EachSourceTypeHasDebeziumsConnectType(t *testing.T) {
	type schema struct{ Type, Name string }
	for _, tc := range []struct {
		connector string
		typ       Type
		sql       string
		want      schema
	}{
		{"postgresql", TypeInt, "int2", schema{"int16", ""}},
		{"postgresql", TypeInt, "int4", schema{"int32", ""}},
		{"postgresql", TypeInt, "int8", schema{"int64", ""}},
		{"postgresql", TypeFloat, "float4", schema{"float", ""}},
		{"postgresql", TypeFloat, "float8", schema{"double", ""}},
		{"postgresql", TypeBool, "bool", schema{"boolean", ""}},
		{"postgresql", TypeBytes, "bytea", schema{"bytes", ""}},
		{"postgresql", TypeJSON, "jsonb", schema{"string", "io.debezium.data.Json"}},
		{"postgresql", TypeString, "uuid", schema{"string", "io.debezium.data.Uuid"}},
		{"postgresql", TypeString, "text", schema{"string", ""}},
		{"mysql", TypeInt, "tinyint", schema{"int16", ""}},
		{"mysql", TypeInt, "mediumint unsigned", schema{"int32", ""}},
		{"mysql", TypeInt, "year", schema{"int32", "io.debezium.time.Year"}},
		{"mysql", TypeFloat, "float", schema{"float", ""}},
		{"mysql", TypeFloat, "double", schema{"double", ""}},
		{"mysql", TypeString, "enum", schema{"string", "io.debezium.data.Enum"}},
		{"mysql", TypeString, "set", schema{"string", "io.debezium.data.EnumSet"}},
	} {
		s := codecFor(tc.connector, tc.typ, tc.sql, DecimalString, TimeAdaptive).schema
		if got := (schema{s.typ, s.name}); got != tc.want {
			t.Errorf("%s %s (%s): schema %+v, want %+v", tc.connector, tc.sql, tc.typ, got, tc.want)
		}
	}
}

// TestImage_ColumnsBeyondTheColumnListAreWrittenBesideUnsentOnes: a row
// with a column its table's column list does not hold yet (added since)
// and an unchanged TOASTed value (not sent) keeps both through a record.
func TestImage_ColumnsBeyondTheColumnListAreWrittenBesideUnsentOnes(t *testing.T) {
	enc := &Encoder{Version: "test", Connector: "postgresql", Name: "tandem", DB: "shop"}
	ev := &Event{Op: OpUpdate, Table: Table{"shop", "orders"}, Key: []string{"id"}, Columns: []string{"id", "note", "qty"},
		Types: map[string]Type{"id": TypeInt, "note": TypeString, "qty": TypeInt, "added": TypeInt},
		After: Row{"id": int64(1), "qty": int64(2), "added": int64(3)}, Pos: TextPosition("0/1")}
	v, err := enc.Value(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(nil, v)
	if err != nil {
		t.Fatalf("decode %s: %v", v, err)
	}
	if diff := cmp.Diff(ev.After, got.After); diff != "" {
		t.Errorf("after image through the record %s (-want +got):\n%s", v, diff)
	}
}
