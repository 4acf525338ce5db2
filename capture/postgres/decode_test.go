package postgres

import (
	"bytes"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pglogrepl"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/pgtext"
)

func TestDecodeText(t *testing.T) {
	for _, tc := range []struct {
		oid     uint32
		in      string
		want    any
		wantErr bool
	}{
		{oidInt2, "-32768", int64(-32768), false},
		{oidInt8, "-9223372036854775808", int64(math.MinInt64), false},
		{oidOID, "4294967295", int64(4294967295), false},
		{oidInt4, "1.5", nil, true},
		{oidFloat4, "3.14", 3.14, false},
		{oidFloat8, "NaN", math.NaN(), false},
		{oidFloat8, "-Infinity", math.Inf(-1), false},
		{oidFloat8, "Infinity", math.Inf(1), false},
		{oidFloat8, "4.9406564584124654e-324", 5e-324, false},
		{oidBool, "t", true, false},
		{oidBool, "f", false, false},
		{oidBytea, `\x00ff00`, []byte{0, 0xff, 0}, false},
		{oidBytea, `\x`, []byte{}, false},
		{oidBytea, `\000`, nil, true}, // escape format
		{oidBytea, `\x0`, nil, true},
		{oidNumeric, "-0.0000000001", "-0.0000000001", false},
		{oidNumeric, "NaN", "NaN", false},
		{oidTimestamptz, "2024-02-29 21:59:59.123456+00", "2024-02-29 21:59:59.123456+00", false},
		{oidJSONB, `{"a": 1}`, `{"a": 1}`, false},
		{25, "日本語 😀", "日本語 😀", false}, // text
	} {
		got, err := pgtext.Value(tc.oid, []byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("pgtext.Value(%d, %q) error = %v, want error %v", tc.oid, tc.in, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmpopts.EquateNaNs()); diff != "" {
			t.Errorf("pgtext.Value(%d, %q) (-want +got):\n%s", tc.oid, tc.in, diff)
		}
	}
}

// column returns a Relation message column; key sets the replica identity flag.
func column(name string, oid uint32, key bool) *pglogrepl.RelationMessageColumn {
	c := &pglogrepl.RelationMessageColumn{Name: name, DataType: oid}
	if key {
		c.Flags = 1
	}
	return c
}

func TestNewRelation_KeyIsThePrimaryKeyUnderEveryReplicaIdentity(t *testing.T) {
	flagged := func(ident uint8, flags ...bool) *pglogrepl.RelationMessage {
		return &pglogrepl.RelationMessage{Namespace: "public", RelationName: "t", ReplicaIdentity: ident, Columns: []*pglogrepl.RelationMessageColumn{
			column("b", oidInt4, flags[0]), column("a", oidInt4, flags[1]), column("v", 25, flags[2]),
		}}
	}
	for _, tc := range []struct {
		name string
		msg  *pglogrepl.RelationMessage
		pk   []string
		want []string
	}{
		{"default", flagged('d', true, true, false), []string{"a", "b"}, []string{"b", "a"}},
		{"full with a primary key", flagged('f', true, true, true), []string{"a", "b"}, []string{"b", "a"}},
		{"full without a primary key", flagged('f', true, true, true), nil, []string{"b", "a", "v"}},
		{"using index", flagged('i', false, false, true), []string{"a", "b"}, []string{"v"}},
		{"nothing", flagged('n', false, false, false), []string{"a"}, nil},
	} {
		r := newRelation(tc.msg, tc.pk)
		if diff := cmp.Diff(tc.want, r.key); diff != "" {
			t.Errorf("%s: key (-want +got):\n%s", tc.name, diff)
		}
	}
}

// goType says whether v has the Go type change.Row promises for logical type typ.
func goType(typ change.Type, v any) bool {
	switch v.(type) {
	case nil:
		return true
	case int64:
		return typ == change.TypeInt
	case float64:
		return typ == change.TypeFloat
	case bool:
		return typ == change.TypeBool
	case []byte:
		return typ == change.TypeBytes
	case string:
		return typ == change.TypeString || typ == change.TypeDecimal || typ == change.TypeTime || typ == change.TypeJSON
	}
	return false
}

func FuzzDecodeText(f *testing.F) {
	for _, oid := range []uint32{oidBool, oidBytea, oidInt8, oidInt2, oidInt4, oidOID, oidJSON, oidFloat4, oidFloat8,
		oidDate, oidTime, oidTimestamp, oidTimestamptz, oidTimetz, oidNumeric, oidJSONB, 25} {
		f.Add(oid, []byte("0"))
	}
	f.Fuzz(func(t *testing.T, oid uint32, data []byte) {
		typ := logicalType(oid)
		v, err := pgtext.Value(oid, data)
		if err != nil {
			if typ != change.TypeInt && typ != change.TypeFloat && typ != change.TypeBytes {
				t.Fatalf("pgtext.Value(%d, %q): %v; only numbers and bytea may fail", oid, data, err)
			}
			return
		}
		if v == nil || !goType(typ, v) {
			t.Fatalf("pgtext.Value(%d, %q) = %#v, not a value of logical type %s", oid, data, v, typ)
		}
		switch v := v.(type) {
		case bool:
			if v != (string(data) == "t") {
				t.Fatalf("pgtext.Value(%d, %q) = %v", oid, data, v)
			}
		case []byte:
			if got := `\x` + hex.EncodeToString(v); got != strings.ToLower(string(data)) {
				t.Fatalf("pgtext.Value(%d, %q) = %x, which encodes back to %q", oid, data, v, got)
			}
		case string:
			if v != string(data) {
				t.Fatalf("pgtext.Value(%d, %q) = %q, want the text unchanged", oid, data, v)
			}
		}
	})
}

// fuzzRelation has a column of each kind of decoding; id and code are the key.
var fuzzRelation = newRelation(&pglogrepl.RelationMessage{Namespace: "public", RelationName: "f", ReplicaIdentity: 'd',
	Columns: []*pglogrepl.RelationMessageColumn{
		column("id", oidInt4, true), column("name", 25, false), column("raw", oidBytea, false),
		column("f", oidFloat8, false), column("ok", oidBool, false), column("code", oidNumeric, true),
	}}, nil)

func FuzzDecodeTuple(f *testing.F) {
	f.Add("tttttt", []byte("1\x00x\x00\\x00\x00NaN\x00t\x001.5"), false)
	f.Add("tnnnnt", []byte("1\x00\x00\x00\x00\x001.5"), true)
	f.Add("tutttt", []byte("1\x00\x00\\xzz\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, kinds string, data []byte, keyOnly bool) {
		if len(kinds) > 16 {
			return
		}
		values := bytes.Split(data, []byte{0})
		td := &pglogrepl.TupleData{}
		for i := range len(kinds) {
			c := &pglogrepl.TupleDataColumn{DataType: kinds[i]}
			if i < len(values) {
				c.Data = values[i]
			}
			td.Columns = append(td.Columns, c)
		}
		row, err := fuzzRelation.decodeTuple(td, keyOnly)
		if len(kinds) != len(fuzzRelation.columns) && err == nil {
			t.Fatalf("a tuple of %d columns decoded without error", len(kinds))
		}
		if err != nil {
			return
		}
		for i, c := range fuzzRelation.columns {
			v, ok := row[c.Name]
			want := kinds[i] != pglogrepl.TupleDataTypeToast && (!keyOnly || c.Flags&1 != 0)
			if ok != want {
				t.Fatalf("column %s of kind %q (keyOnly %v): in row %v, want %v", c.Name, kinds[i], keyOnly, ok, want)
			}
			if ok && (v == nil) != (kinds[i] == pglogrepl.TupleDataTypeNull) {
				t.Fatalf("column %s of kind %q decoded to %#v", c.Name, kinds[i], v)
			}
			if !goType(fuzzRelation.types[c.Name], v) {
				t.Fatalf("column %s decoded to %#v, not a %s", c.Name, v, fuzzRelation.types[c.Name])
			}
		}
		if len(row) > len(fuzzRelation.columns) {
			t.Fatalf("row %v has columns the relation lacks", row)
		}
	})
}

func TestStream_TypesWithoutAGoValueTravelAsTheirText(t *testing.T) {
	f := newFixture(t, `CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
	CREATE DOMAIN flag AS boolean;
	CREATE DOMAIN blob AS bytea;
	CREATE TYPE pair AS (a integer, b text);
	CREATE TYPE mood AS ENUM ('sad', 'happy');
	CREATE TABLE public.odd (id integer PRIMARY KEY, price money, rel regclass, qty posint, ok flag, raw blob,
		comp pair, e mood, span tstzrange, mr int4multirange, x xml, p point, vb varbit, mac macaddr, tv tsvector,
		ch "char", nm name, tt timetz, iv interval, ba bytea[], ta text[], o oid, lsn pg_lsn, ip inet, n numeric,
		f4 real, f8 double precision)`)
	s := startStream(t, f.source(f.config("public.odd")))
	f.exec(`SET TimeZone = 'Asia/Tokyo';
	INSERT INTO public.odd VALUES (1, 1234.56, 'pg_class', 42, true, '\x00ff', ROW(1, 'x y'), 'happy',
		'[2024-01-01 09:00, 2024-01-02 00:00+00)', '{[1,3),[5,6)}', '<a>1</a>', '(1.5,-2)', '1010',
		'08:00:2b:01:02:03', 'a fat cat', 'x', 'abc', '12:00:00+09', '-1 day -1 hour', ARRAY['\x00'::bytea, NULL],
		'{"q\"uote",NULL}', 4294967295, '16/B374D848', '10.0.0.1', 'NaN', '-0', '-Infinity');
	INSERT INTO public.odd (id) VALUES (2)`)
	evs := s.events()
	if len(evs) != 2 {
		t.Fatalf("got %d events, want 2", len(evs))
	}
	wantRow := change.Row{"id": int64(1), "price": "$1,234.56", "rel": "pg_class", "qty": "42", "ok": "t", "raw": `\x00ff`,
		"comp": `(1,"x y")`, "e": "happy", "span": `["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")`, "mr": "{[1,3),[5,6)}",
		"x": "<a>1</a>", "p": "(1.5,-2)", "vb": "1010", "mac": "08:00:2b:01:02:03", "tv": "'a' 'cat' 'fat'", "ch": "x",
		"nm": "abc", "tt": "12:00:00+09", "iv": "-1 days -01:00:00", "ba": `{"\\x00",NULL}`, "ta": `{"q\"uote",NULL}`,
		"o": int64(4294967295), "lsn": "16/B374D848", "ip": "10.0.0.1", "n": "NaN", "f4": math.Copysign(0, -1), "f8": math.Inf(-1)}
	if diff := cmp.Diff(wantRow, evs[0].After); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
	if f4 := evs[0].After["f4"].(float64); !math.Signbit(f4) {
		t.Errorf("real -0 decoded as %v, without its sign", f4)
	}
	nulls := change.Row{}
	for c := range wantRow {
		nulls[c] = nil
	}
	nulls["id"] = int64(2)
	if diff := cmp.Diff(nulls, evs[1].After); diff != "" {
		t.Errorf("row of NULLs (-want +got):\n%s", diff)
	}
	wantTypes := map[string]change.Type{"id": change.TypeInt, "o": change.TypeInt, "f4": change.TypeFloat, "f8": change.TypeFloat,
		"n": change.TypeDecimal, "tt": change.TypeTime}
	for c := range wantRow {
		if _, ok := wantTypes[c]; !ok {
			wantTypes[c] = change.TypeString
		}
	}
	if diff := cmp.Diff(wantTypes, evs[0].Types); diff != "" {
		t.Errorf("types (-want +got):\n%s", diff)
	}
}

// TestRelation_NamesSQLTypes: the source types the envelope's Debezium
// mapping reads, with precision and scale from the type modifier.
func TestRelation_NamesSQLTypes(t *testing.T) {
	for _, tc := range []struct {
		oid    uint32
		typmod int32
		want   string
	}{
		{oidTimestamptz, -1, "timestamptz"}, {oidTimestamptz, 3, "timestamptz(3)"}, {oidTimestamp, 0, "timestamp(0)"},
		{oidTime, 6, "time(6)"}, {oidTimetz, -1, "timetz"}, {oidDate, -1, "date"},
		{oidNumeric, -1, "numeric"}, {oidNumeric, 12<<16 | 2 + 4, "numeric(12,2)"},
		{oidInt2, -1, "int2"}, {oidInt4, -1, "int4"}, {oidInt8, -1, "int8"}, {oidJSONB, -1, "jsonb"}, {oidUUID, -1, "uuid"},
		{25 /* text */, -1, ""},
	} {
		if got := sqlType(tc.oid, tc.typmod); got != tc.want {
			t.Errorf("sqlType(%d, %d) = %q, want %q", tc.oid, tc.typmod, got, tc.want)
		}
	}
}
