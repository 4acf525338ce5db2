package transform

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/config"
)

// oddColumns are source columns whose names are no CEL identifiers: a
// space, a double quote, non-ASCII letters, a symbol.
var oddColumns = map[string]change.Type{
	"id": change.TypeInt, "order id": change.TypeInt, `say "hi"`: change.TypeString,
	"naïve": change.TypeString, "prix_€": change.TypeDecimal, "Größe": change.TypeInt,
}

const oddMapping = `source:
  kind: postgres
  dsn: postgres://u@h/db
  tables: [shop.odd]
target:
  kind: postgres
  dsn: postgres://u@h/db
mappings:
  - from: shop.odd
    to:
      - table: public.odd
        key: [id]
        when: 'row["Größe"] > 1'
        columns:
          id: row.id
          "order id": row["order id"] * 10
          'say "hi"': row['say "hi"']
          naïve: upper(row["naïve"])
          prix_€: row["prix_€"]
          "row[\"x\"] in a string": '"row[\"naïve\"]"'
`

// A column whose name is no identifier is read with row["name"], typed
// like any other column (in when: too), and target columns may have
// such names.
func TestCompile_ColumnsWhoseNamesAreNoIdentifiers(t *testing.T) {
	cfg, err := config.Parse("tandem.yaml", []byte(oddMapping), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for _, typed := range []bool{true, false} {
		var opts []Option
		if typed {
			opts = append(opts, WithSource(oddColumns))
		}
		m, err := Compile(0, cfg.Mappings[0], opts...)
		if err != nil {
			t.Fatalf("Compile (typed %v): %v", typed, err)
		}
		got, err := m.Apply(t.Context(), change.Row{"id": int64(1), "order id": int64(7), `say "hi"`: "hé", "naïve": "café",
			"prix_€": "12.50", "Größe": int64(2)})
		if err != nil {
			t.Fatalf("Apply (typed %v): %v", typed, err)
		}
		want := []Row{{Table: "public.odd", Key: []string{"id"}, Columns: map[string]any{
			"id": int64(1), "order id": int64(70), `say "hi"`: "hé", "naïve": "CAFÉ", "prix_€": "12.50",
			`row["x"] in a string`: `row["naïve"]`}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Apply (typed %v) (-want +got):\n%s", typed, diff)
		}
		filtered, err := m.Apply(t.Context(), change.Row{"id": int64(2), "order id": int64(1), `say "hi"`: nil, "naïve": nil,
			"prix_€": nil, "Größe": int64(1)})
		if err != nil || len(filtered) != 0 {
			t.Errorf("Apply (typed %v) of a row when: excludes = %v, %v; want no rows", typed, filtered, err)
		}
	}
}

// row["name"] is checked against the source's columns like row.name: a
// misspelt name or a wrong type is a compile error at its line, and a
// computed index says how to write a column.
func TestCompile_ColumnNameErrorsSayWhatAndWhere(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{`row["order  id"]`, `tandem.yaml:16:`},
		{`row["order  id"]`, `undefined field 'order  id'`},
		{`row["naïve"] * 2`, `found no matching overload for '_*_' applied to '(wrapper(string), int)'`},
		{`row["na" + "ïve"]`, `write row.name, or row["name"] with the name as a quoted string`},
	} {
		yaml := strings.Replace(oddMapping, `row["order id"] * 10`, `'`+strings.ReplaceAll(tc.expr, `'`, `''`)+`'`, 1)
		cfg, err := config.Parse("tandem.yaml", []byte(yaml), nil)
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		_, err = Compile(0, cfg.Mappings[0], WithSource(oddColumns))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile with %s = %v, want an error containing %q", tc.expr, err, tc.want)
		}
	}
}
