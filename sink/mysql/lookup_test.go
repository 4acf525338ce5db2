package mysql_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tandemcdc/tandem/sink"
)

// lookupDDL is a table of most kinds of column a lookup reads back, with
// unique columns to look up by (legacy_id; tenant and code together) and
// a column that is not unique (city).
const lookupDDL = `
SET time_zone = '+00:00';
CREATE TABLE customers (
	id BIGINT PRIMARY KEY, legacy_id VARCHAR(20) UNIQUE, tenant INT, code VARCHAR(10),
	score INT, balance DECIMAL(12, 3), ref CHAR(36), seen DATETIME(6), changed TIMESTAMP(6) NULL,
	photo BLOB, tag BINARY(4), active BOOL, ratio DOUBLE, weight FLOAT, big BIGINT UNSIGNED,
	flags BIT(3), born DATE, doc JSON, city VARCHAR(20), note TEXT,
	UNIQUE (tenant, code));
INSERT INTO customers VALUES
	(9000000000, 'L-1', 1, 'A', -7, 1234.500, '6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c',
	 '2024-03-01 10:02:03.654321', '2024-03-01 01:02:03.654321', x'00ff10', x'0102', TRUE, 0.1, 0.1,
	 18446744073709551615, b'101', '1999-12-31', '{"a": [1, 2]}', 'Oslo', NULL),
	(2, 'L-2', 1, 'B', 0, 0, NULL, NULL, NULL, '', NULL, FALSE, NULL, NULL, 7, NULL, NULL, NULL, 'Oslo', NULL),
	(3, NULL, 2, 'C', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	(4, NULL, 3, 'C', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
`

// customer1 is customer 9000000000 as Lookup returns it: typed as
// capture/mysql types the same row.
var customer1 = row{
	"id": int64(9000000000), "legacy_id": "L-1", "tenant": int64(1), "code": "A",
	"score": int64(-7), "balance": "1234.500", "ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c",
	"seen": "2024-03-01 10:02:03.654321", "changed": "2024-03-01 01:02:03.654321",
	"photo": []byte{0x00, 0xff, 0x10}, "tag": []byte{1, 2, 0, 0}, "active": int64(1), "ratio": 0.1,
	"weight": 0.1, "big": "18446744073709551615", "flags": int64(5), "born": "1999-12-31",
	"doc": `{"a": [1, 2]}`, "city": "Oslo", "note": nil,
}

func TestLookup_FoundRowIsTheWholeRowTypedAsTheCapturerTypesIt(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL)
	customer2 := row{
		"id": int64(2), "legacy_id": "L-2", "tenant": int64(1), "code": "B", "score": int64(0),
		"balance": "0.000", "ref": nil, "seen": nil, "changed": nil, "photo": []byte{}, "tag": nil,
		"active": int64(0), "ratio": nil, "weight": nil, "big": "7", "flags": nil, "born": nil,
		"doc": nil, "city": "Oslo", "note": nil,
	}
	tests := []struct {
		name  string
		where row
		want  row
	}{
		{"by a text column", row{"legacy_id": "L-1"}, customer1},
		{"by a bigint given as int64", row{"id": int64(9000000000)}, customer1},
		{"by a char(36) uuid", row{"ref": "6f1c2a3e-52b4-4b8e-9d6a-0c1e2f3a4b5c"}, customer1},
		{"by a decimal given as other text of the same number", row{"balance": "1234.5"}, customer1},
		{"by bytes", row{"photo": []byte{0x00, 0xff, 0x10}}, customer1},
		{"by a BIGINT UNSIGNED past int64 as text", row{"big": "18446744073709551615"}, customer1},
		{"by a TIMESTAMP as UTC text", row{"changed": "2024-03-01 01:02:03.654321"}, customer1},
		{"by a TIMESTAMP as text with an offset", row{"changed": "2024-03-01 10:02:03.654321+09"}, customer1},
		{"by a bool and an int", row{"active": false, "tenant": int64(1)}, customer2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := tg.sink.Lookup(t.Context(), "customers", tt.where)
			if err != nil || !found {
				t.Fatalf("Lookup(%v) = %v, %v, %v; want a row", tt.where, got, found, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%v) (-want +got):\n%s", tt.where, diff)
			}
		})
	}
}

func TestLookup_HostileIdentifiers(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, "CREATE TABLE `or``der` (`select` BIGINT, `Mixed Case` VARCHAR(10), `a``b` TEXT, `a,b` TEXT, "+
		"PRIMARY KEY (`select`, `Mixed Case`));\n"+
		"INSERT INTO `or``der` VALUES (1, 'A', 'it''s `q`', 'comma'), (1, 'B', NULL, NULL)")
	want := row{"select": int64(1), "Mixed Case": "A", "a`b": "it's `q`", "a,b": "comma"}
	for _, where := range []row{
		{"select": int64(1), "Mixed Case": "A"},
		{"a`b": "it's `q`"},
		{"a,b": "comma"},
	} {
		for _, table := range []string{"or`der", tg.name + ".or`der"} {
			got, found, err := tg.sink.Lookup(t.Context(), table, where)
			if err != nil || !found {
				t.Errorf("Lookup(%s, %v) = %v, %v, %v; want a row", table, where, got, found, err)
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Lookup(%s, %v) (-want +got):\n%s", table, where, diff)
			}
		}
	}
	// A value that would end the quoting is a value, not SQL.
	if got, found, err := tg.sink.Lookup(t.Context(), "or`der", row{"Mixed Case": `A' OR 'x' = 'x`}); err != nil || found {
		t.Errorf("Lookup(an injection) = %v, %v, %v; want not found", got, found, err)
	}
}

// TestLookupKeys_FindsWhatLookupFindsByEachKey: each key's row, typed and
// named, is Lookup's by the same key, found by the same comparison
// (another spelling of a decimal, text of another case, a TIMESTAMP with
// an offset, a key holding NULL, one no row holds), and a key more than
// one row matches, where Lookup fails as not unique, is told by its
// count; more keys than one statement takes are read in several.
func TestLookupKeys_FindsWhatLookupFindsByEachKey(t *testing.T) {
	t.Parallel()
	tg := newTarget(t, lookupDDL+"CREATE TABLE `or``der` (`select` BIGINT, `Mixed Case` VARCHAR(10), `a``b` TEXT, "+
		"PRIMARY KEY (`select`, `Mixed Case`));\n"+
		"INSERT INTO `or``der` VALUES (1, 'A', 'it''s `q`'), (1, 'B', NULL)")
	many := make([]row, 1200)
	for i := range many {
		many[i] = row{"id": int64(i)}
	}
	groups := []struct {
		table string
		keys  []row
	}{
		{"customers", []row{{"id": int64(9000000000)}, {"id": int64(6)}, {"id": "3"}, {"id": nil}, {"id": int64(2)}, {"id": int64(9000000000)}}},
		{"customers", []row{{"legacy_id": "L-2"}, {"legacy_id": "l-1"}, {"legacy_id": "L-3' OR 'x' = 'x"}}},
		{"customers", []row{{"tenant": int64(2), "code": "C"}, {"tenant": nil, "code": "C"}, {"tenant": int64(1), "code": "C"}}},
		{"customers", []row{{"balance": "1234.5"}, {"balance": "0"}, {"balance": "1"}}},
		{"customers", []row{{"changed": "2024-03-01 10:02:03.654321+09"}, {"changed": "2024-03-01 01:02:03.654321"}, {"changed": "2020-01-01 00:00:00"}}},
		{"customers", []row{{"photo": []byte{0x00, 0xff, 0x10}}, {"photo": []byte{}}}},
		{"customers", []row{{"city": "Oslo"}, {"city": "Bergen"}}},
		{"customers", many},
		{"or`der", []row{{"select": int64(1), "Mixed Case": "a"}, {"select": int64(1), "Mixed Case": "C"}}},
		{tg.name + ".or`der", []row{{"a`b": "it's `q`"}}},
	}
	for _, g := range groups {
		keys := make([]map[string]any, len(g.keys))
		copy(keys, g.keys)
		rows, n, err := tg.sink.LookupKeys(t.Context(), g.table, keys)
		if err != nil {
			t.Fatalf("LookupKeys(%s, %d keys): %v", g.table, len(keys), err)
		}
		if len(rows) != len(keys) || len(n) != len(keys) {
			t.Fatalf("LookupKeys(%s, %d keys) = %d rows, %d counts, want one each a key", g.table, len(keys), len(rows), len(n))
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
				if diff := cmp.Diff(want, rows[i]); diff != "" {
					t.Errorf("LookupKeys(%s) by %v, beside Lookup (-Lookup +LookupKeys):\n%s", g.table, k, diff)
				}
			}
		}
	}
	if _, _, err := tg.sink.LookupKeys(t.Context(), "customers", []map[string]any{{"nope": int64(1)}}); !errors.Is(err, sink.ErrColumnNotFound) {
		t.Errorf("LookupKeys by a missing column: %v, want sink.ErrColumnNotFound", err)
	}
}
