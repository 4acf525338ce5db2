package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/capture"
	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/internal/change"
)

func TestSource_Conformance(t *testing.T) {
	capturetest.RunSource(t, capturetest.SourceHarness{
		NewDatabase: func(t *testing.T) capturetest.SourceDB { return conformanceDB{newFixture(t, "")} },
		Kinds: map[string]capturetest.Kind{
			capturetest.KindInt: {SQL: "integer", Type: change.TypeInt,
				Literals: [2]string{"-2147483648", "7"}, Values: [2]any{int64(-2147483648), int64(7)}},
			capturetest.KindBigInt: {SQL: "bigint", Type: change.TypeInt,
				Literals: [2]string{"-9223372036854775808", "9223372036854775807"}, Values: [2]any{int64(-9223372036854775808), int64(9223372036854775807)}},
			capturetest.KindDecimal: {SQL: "numeric(30,10)", Type: change.TypeDecimal,
				Literals: [2]string{"'12345678901234567890.0123456789'", "'-0.0000000001'"}, Values: [2]any{"12345678901234567890.0123456789", "-0.0000000001"}},
			capturetest.KindFloat: {SQL: "double precision", Type: change.TypeFloat,
				Literals: [2]string{"2.718281828459045", "-0.5"}, Values: [2]any{2.718281828459045, -0.5}},
			capturetest.KindText: {SQL: "text", Type: change.TypeString,
				Literals: [2]string{"'naïve café 😀 日本語 ''quote'''", "''"}, Values: [2]any{"naïve café 😀 日本語 'quote'", ""}},
			capturetest.KindKeyText: {SQL: "text", Type: change.TypeString,
				Literals: [2]string{"'k1'", "'é✓'"}, Values: [2]any{"k1", "é✓"}},
			// timestamptz, carried in UTC.
			capturetest.KindTime: {SQL: "timestamptz", Type: change.TypeTime,
				Literals: [2]string{"'2024-02-29 23:59:59.123456+02'", "'1970-01-01 00:00:00+00'"}, Values: [2]any{"2024-02-29 21:59:59.123456+00", "1970-01-01 00:00:00+00"}},
			capturetest.KindBytes: {SQL: "bytea", Type: change.TypeBytes,
				Literals: [2]string{`'\x00ff00'`, `'\x'`}, Values: [2]any{[]byte{0, 0xff, 0}, []byte{}}},
			capturetest.KindBool: {SQL: "boolean", Type: change.TypeBool,
				Literals: [2]string{"true", "false"}, Values: [2]any{true, false}},
			// jsonb: its normal form, keys sorted.
			capturetest.KindJSON: {SQL: "jsonb", Type: change.TypeJSON,
				Literals: [2]string{`'{"b": [1, 2.50], "a": null}'`, "'[]'"}, Values: [2]any{`{"a": null, "b": [1, 2.50]}`, "[]"}},
		},
		// REPLICA IDENTITY DEFAULT.
		FullBeforeImages: false,
		Analyze:          "ANALYZE %s",
	})
}

// conformanceDB is a fixture as capturetest.RunSource uses it: its
// capturers share the fixture's slot.
type conformanceDB struct{ f *fixture }

func (d conformanceDB) Table(name string) change.Table { return tbl(name) }

func (d conformanceDB) Exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := d.f.conn.PgConn().Exec(context.Background(), sql).ReadAll(); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func (d conformanceDB) Source(t *testing.T, c capturetest.SourceConfig) capture.Source {
	t.Helper()
	// A stopped stream's walsender releases the slot a moment later.
	d.f.waitSlot(d.f.db, slotReleased)
	// No status updates but the one on stop: a clean stop forwards the
	// last Ack by itself, and a cancel ends Stream without a timer's help.
	cfg := Config{DSN: d.f.dsn, Slot: d.f.db, Publication: publication, StatusInterval: time.Hour, Tables: c.Tables, MaxBatch: c.MaxBatch}
	return d.f.source(cfg)
}

func (d conformanceDB) Reader(t *testing.T) capturetest.SnapshotReader {
	t.Helper()
	r, err := NewTableReader(t.Context(), d.f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
