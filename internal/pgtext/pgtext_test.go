package pgtext

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValue_DecodesEachKindAndNamesBadInput(t *testing.T) {
	for _, tc := range []struct {
		oid  uint32
		in   []byte
		want any
		err  string
	}{
		{OIDInt8, []byte("-9223372036854775808"), int64(-9223372036854775808), ""},
		{OIDInt4, []byte("42"), int64(42), ""},
		{OIDInt2, []byte("x"), nil, `parsing "x": invalid syntax`},
		{OIDOID, []byte("4294967295"), int64(4294967295), ""},
		{OIDFloat8, []byte("-0.5"), -0.5, ""},
		{OIDFloat4, []byte("Infinity"), nil, ""}, // checked below: +Inf
		{OIDBool, []byte("t"), true, ""},
		{OIDBool, []byte("f"), false, ""},
		{OIDBytea, []byte(`\x00ff`), []byte{0, 0xff}, ""},
		{OIDBytea, []byte(`abc`), nil, "bytea not in hex format"},
		{OIDNumeric, []byte("1.50"), "1.50", ""},
		{OIDTimestamptz, []byte("2024-01-02 03:04:05.123456+00"), "2024-01-02 03:04:05.123456+00", ""},
		{25, []byte(""), "", ""},
		{25, nil, nil, ""},
	} {
		got, err := Value(tc.oid, tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Value(%d, %q) error = %v, want one containing %q", tc.oid, tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("Value(%d, %q): %v", tc.oid, tc.in, err)
		case tc.oid == OIDFloat4:
			if f, ok := got.(float64); !ok || f < 1e308 {
				t.Errorf("Value(float4, Infinity) = %v, want +Inf", got)
			}
		default:
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Value(%d, %q) (-want +got):\n%s", tc.oid, tc.in, diff)
			}
		}
	}
}

func TestRow_DecodesEveryColumnAsValueDoes(t *testing.T) {
	names := []string{"id", "email", "note", "balance", "ok", "b", "empty"}
	oids := []uint32{OIDInt8, 25, 25, OIDNumeric, OIDBool, OIDBytea, 1043}
	vals := [][]byte{[]byte("7"), []byte("a@b.c"), nil, []byte("12.30"), []byte("f"), []byte(`\x01`), []byte("")}
	row := map[string]any{}
	if err := Row(row, names, oids, vals); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": int64(7), "email": "a@b.c", "note": nil, "balance": "12.30", "ok": false, "b": []byte{1}, "empty": ""}
	if diff := cmp.Diff(want, row); diff != "" {
		t.Errorf("Row (-want +got):\n%s", diff)
	}
	for i, name := range names {
		v, err := Value(oids[i], vals[i])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(v, row[name]); diff != "" {
			t.Errorf("column %s: Row and Value differ (-Value +Row):\n%s", name, diff)
		}
	}

	err := Row(map[string]any{}, []string{"id", "n"}, []uint32{OIDInt8, OIDInt4}, [][]byte{[]byte("1"), []byte("1.5")})
	if err == nil || !strings.Contains(err.Error(), `column "n"`) {
		t.Errorf("Row with a bad int4 = %v, want an error naming column n", err)
	}
	if err := Row(map[string]any{}, []string{"a"}, []uint32{25}, nil); err == nil {
		t.Error("Row with fewer values than names: no error")
	}
}

func TestCopyFields_SplitsAndUnescapesALineOfCOPYText(t *testing.T) {
	tests := []struct {
		line string
		want [][]byte
	}{
		{`1`, [][]byte{[]byte("1")}},
		{"1\t\\N\t", [][]byte{[]byte("1"), nil, {}}},
		{"\t", [][]byte{{}, {}}},
		{`a\tb\nc\rd\\e\bf\fg\vh`, [][]byte{[]byte("a\tb\nc\rd\\e\bf\fg\vh")}},
		{`\\N` + "\t" + `\N`, [][]byte{[]byte(`\N`), nil}},
		{`x\'y\`, [][]byte{[]byte(`x'y\`)}},
		{"naïve 😀\t日本", [][]byte{[]byte("naïve 😀"), []byte("日本")}},
	}
	for _, tt := range tests {
		got := CopyFields([]byte(tt.line))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("CopyFields(%q) (-want +got):\n%s", tt.line, diff)
		}
		for i, f := range got {
			if tt.want[i] != nil && f == nil {
				t.Errorf("CopyFields(%q)[%d] is NULL, want %q", tt.line, i, tt.want[i])
			}
			// CopyField reads the one value.
			one := CopyField([]byte(tt.line), i)
			if !bytes.Equal(one, tt.want[i]) || (one == nil) != (tt.want[i] == nil) {
				t.Errorf("CopyField(%q, %d) = %q, want %q", tt.line, i, one, tt.want[i])
			}
		}
		if got := CopyField([]byte(tt.line), len(tt.want)); got != nil {
			t.Errorf("CopyField(%q, %d) past the last value = %q, want nil", tt.line, len(tt.want), got)
		}
	}
}

// TestEncode_WritesEachKindInPostgreSQLsTextInputFormat: every kind a row
// holds, as the sinks send it; NULL is nil; a value JSON cannot hold names
// its type.
func TestEncode_WritesEachKindInPostgreSQLsTextInputFormat(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"naïve \\ 'x'", "naïve \\ 'x'"},
		{int64(-9223372036854775808), "-9223372036854775808"},
		{42, "42"},
		{int32(-7), "-7"},
		{uint64(18446744073709551615), "18446744073709551615"},
		{-0.5, "-0.5"},
		{1e21, "1e+21"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		{math.NaN(), "NaN"},
		{true, "true"},
		{false, "false"},
		{[]byte{0, 0xAB, 0xff}, `\x00abff`},
		{[]byte{}, `\x`},
		{time.Date(2024, 3, 1, 8, 20, 30, 123456000, time.FixedZone("", 2*3600)), "2024-03-01T08:20:30.123456+02:00"},
		{map[string]any{"a": []any{1, "x"}}, `{"a":[1,"x"]}`},
	} {
		got, err := Encode(tc.in)
		if err != nil {
			t.Errorf("Encode(%#v): %v", tc.in, err)
			continue
		}
		if got == nil || *got != tc.want {
			t.Errorf("Encode(%#v) = %v, want %q", tc.in, ptrText(got), tc.want)
		}
	}
	if got, err := Encode(nil); got != nil || err != nil {
		t.Errorf("Encode(nil) = %v, %v, want NULL (nil) and no error", ptrText(got), err)
	}
	_, err := Encode(make(chan int))
	if err == nil || !strings.Contains(err.Error(), "value of type chan int has no text form") {
		t.Errorf("Encode(chan int) error = %v, want one naming the type", err)
	}
}

func ptrText(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return strconv.Quote(*s)
}

// TestAppendCopy_WritesValuesThatCopyFieldsReadsBack: a line of COPY text
// AppendCopy writes, tab-separated, splits back into Encode's text of each
// value (NULL as nil), escapes included.
func TestAppendCopy_WritesValuesThatCopyFieldsReadsBack(t *testing.T) {
	vals := []any{nil, "a\tb\nc\rd\\e", int64(-12), true, false, []byte{1, 0xfe}, 2.5, math.Inf(-1), "", `\N`}
	var line []byte
	for i, v := range vals {
		if i > 0 {
			line = append(line, '\t')
		}
		var err error
		if line, err = AppendCopy(line, v); err != nil {
			t.Fatalf("AppendCopy(%#v): %v", v, err)
		}
	}
	wantLine := `\N` + "\t" + `a\tb\nc\rd\\e` + "\t-12\ttrue\tfalse\t" + `\\x01fe` + "\t2.5\t-Infinity\t\t" + `\\N`
	if string(line) != wantLine {
		t.Errorf("AppendCopy wrote %q, want %q", line, wantLine)
	}
	want := [][]byte{nil, []byte("a\tb\nc\rd\\e"), []byte("-12"), []byte("true"), []byte("false"), []byte(`\x01fe`),
		[]byte("2.5"), []byte("-Infinity"), {}, []byte(`\N`)}
	if diff := cmp.Diff(want, CopyFields(line)); diff != "" {
		t.Errorf("CopyFields of AppendCopy's line (-want +got):\n%s", diff)
	}

	b, err := AppendCopy([]byte("x"), make(chan int))
	if err == nil || !strings.Contains(err.Error(), "chan int") {
		t.Errorf("AppendCopy(chan int) error = %v, want one naming the type", err)
	}
	if string(b) != `x\N` {
		t.Errorf("AppendCopy(chan int) wrote %q, want %q (NULL in its place)", b, `x\N`)
	}
}

// TestRowHash_HashesEachValueByItsPlaceWithNullAsAConstant pins the SQL
// both sides of a hashed sweep run: equal SQL on source and target is what
// makes their summaries comparable.
func TestRowHash_HashesEachValueByItsPlaceWithNullAsAConstant(t *testing.T) {
	got := RowHash([]string{`"id"`, `"note"`, `"amount"`})
	want := `((CASE WHEN "id" IS NULL THEN -1 ELSE hashtextextended(concat("id"), 0) END)` +
		` # (CASE WHEN "note" IS NULL THEN -2 ELSE hashtextextended(concat("note"), 1) END)` +
		` # (CASE WHEN "amount" IS NULL THEN -3 ELSE hashtextextended(concat("amount"), 2) END))`
	if got != want {
		t.Errorf("RowHash =\n%s\nwant\n%s", got, want)
	}
	if got, want := HashSelect("r"), "count(*), coalesce(sum(r), 0)::text"; got != want {
		t.Errorf("HashSelect(r) = %s, want %s", got, want)
	}
}

// TestMD5Hash_IsTheMD5OfTheRowsLengthPrefixedTexts pins the md5 kind's
// definition: ('abc', NULL, ”) is "3:abcN0:" and ('é', '1') "1:é1:1"
// (lengths in characters; every column a string), their md5 "8550bb35c4d0298454d9a28524b04d63"
// (from md5sum); no rows are "".
func TestMD5Hash_IsTheMD5OfTheRowsLengthPrefixedTexts(t *testing.T) {
	s := func(v string) *string { return &v }
	got := MD5Hash([]bool{true, true, true}, [][]*string{{s("abc"), nil, s("")}, {s("é"), s("1")}})
	if want := (RowsHash{Rows: 2, Sum: "8550bb35c4d0298454d9a28524b04d63"}); got != want {
		t.Errorf("MD5Hash = %+v, want %+v", got, want)
	}
	if got, want := MD5Hash(nil, nil), (RowsHash{Rows: 0, Sum: ""}); got != want {
		t.Errorf("MD5Hash of no rows = %+v, want %+v", got, want)
	}
}
