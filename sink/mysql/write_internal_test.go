package mysql

import (
	"testing"
	"time"
)

func TestZonedTime_ReadsTextWithAnOffsetOnly(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tt := range []struct {
		in   string
		want time.Time // zero: not zoned
	}{
		{"2024-03-01 10:02:03.654321+09", at("2024-03-01T10:02:03.654321+09:00")},
		{"2024-03-01 10:02:03+05:30", at("2024-03-01T10:02:03+05:30")},
		{"1900-01-01 00:00:00-00:17:30", at("1900-01-01T00:17:30Z")},
		{"2024-03-01T10:02:03.5Z", at("2024-03-01T10:02:03.5Z")},
		{"2024-03-01 10:02:03.654321", time.Time{}},
		{"2024-03-01 10:02:03", time.Time{}},
		{"2024-03-01", time.Time{}},
		{"not a time at all, with a + in it", time.Time{}},
	} {
		got, ok := zonedTime(tt.in)
		if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
			t.Errorf("zonedTime(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
		}
	}
}
