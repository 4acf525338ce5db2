package postgres_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
	"github.com/tandemcdc/tandem/sink/postgres"
	"github.com/tandemcdc/tandem/transform"
)

// lookupDDL is a table of most kinds of column a lookup reads back, with
// unique columns to look up by (legacy_id; tenant and code together) and
// a column that is not unique (city).
const lookupDDL = `
CREATE SCHEMA crm;
CREATE TABLE crm.customers (
	id bigint PRIMARY KEY, legacy_id text UNIQUE, tenant integer, code text,
	score integer, balance numeric(12, 3), ref uuid, seen timestamp, changed timestamptz,
	photo bytea, active boolean, ratio double precision, city text, note text,
	UNIQUE (tenant, code));
INSERT INTO crm.customers VALUES
	(9000000000, 'L-1', 1, 'A', -7, 1234.500, '6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c',
	 '2024-03-01 10:02:03.654321', '2024-03-01 10:02:03.654321+09', '\x00ff10', true, 0.1, 'Oslo', NULL),
	(2, 'L-2', 1, 'B', 0, 0, NULL, NULL, NULL, NULL, false, NULL, 'Oslo', NULL),
	(3, 'L-3', 2, 'A', 1, -0.001, NULL, NULL, NULL, '\x', NULL, -2.5e-300, 'Bergen', 'x'),
	(4, NULL, 2, 'C', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(5, NULL, 3, 'C', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`

// customer1 is customer 9000000000 as Lookup returns it: typed as
// capture/postgres types the same row.
var customer1 = row{
	"id": int64(9000000000), "legacy_id": "L-1", "tenant": int64(1), "code": "A",
	"score": int64(-7), "balance": "1234.500", "ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c",
	"seen": "2024-03-01 10:02:03.654321", "changed": "2024-03-01 01:02:03.654321+00",
	"photo": []byte{0x00, 0xff, 0x10}, "active": true, "ratio": 0.1, "city": "Oslo", "note": nil,
}

// lookup calls Lookup and fails the test on an error.
func lookup(t *testing.T, l transform.Lookuper, table string, where row) (row, bool) {
	t.Helper()
	got, found, err := l.Lookup(t.Context(), table, where)
	if err != nil {
		t.Fatalf("Lookup(%s, %v): %v", table, where, err)
	}
	return got, found
}

func TestLookup_FoundRowIsTheWholeRowTypedAsTheCapturerTypesIt(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL)
	tests := []struct {
		name  string
		where row
		want  row
	}{
		{"by a text column", row{"legacy_id": "L-1"}, customer1},
		{"by a bigint given as int64", row{"id": int64(9000000000)}, customer1},
		{"by a uuid given as text", row{"ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c"}, customer1},
		{"by a numeric given as other text of the same number", row{"id": int64(3), "balance": "-0.0010"},
			row{"id": int64(3), "legacy_id": "L-3", "tenant": int64(2), "code": "A", "score": int64(1),
				"balance": "-0.001", "ref": nil, "seen": nil, "changed": nil, "photo": []byte{}, "active": nil,
				"ratio": -2.5e-300, "city": "Bergen", "note": "x"}},
		{"by bytes", row{"photo": []byte{0x00, 0xff, 0x10}}, customer1},
		{"by a bool and an int", row{"active": false, "tenant": int64(1)},
			row{"id": int64(2), "legacy_id": "L-2", "tenant": int64(1), "code": "B", "score": int64(0),
				"balance": "0.000", "ref": nil, "seen": nil, "changed": nil, "photo": nil, "active": false,
				"ratio": nil, "city": "Oslo", "note": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := lookup(t, tg.sink, "crm.customers", tt.where)
			if !found {
				t.Fatalf("Lookup(%v): not found", tt.where)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%v) (-want +got):\n%s", tt.where, diff)
			}
		})
	}
}

// TestLookup_TextComparesExactly: PostgreSQL's text equality is exact
// (MySQL's collations may fold case, so the suite leaves it out).
func TestLookup_TextComparesExactly(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL)
	if got, found := lookup(t, tg.sink, "crm.customers", row{"legacy_id": "l-1"}); found || got != nil {
		t.Errorf("Lookup(legacy_id l-1) = %v, %v, want nil, not found", got, found)
	}
}

func TestLookup_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, hostileDDL+`INSERT INTO "Shop Old"."order" VALUES
		(1, 'A', 'it''s "q"', 'happy', 'comma', NULL, NULL),
		(1, 'B', NULL, 'sad', NULL, 'x', 'y');`)
	want := row{"select": int64(1), "MixedCase": "A", `"quoted"`: `it's "q"`, "Mood": "happy", "a,b": "comma", "a": nil, "b": nil}
	for _, where := range []row{
		{"select": int64(1), "MixedCase": "A"},
		{`"quoted"`: `it's "q"`},
		{"Mood": "happy"}, // a value cast to the enum type of a schema needing quotes
		{"a,b": "comma"},
	} {
		got, found := lookup(t, tg.sink, "Shop Old.order", where)
		if !found {
			t.Errorf("Lookup(%v): not found", where)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Lookup(%v) (-want +got):\n%s", where, diff)
		}
	}
	// A value that would end the quoting is a value, not SQL.
	if got, found := lookup(t, tg.sink, "Shop Old.order", row{"MixedCase": `A' OR 'x' = 'x`}); found {
		t.Errorf("Lookup(an injection) = %v, want not found", got)
	}
}

// TestLookup_TextIsTheCapturersWhateverTheSessionSettings: values come back
// in UTC and ISO style on a target whose sessions use another zone and date
// style, and the sessions keep theirs (the sink's writes read text in them).
func TestLookup_TextIsTheCapturersWhateverTheSessionSettings(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL)
	// one connection, so the writes run on the session the lookup used
	s := tg.newSink(t, postgres.Config{DSN: tg.dsn + "&pool_max_conns=1&timezone=Asia/Tokyo&datestyle=SQL,DMY"})
	upsert := func(changed string) {
		t.Helper()
		if err := s.Apply(t.Context(), sink.Batch{Writes: []change.Write{
			write(change.WriteUpsert, "crm.customers", row{"id": int64(7), "legacy_id": "L-7", "changed": changed}, "id"),
		}}, sink.Checkpoint{}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	upsert("02/03/2024 10:00:00") // 2 March, Tokyo time
	check := func(want string) {
		t.Helper()
		got, found := lookup(t, s, "crm.customers", row{"legacy_id": "L-7"})
		if !found {
			t.Fatal("Lookup(L-7): not found")
		}
		if diff := cmp.Diff(want, got["changed"]); diff != "" {
			t.Errorf("changed (-want +got):\n%s", diff)
		}
	}
	check("2024-03-02 01:00:00+00")
	upsert("03/02/2024 09:00:00") // 3 February, Tokyo time: still the session's zone and style
	check("2024-02-03 00:00:00+00")
}

// TestLookupKeys_FindsWhatLookupFindsByEachKey: each key's row, typed and
// named, is Lookup's by the same key, found by the same comparison
// (another spelling of a number, a uuid as text, bytes, a key holding
// NULL, one no row holds), and a key more than one row matches, where
// Lookup fails as not unique, is told by its count.
func TestLookupKeys_FindsWhatLookupFindsByEachKey(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL+hostileDDL+`INSERT INTO "Shop Old"."order" VALUES
		(1, 'A', 'it''s "q"', 'happy', 'comma', NULL, NULL),
		(1, 'B', NULL, 'sad', NULL, 'x', 'y');`)
	groups := []struct {
		table string
		keys  []row
	}{
		{"crm.customers", []row{{"id": int64(9000000000)}, {"id": int64(6)}, {"id": "3"}, {"id": nil}, {"id": int64(2)}, {"id": int64(9000000000)}}},
		{"crm.customers", []row{{"legacy_id": "L-2"}, {"legacy_id": "l-1"}, {"legacy_id": "L-1"}, {"legacy_id": "L-3' OR 'x' = 'x"}}},
		{"crm.customers", []row{{"tenant": int64(2), "code": "C"}, {"tenant": int64(2), "code": "A"}, {"tenant": nil, "code": "A"}, {"tenant": int64(1), "code": "C"}}},
		{"crm.customers", []row{{"id": int64(3), "balance": "-0.0010"}, {"id": int64(2), "balance": "0"}, {"id": int64(2), "balance": "1"}}},
		{"crm.customers", []row{{"ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c"}, {"ref": "00000000-0000-0000-0000-000000000000"}}},
		{"crm.customers", []row{{"photo": []byte{0x00, 0xff, 0x10}}, {"photo": []byte{}}}},
		{"crm.customers", []row{{"city": "Oslo"}, {"city": "Bergen"}, {"city": "Tromsø"}}},
		{"Shop Old.order", []row{{"select": int64(1), "MixedCase": "A"}, {"select": int64(1), "MixedCase": "C"}}},
		{"Shop Old.order", []row{{"Mood": "sad"}, {"Mood": "happy"}}},
	}
	for _, g := range groups {
		keys := make([]map[string]any, len(g.keys))
		copy(keys, g.keys)
		rows, n, err := tg.sink.LookupKeys(t.Context(), g.table, keys)
		if err != nil {
			t.Fatalf("LookupKeys(%s, %v): %v", g.table, keys, err)
		}
		if len(rows) != len(keys) || len(n) != len(keys) {
			t.Fatalf("LookupKeys(%s, %v) = %d rows, %d counts, want one each a key", g.table, keys, len(rows), len(n))
		}
		for i, k := range keys {
			want, found, err := tg.sink.Lookup(t.Context(), g.table, k)
			switch {
			case errors.Is(err, sink.ErrNotUnique):
				if n[i] != 2 {
					t.Errorf("LookupKeys(%s) by %v: %d rows, want 2 (Lookup: %v)", g.table, k, n[i], err)
				}
			case err != nil:
				t.Fatalf("Lookup(%s, %v): %v", g.table, k, err)
			case found != (n[i] == 1):
				t.Errorf("LookupKeys(%s) by %v: %d rows, want found %v as Lookup", g.table, k, n[i], found)
			default:
				if diff := cmp.Diff(map[string]any(want), rows[i]); diff != "" {
					t.Errorf("LookupKeys(%s) by %v, beside Lookup (-Lookup +LookupKeys):\n%s", g.table, k, diff)
				}
			}
		}
	}
	if rows, n, err := tg.sink.LookupKeys(t.Context(), "crm.customers", nil); err != nil || len(rows) != 0 || len(n) != 0 {
		t.Errorf("LookupKeys of no keys = %v, %v, %v", rows, n, err)
	}
	if _, _, err := tg.sink.LookupKeys(t.Context(), "crm.customers", []map[string]any{{"id": int64(1)}, {"legacy_id": "L-1"}}); err == nil {
		t.Error("LookupKeys by keys of other columns: no error")
	}
	if _, _, err := tg.sink.LookupKeys(t.Context(), "crm.customers", []map[string]any{{"nope": int64(1)}}); !errors.Is(err, sink.ErrColumnNotFound) {
		t.Errorf("LookupKeys by a missing column: %v, want sink.ErrColumnNotFound", err)
	}
}
