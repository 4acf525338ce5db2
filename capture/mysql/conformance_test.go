package mysql_test

import (
	"testing"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/capture/mysql"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

func TestSource_Conformance(t *testing.T) {
	capturetest.RunSource(t, capturetest.SourceHarness{
		NewDatabase: func(t *testing.T) capturetest.SourceDB {
			dsn := testenv.NewMariaDBDatabase(t)
			return &conformanceDB{dsn: dsn, db: sourceDB(t, dsn), store: &capturetest.MemPositions{}}
		},
		Kinds: map[string]capturetest.Kind{
			capturetest.KindInt: {SQL: "INT", Type: change.TypeInt,
				Literals: [2]string{"-2147483648", "7"}, Values: [2]any{int64(-2147483648), int64(7)}},
			capturetest.KindBigInt: {SQL: "BIGINT", Type: change.TypeInt,
				Literals: [2]string{"-9223372036854775808", "9223372036854775807"}, Values: [2]any{int64(-9223372036854775808), int64(9223372036854775807)}},
			capturetest.KindDecimal: {SQL: "DECIMAL(30,10)", Type: change.TypeDecimal,
				Literals: [2]string{"'12345678901234567890.0123456789'", "'-0.0000000001'"}, Values: [2]any{"12345678901234567890.0123456789", "-0.0000000001"}},
			capturetest.KindFloat: {SQL: "DOUBLE", Type: change.TypeFloat,
				Literals: [2]string{"2.718281828459045", "-0.5"}, Values: [2]any{2.718281828459045, -0.5}},
			capturetest.KindText: {SQL: "TEXT", Type: change.TypeString,
				Literals: [2]string{"'naïve café 😀 日本語 ''quote'''", "''"}, Values: [2]any{"naïve café 😀 日本語 'quote'", ""}},
			// TEXT cannot be a key without a prefix length.
			capturetest.KindKeyText: {SQL: "VARCHAR(64)", Type: change.TypeString,
				Literals: [2]string{"'k1'", "'é✓'"}, Values: [2]any{"k1", "é✓"}},
			// DATETIME has no time zone: carried as written.
			capturetest.KindTime: {SQL: "DATETIME(6)", Type: change.TypeTime,
				Literals: [2]string{"'2024-02-29 23:59:59.123456'", "'1970-01-01 00:00:00'"}, Values: [2]any{"2024-02-29 23:59:59.123456", "1970-01-01 00:00:00.000000"}},
			capturetest.KindBytes: {SQL: "VARBINARY(16)", Type: change.TypeBytes,
				Literals: [2]string{"X'00FF00'", "X''"}, Values: [2]any{[]byte{0, 0xff, 0}, []byte{}}},
			// BOOLEAN is TINYINT(1): an integer.
			capturetest.KindBool: {SQL: "BOOLEAN", Type: change.TypeInt,
				Literals: [2]string{"TRUE", "FALSE"}, Values: [2]any{int64(1), int64(0)}},
			// MariaDB's JSON is LONGTEXT with a check: its text, as written.
			capturetest.KindJSON: {SQL: "JSON", Type: change.TypeString,
				Literals: [2]string{`'{"b": [1, 2.50], "a": null}'`, "'[]'"}, Values: [2]any{`{"b": [1, 2.50], "a": null}`, "[]"}},
		},
		// binlog_row_image=FULL.
		FullBeforeImages: true,
		Analyze:          "ANALYZE TABLE %s",
	})
}

// conformanceDB is a database as capturetest.RunSource uses it: its
// capturers share one position store.
type conformanceDB struct {
	dsn, db string
	store   *capturetest.MemPositions
}

func (d *conformanceDB) Table(name string) change.Table {
	return change.Table{Schema: d.db, Name: name}
}

func (d *conformanceDB) Exec(t *testing.T, sql string) { t.Helper(); mustExec(t, d.db, sql) }

func (d *conformanceDB) Source(t *testing.T, c capturetest.SourceConfig) capture.Source {
	t.Helper()
	var tables []string
	for _, tb := range c.Tables {
		tables = append(tables, tb.String())
	}
	return newSourceMax(t, d.dsn, d.store, c.MaxBatch, tables...)
}

func (d *conformanceDB) Reader(t *testing.T) capturetest.SnapshotReader {
	t.Helper()
	r, err := mysql.NewTableReader(t.Context(), d.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
