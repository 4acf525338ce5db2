package change

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestEncoder_TsNsIsNullForATimeItsNanosecondsDoNotFit: source.ts_ns (the
// commit time) and the top level's ts_ns (the time of encoding) are a
// time's nanoseconds since the epoch where an int64 holds them, and null,
// as the schema's optional int64 allows, where it does not: the zero time
// of an unknown commit time, or a time before 1677 or after 2262, whose
// UnixNano is undefined.
// ts_ms and ts_us hold every such time, and the commit time decodes back.
func TestEncoder_TsNsIsNullForATimeItsNanosecondsDoNotFit(t *testing.T) {
	type times struct{ Ms, Us, Ns *int64 }
	ptr := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		at   time.Time
		want times
	}{
		{"zero", time.Time{}, times{ptr(-62135596800000), ptr(-62135596800000000), nil}},
		{"in range", time.Date(2024, 3, 1, 8, 20, 30, 123456789, time.UTC),
			times{ptr(1709281230123), ptr(1709281230123456), ptr(1709281230123456789)}},
		{"first nanosecond an int64 holds", time.Unix(0, -1<<63), times{ptr(-9223372036855), ptr(-9223372036854776), ptr(-1 << 63)}},
		{"last nanosecond an int64 holds", time.Unix(0, 1<<63-1), times{ptr(9223372036854), ptr(9223372036854775), ptr(1<<63 - 1)}},
		{"before 1677", time.Date(1677, 9, 21, 0, 0, 0, 0, time.UTC), times{ptr(-9223372800000), ptr(-9223372800000000), nil}},
		{"after 2262", time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC), times{ptr(9223372800000), ptr(9223372800000000), nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, schemas := range []bool{false, true} {
				enc := &Encoder{Version: "test", Connector: "postgresql", Schemas: schemas, Now: func() time.Time { return tc.at }}
				v, err := enc.Value(&Event{Op: OpCreate, Table: Table{"s", "t"}, Key: []string{"id"},
					Types: map[string]Type{"id": TypeInt}, After: Row{"id": int64(1)}, Commit: tc.at})
				if err != nil {
					t.Fatal(err)
				}
				var doc struct {
					Payload *json.RawMessage `json:"payload"`
				}
				if err := json.Unmarshal(v, &doc); err != nil {
					t.Fatalf("%s: %v", v, err)
				}
				payload := v
				if schemas {
					payload = *doc.Payload
				}
				var got struct {
					Ms     *int64 `json:"ts_ms"`
					Us     *int64 `json:"ts_us"`
					Ns     *int64 `json:"ts_ns"`
					Source struct {
						Ms *int64 `json:"ts_ms"`
						Us *int64 `json:"ts_us"`
						Ns *int64 `json:"ts_ns"`
					} `json:"source"`
				}
				if err := json.Unmarshal(payload, &got); err != nil {
					t.Fatalf("%s: %v", payload, err)
				}
				if diff := cmp.Diff(tc.want, times(got.Source)); diff != "" {
					t.Errorf("schemas %v: source times (-want +got):\n%s", schemas, diff)
				}
				if diff := cmp.Diff(tc.want, times{got.Ms, got.Us, got.Ns}); diff != "" {
					t.Errorf("schemas %v: the top level's times (-want +got):\n%s", schemas, diff)
				}
				back, err := Decode(nil, v)
				if err != nil {
					t.Fatal(err)
				}
				if want := tc.at.Truncate(time.Millisecond); !back.Commit.Equal(want) {
					t.Errorf("schemas %v: commit time decoded as %v, want %v", schemas, back.Commit, want)
				}
			}
		})
	}
}
