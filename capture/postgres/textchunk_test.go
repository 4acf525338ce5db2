package postgres

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestTextChunk_ReadsWhatChunkReads pages through tables of every kind of
// value and key (quotes and backslashes in text keys, whose last key
// TextChunk writes as a literal) with Chunk and with TextChunk, and finds
// the same rows and the same last keys chunk by chunk, for every chunk
// size.
func TestTextChunk_ReadsWhatChunkReads(t *testing.T) {
	f := newFixture(t, kindsDDL+`;
	CREATE TABLE oddkeys (b bytea, n numeric, ts timestamptz, f float8, ok boolean, u uuid, note text,
		PRIMARY KEY (b, n, ts, f, ok, u));
	CREATE TABLE quoted (k text PRIMARY KEY, v text)`)
	f.exec(`INSERT INTO kinds VALUES
	(1, -32768, 2147483647, '-9223372036854775808', 3.14, 'NaN', true, '12345678901234567890.0123456789',
	 E'naïve café 😀 日本語\n\ttab \\ ''quote'' \r \b \f \v', '\x00ff00', '{"b": [1, 2.50], "a": null}',
	 '2024-02-29 23:59:59.123456+02', '2024-02-29', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
	(2, NULL, NULL, NULL, NULL, '-Infinity', false, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(3, 0, 0, 0, 0, 0, false, 0, '', '\x', '[]', '1970-01-01 00:00:00+00', '1970-01-01', '00000000-0000-0000-0000-000000000000');
	INSERT INTO oddkeys VALUES
	('\x00ff', '-1.50', '2024-02-29 23:59:59.123456+02', 0.1, true, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a'),
	('\x00ff', '-1.5000', '2024-02-29 23:59:59.123456+02', 'Infinity', false, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', 'b'),
	('', '1e-20', '1970-01-01 00:00:00+00', 'NaN', true, '00000000-0000-0000-0000-000000000000', 'c');
	INSERT INTO quoted VALUES ('a''b', '1'), (E'a\\b', '2'), (E'a\\''b', '3'), ('c', NULL), (E'd\te', E'\\N'), ('', 'empty')`)
	r, err := NewTableReader(t.Context(), f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, name := range []string{"kinds", "oddkeys", "quoted"} {
		bt, err := r.Describe(t.Context(), tbl(name))
		if err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 2, 100} {
			var after []string
			for n := 0; ; n++ {
				want, wantLast, err := r.Chunk(t.Context(), bt, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				got, err := r.TextChunk(t.Context(), bt, bt.Columns, after, limit)
				if err != nil {
					t.Fatalf("%s after %q: %v", name, after, err)
				}
				rows, err := got.Decode()
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, rows, cmpopts.EquateNaNs(), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s after %q, limit %d: decoded rows (-Chunk +TextChunk):\n%s", name, after, limit, diff)
				}
				if diff := cmp.Diff(wantLast, got.Last); diff != "" || got.Rows != len(want) {
					t.Errorf("%s after %q, limit %d: last key (-Chunk +TextChunk):\n%s\nrows %d, want %d", name, after, limit, diff, got.Rows, len(want))
				}
				if len(want) < limit {
					break
				}
				after = wantLast
				if n > 20 {
					t.Fatalf("%s: more chunks than rows", name)
				}
			}
		}
	}
	// The columns asked for, in the order asked for, each line escaped.
	bt, err := r.Describe(t.Context(), tbl("quoted"))
	if err != nil {
		t.Fatal(err)
	}
	whole, _, err := r.Chunk(t.Context(), bt, []string{"a'b"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.TextChunk(t.Context(), bt, []string{"v", "k"}, []string{"a'b"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, row := range whole {
		v, k := "\\N", strings.NewReplacer(`\`, `\\`, "\t", `\t`).Replace(row["k"].(string))
		if row["v"] != nil {
			v = strings.NewReplacer(`\`, `\\`, "\t", `\t`).Replace(row["v"].(string))
		}
		want.WriteString(v + "\t" + k + "\n")
	}
	if string(got.Data) != want.String() {
		t.Errorf("COPY text %q, want %q", got.Data, want.String())
	}
}
