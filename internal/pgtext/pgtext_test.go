package pgtext

import (
	"bytes"
	"strings"
	"testing"

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
