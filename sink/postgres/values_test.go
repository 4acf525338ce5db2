package postgres

import "testing"

func TestTableValue_MySQLZeroDatesBecomeNullInDateColumnsOnly(t *testing.T) {
	tbl := &table{types: map[string]string{"d": "date", "ts": "timestamp without time zone",
		"tz": "timestamp with time zone", "s": "text"}}
	for _, tc := range []struct {
		col  string
		in   any
		want any
	}{
		{"d", "0000-00-00", nil},
		{"ts", "0000-00-00 00:00:00", nil},
		{"ts", "0000-00-00 00:00:00.000000", nil},
		{"tz", "0000-00-00T00:00:00", nil},
		{"s", "0000-00-00", "0000-00-00"},                    // text keeps it
		{"d", "2024-00-10", "2024-00-10"},                    // partly zero: PostgreSQL refuses it
		{"ts", "0000-00-00 12:00:00", "0000-00-00 12:00:00"}, // not MySQL's zero value
		{"ts", "0000-00-00 00:00", "0000-00-00 00:00"},
		{"d", "2024-01-02", "2024-01-02"},
		{"d", int64(0), int64(0)},
		{"d", nil, nil},
	} {
		if got := tbl.value(tc.col, tc.in); got != tc.want {
			t.Errorf("value(%s, %#v) = %#v, want %#v", tc.col, tc.in, got, tc.want)
		}
	}
}
