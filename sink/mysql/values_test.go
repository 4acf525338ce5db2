package mysql_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/mysql"
)

// kindsDDL has a column of each type the sink must write exactly.
const kindsDDL = `
CREATE TABLE kinds (
	id INT PRIMARY KEY,
	u64 BIGINT UNSIGNED, i64 BIGINT, i32 INT, si SMALLINT,
	n DECIMAL(65,30), f DOUBLE, b BOOLEAN,
	dt DATETIME(6), ts TIMESTAMP(6) NULL, d DATE, tm TIME(6), y YEAR,
	v VARCHAR(40) CHARACTER SET utf8mb4, c CHAR(3), t TEXT,
	bl BLOB, vb VARBINARY(16),
	js JSON, jm JSON,
	m ENUM('sad', 'ok', 'happy'), st SET('a', 'b', 'c'),
	bt BIT(8));
`

// kindsColumns are kinds' columns but id.
var kindsColumns = []string{"u64", "i64", "i32", "si", "n", "f", "b", "dt", "ts", "d", "tm", "y", "v", "c", "t", "bl", "vb", "js", "jm", "m", "st", "bt"}

// withNulls sets every column of kinds that r does not name to nil: what a
// row inserted without them holds, or a write of NULL to each.
func withNulls(r row) row {
	for _, c := range kindsColumns {
		if _, ok := r[c]; !ok {
			r[c] = nil
		}
	}
	return r
}

func kind(r row) change.Write { return write(change.WriteUpsert, "kinds", r, "id") }

func TestApply_ValuesRoundTripExactly(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, kindsDDL)
	jst := time.FixedZone("JST", 9*3600)
	tg.apply(t, sink.Checkpoint{},
		kind(row{
			"id": int64(1), "u64": uint64(math.MaxUint64), "i64": int64(math.MinInt64), "i32": int32(math.MaxInt32), "si": int(-32768),
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": 0.1, "b": true,
			"dt": time.Date(2024, 2, 29, 23, 59, 59, 123456789, jst),
			"ts": time.Date(2024, 2, 29, 23, 59, 59, 123456789, jst),
			"d":  "2024-02-29", "tm": "-838:59:59.000000", "y": int64(2024),
			"v": "naïve 🐘 日本語のテキスト", "c": "ab", "t": "tab\tnewline\nquote' backslash\\ NUL\x00",
			"bl": []byte{0x00, 0x01, '\\', '\'', 0xff}, "vb": []byte{0, 0, 0},
			"js": `{"b": [1, 2.50], "a": "x"}`,
			"jm": map[string]any{"k": "v", "n": 1.5, "nested": map[string]any{"z": nil}, "list": []any{1, "two"}},
			"m":  "happy", "st": "c,a", "bt": int64(0xa5),
		}),
		kind(row{
			"id": int64(2), "u64": uint64(0), "i64": uint64(math.MaxInt64), "i32": int(-7), "si": int32(7),
			"n": "-0.000000000000000000000000000001", "f": -1.7976931348623157e308, "b": false,
			"dt": time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC), "ts": time.Date(2038, 1, 19, 3, 14, 7, 999999000, time.UTC),
			"d": time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), "tm": "12:34:56.5", "y": int64(1901),
			"v": "", "c": "", "t": "", "bl": []byte{}, "vb": []byte(nil),
			"js": json.RawMessage(`[true, null]`), "jm": []any{}, "m": "sad", "st": "", "bt": int64(0),
		}),
		kind(row{"id": int64(3), "n": float64(0.1), "f": float32(0.1), "i64": int32(-1), "u64": uint64(1) << 63, "jm": json.Number("12.50")}),
		kind(withNulls(row{"id": int64(4)})),
	)
	tg.wantRows(t, "SELECT * FROM kinds ORDER BY id", []row{
		{
			"id": "1", "u64": "18446744073709551615", "i64": "-9223372036854775808", "i32": "2147483647", "si": "-32768",
			"n": "12345678901234567890123456789012345.123456789012345678901234567890",
			"f": "0.1", "b": "1",
			"dt": "2024-02-29 14:59:59.123457", "ts": "2024-02-29 14:59:59.123457",
			"d": "2024-02-29", "tm": "-838:59:59.000000", "y": "2024",
			"v": "naïve 🐘 日本語のテキスト", "c": "ab", "t": "tab\tnewline\nquote' backslash\\ NUL\x00",
			"bl": "\x00\x01\\'\xff", "vb": "\x00\x00\x00",
			// MariaDB keeps JSON text as written (MySQL 8 would normalise it)
			"js": `{"b": [1, 2.50], "a": "x"}`,
			"jm": `{"k":"v","list":[1,"two"],"n":1.5,"nested":{"z":null}}`,
			"m":  "happy", "st": "a,c", "bt": "\xa5",
		},
		{
			"id": "2", "u64": "0", "i64": "9223372036854775807", "i32": "-7", "si": "7",
			"n": "-0.000000000000000000000000000001", "f": "-1.7976931348623157e+308", "b": "0",
			"dt": "1000-01-01 00:00:00.000000", "ts": "2038-01-19 03:14:07.999999",
			"d": "2024-03-01", "tm": "12:34:56.500000", "y": "1901",
			"v": "", "c": "", "t": "", "bl": "", "vb": "",
			"js": "[true, null]", "jm": "[]", "m": "sad", "st": "", "bt": "\x00",
		},
		withNulls(row{"id": "3", "n": "0.100000000000000000000000000000", "f": "0.1", "i64": "-1", "u64": "9223372036854775808", "jm": "12.50"}),
		withNulls(row{"id": "4"}),
	})
	// An empty byte slice is an empty value, not NULL.
	tg.wantRows(t, "SELECT bl IS NULL AS bl_null, vb IS NULL AS vb_null FROM kinds WHERE id = 2", []row{{"bl_null": "0", "vb_null": "0"}})
}

func TestApply_ValuesAColumnCannotHoldAreDataErrorsNotTruncations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		r      row
		number uint16 // the server's error; 0 when the sink refuses the value itself
	}{
		{"varchar(40) given 41 characters", row{"v": "12345678901234567890123456789012345678901"}, 1406},
		{"varchar(40) given 41 Japanese characters", row{"v": "日本語のテキスト日本語のテキスト日本語のテキスト日本語のテキスト日本語のテキスト日"}, 1406},
		{"char(3) given 4 characters", row{"c": "abcd"}, 1406},
		{"varbinary(16) given 17 bytes", row{"vb": make([]byte, 17)}, 1406},
		{"int given 2^31", row{"i32": int64(math.MaxInt32) + 1}, 1264},
		{"bigint given 2^63", row{"i64": uint64(math.MaxInt64) + 1}, 1264},
		{"bigint unsigned given -1", row{"u64": int64(-1)}, 1264},
		{"decimal given too many integer digits", row{"n": "123456789012345678901234567890123456"}, 1264},
		{"decimal given text", row{"n": "twelve"}, 1366},
		{"decimal given NaN text", row{"n": "NaN"}, 1366},
		{"int given text", row{"i32": "12abc"}, 1265},
		{"datetime given an impossible date", row{"dt": "2023-02-29 00:00:00"}, 1292},
		{"date given a zero date", row{"d": "0000-00-00"}, 1292},
		{"year given 1900", row{"y": int64(1900)}, 1264},
		{"enum given another value", row{"m": "angry"}, 1265},
		{"set given another member", row{"st": "a,z"}, 1265},
		{"utf8mb4 column given invalid UTF-8", row{"v": "bad \xff byte"}, 1366},
		{"json given invalid JSON", row{"js": "{not json"}, 4025},
		{"double given NaN", row{"f": math.NaN()}, 0},
		{"double given +Inf", row{"f": math.Inf(1)}, 0},
		{"double given -Inf", row{"f": float32(math.Inf(-1))}, 0},
		{"json given an unencodable value", row{"jm": map[string]any{"f": math.NaN()}}, 0},
	}
	tg := newTarget(t, kindsDDL)
	t.Run("each", func(t *testing.T) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.r["id"] = int64(1)
				err := tg.applyErr(t, sink.Checkpoint{}, write(change.WriteUpsert, "kinds", tc.r, "id"))
				if tc.number != 0 {
					wantServerError(t, err, tc.number)
				}
				reason := sink.ReasonData
				if tc.number == 4025 { // MariaDB's JSON is a CHECK (json_valid(...))
					reason = sink.ReasonConstraint
				}
				wantSinkError(t, err, reason, "kinds")
			})
		}
	})
	// Nothing was written, not even a truncated value.
	tg.wantRows(t, "SELECT * FROM kinds", nil)
}

func TestNew_SessionsAreStrictAndUTCWhateverTheDSNSays(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, kindsDDL)
	// A DSN asking for Tokyo time and no sql_mode at all.
	s := tg.newSink(t, mysql.Config{DSN: tg.dsn + "?time_zone=%27%2B09%3A00%27&sql_mode=%27%27", StateSchema: tg.state})
	at := time.Date(2024, 2, 29, 23, 59, 59, 0, time.FixedZone("JST", 9*3600))
	if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{kind(row{"id": int64(1), "ts": at, "dt": at})}}, sink.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	tg.wantRows(t, "SELECT id, ts, dt, UNIX_TIMESTAMP(ts) AS unix FROM kinds", []row{
		{"id": "1", "ts": "2024-02-29 14:59:59.000000", "dt": "2024-02-29 14:59:59.000000", "unix": "1709218799.000000"},
	})
	err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{kind(row{"id": int64(2), "c": "abcd"})}}, sink.Checkpoint{})
	if err == nil {
		t.Fatal("Apply of a too-long value succeeded: the session is not strict")
	}
	wantServerError(t, err, 1406)
}

func TestApply_TextWithAUTCOffsetLandsAsThatInstantInUTC(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, kindsDDL)
	tg.apply(t, sink.Checkpoint{},
		// PostgreSQL's timestamptz text: offsets of hours, minutes and seconds.
		kind(row{"id": int64(1), "dt": "2024-03-01 10:02:03.654321+09", "ts": "1970-01-01 00:00:01+00"}),
		kind(row{"id": int64(2), "dt": "2024-06-30 23:30:00-02:30", "ts": "2024-01-01 00:00:00.000001-03:30:15"}),
		// RFC 3339.
		kind(row{"id": int64(3), "dt": "2024-02-29T23:59:59.5Z", "ts": "2024-03-01T00:00:00+01:00"}),
		// Without an offset, as written; and the offset of a DATE or text column is the server's business.
		kind(row{"id": int64(4), "dt": "2024-02-29 23:59:59.123456", "ts": "2024-02-29 23:59:59", "v": "2024-03-01 10:02:03+09"}),
	)
	tg.wantRows(t, "SELECT id, dt, ts, v FROM kinds ORDER BY id", []row{
		{"id": "1", "dt": "2024-03-01 01:02:03.654321", "ts": "1970-01-01 00:00:01.000000", "v": nil},
		{"id": "2", "dt": "2024-07-01 02:00:00.000000", "ts": "2024-01-01 03:30:15.000001", "v": nil},
		{"id": "3", "dt": "2024-02-29 23:59:59.500000", "ts": "2024-02-29 23:00:00.000000", "v": nil},
		{"id": "4", "dt": "2024-02-29 23:59:59.123456", "ts": "2024-02-29 23:59:59.000000", "v": "2024-03-01 10:02:03+09"},
	})
	// Text that only looks zoned is still the server's to refuse.
	wantServerError(t, tg.applyErr(t, sink.Checkpoint{}, kind(row{"id": int64(5), "dt": "2024-02-30 00:00:00+00"})), 1292)
}

func TestApply_FloatColumnTakesTheLargestFloatsShortestText(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "CREATE TABLE floats (id INT PRIMARY KEY, f FLOAT, d DOUBLE)")
	w := func(r row) change.Write { return write(change.WriteUpsert, "floats", r, "id") }
	// 3.4028235e+38 is the shortest text of the largest float (PostgreSQL's
	// real), a little past it as a double.
	tg.apply(t, sink.Checkpoint{}, w(row{"id": int64(1), "f": 3.4028235e+38, "d": 3.4028235e+38}),
		w(row{"id": int64(2), "f": -3.4028235e+38, "d": -3.4028235e+38}), w(row{"id": int64(3), "f": 1.1, "d": 1.1}))
	tg.wantRows(t, "SELECT id, CAST(f AS DOUBLE) AS f, d FROM floats ORDER BY id", []row{
		{"id": "1", "f": "3.4028234663852886e+38", "d": "3.4028235e+38"},
		{"id": "2", "f": "-3.4028234663852886e+38", "d": "-3.4028235e+38"},
		{"id": "3", "f": "1.100000023841858", "d": "1.1"},
	})
	// Past what rounds to a float, the server refuses it.
	wantServerError(t, tg.applyErr(t, sink.Checkpoint{}, w(row{"id": int64(4), "f": 3.41e+38})), 1264)
}
