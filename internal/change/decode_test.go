package change

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDecode_AValueOfAKindItsTypeCannotHoldIsAnError: each logical type
// takes the JSON kinds the envelope writes it as, and no other.
func TestDecode_AValueOfAKindItsTypeCannotHoldIsAnError(t *testing.T) {
	for _, tc := range []struct {
		typ   Type
		value string
		want  any    // decoded, when err is ""
		err   string // the error's end
	}{
		{TypeDecimal, `12.50`, "12.50", ""},
		{TypeDecimal, `"12.50"`, "12.50", ""},
		{TypeDecimal, `true`, nil, `column "v": a JSON true is not a decimal value`},
		{TypeDecimal, `{"a":1}`, nil, `column "v": a JSON { is not a decimal value`},
		{TypeJSON, `"{\"a\": 1}"`, `{"a": 1}`, ""},
		{TypeJSON, `{"a":1}`, `{"a":1}`, ""},
		{TypeJSON, `[1,2]`, `[1,2]`, ""},
		{TypeJSON, `1`, nil, `column "v": a JSON number is not a json value`},
		{TypeJSON, `false`, nil, `column "v": a JSON false is not a json value`},
		{TypeBool, `false`, false, ""},
		{TypeBool, `"t"`, nil, `column "v": a JSON string is not a bool value`},
		{TypeInt, `"1"`, nil, `column "v": a JSON string is not a int64 value`},
	} {
		v := `{"after":{"v":` + tc.value + `},"source":{"schema":"s","table":"t","types":{"v":"` + string(tc.typ) + `"}},"op":"c"}`
		got, err := Decode(nil, []byte(v))
		switch {
		case tc.err != "":
			if err == nil || !strings.HasSuffix(err.Error(), tc.err) {
				t.Errorf("decode %s: error %v, want one ending %q", v, err, tc.err)
			}
		case err != nil:
			t.Errorf("decode %s: %v", v, err)
		case !cmp.Equal(tc.want, got.After["v"]):
			t.Errorf("decode %s: %#v, want %#v", v, got.After["v"], tc.want)
		}
	}
}

// TestEnvelope_TextThatStartsOrEndsWithAnEscapeComesBack: a string whose
// JSON begins or ends with an escape decodes to the string.
func TestEnvelope_TextThatStartsOrEndsWithAnEscapeComesBack(t *testing.T) {
	enc := &Encoder{Version: "test", Connector: "postgresql"}
	for _, s := range []string{`"quoted"`, "\nline", "tab\t", `\`, "", "plain"} {
		ev := &Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"id"}, Types: map[string]Type{"id": TypeInt, "note": TypeString},
			After: Row{"id": int64(1), "note": s}}
		v, err := enc.Value(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(nil, v)
		if err != nil {
			t.Fatalf("decode %s: %v", v, err)
		}
		if got.After["note"] != s {
			t.Errorf("note %q came back as %q (record %s)", s, got.After["note"], v)
		}
	}
}

// TestDecode_ATablesTypesAreParsedOnce: the types and sql_types objects
// of a table's records are parsed on its first record and shared by the
// next: a record whose objects were seen costs fewer allocations than one
// whose were not.
func TestDecode_ATablesTypesAreParsedOnce(t *testing.T) {
	var cols []string
	for i := range 12 {
		cols = append(cols, fmt.Sprintf(`"column_%d":"int64"`, i))
	}
	record := func(n int) []byte {
		types := `{` + strings.Join(cols, ",") + fmt.Sprintf(`,"unseen_%d":"int64"}`, n)
		sqlTypes := strings.ReplaceAll(types, `"int64"`, `"int8"`)
		return []byte(`{"after":{"column_0":1},"source":{"schema":"s","table":"t","types":` + types + `,"sql_types":` + sqlTypes + `},"op":"c"}`)
	}
	fresh := make([][]byte, 30)
	for i := range fresh {
		fresh[i] = record(i + 1000*len(t.Name()))
	}
	n := 0
	first := testing.AllocsPerRun(20, func() {
		if _, err := Decode(nil, fresh[n]); err != nil {
			t.Fatal(err)
		}
		n++
	})
	seen := record(0)
	if _, err := Decode(nil, seen); err != nil {
		t.Fatal(err)
	}
	next := testing.AllocsPerRun(20, func() {
		if _, err := Decode(nil, seen); err != nil {
			t.Fatal(err)
		}
	})
	if 2*next > first {
		t.Errorf("%v allocations for a record whose types were seen, %v for one whose were not: are they parsed again?", next, first)
	}
}

// TestDecode_TypesOfUpTo64KiBAreParsedOnce: the types and sql_types
// caches take objects up to typesCacheMaxBytes, that size included: a
// record whose objects were seen saves at least half an allocation per
// column.
func TestDecode_TypesOfUpTo64KiBAreParsedOnce(t *testing.T) {
	// exactly typesCacheMaxBytes of JSON: columns, then one whose name
	// (of pad) pads the object to the size.
	object := func(typ string, pad byte) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := 0; b.Len() < typesCacheMaxBytes-200; i++ {
			fmt.Fprintf(&b, `"c%05d":"%s",`, i, typ)
		}
		n := typesCacheMaxBytes - b.Len() - len(`"":"`+typ+`"}`)
		b.WriteString(`"` + strings.Repeat(string(pad), n) + `":"` + typ + `"}`)
		return b.String()
	}
	for _, key := range []string{"types", "sql_types"} {
		record := func(pad byte) []byte {
			o := object("int64", pad)
			if key == "sql_types" {
				o = object("int8", pad)
			}
			if len(o) != typesCacheMaxBytes {
				t.Fatalf("an object of %d bytes, want %d", len(o), typesCacheMaxBytes)
			}
			return []byte(`{"after":{"c00000":1},"source":{"schema":"s","table":"big","` + key + `":` + o + `},"op":"c"}`)
		}
		var fresh [][]byte // a new object for each run
		for pad := byte('a'); pad < 'a'+6; pad++ {
			fresh = append(fresh, record(pad))
		}
		first := testing.AllocsPerRun(5, func() {
			if _, err := Decode(nil, fresh[0]); err != nil {
				t.Fatal(err)
			}
			fresh = fresh[1:]
		})
		seen := record('A')
		next := testing.AllocsPerRun(5, func() {
			if _, err := Decode(nil, seen); err != nil {
				t.Fatal(err)
			}
		})
		// Parsing allocates at least once per column (its name).
		if cols := float64(strings.Count(string(seen), `":"int`)); first-next < cols/2 {
			t.Errorf("%s of 64 KiB (%v columns): %v allocations for a record whose %s were seen, %v for one whose were not: are they parsed again?", key, cols, next, key, first)
		}
	}
}
