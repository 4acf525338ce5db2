package transform

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/config"
)

// LookedUp names the target tables a mapping's lookup() calls read, in
// when and columns, once each; a table named other than by a literal makes
// any true.
func TestMapping_LookedUpNamesTheTargetTablesLookupsRead(t *testing.T) {
	const head = `source: { kind: postgres, dsn: postgres://u@h/db, tables: [shop.orders] }
target: { kind: postgres, dsn: postgres://u@h/db }
mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
`
	for _, tc := range []struct {
		name, yaml string
		want       []string
		any        bool
	}{
		{"none", `        columns: { id: row.id }`, nil, false},
		{"columns and when, once each", `        when: 'lookup("public.merchants", {"legacy_id": row.merchant}).open == true'
        columns:
          id: row.id
          customer: 'lookup("public.customers", {"legacy_id": row.customer}).id'
          merchant: 'lookup("public.merchants", {"legacy_id": row.merchant}).id'
          again: 'lookup("public.customers", {"legacy_id": row.customer}).name'`, []string{"public.merchants", "public.customers"}, false},
		{"a computed table name", `        columns:
          id: row.id
          c: 'lookup("public." + row.kind, {"id": row.ref}).id'`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("tandem.yaml", []byte(head+tc.yaml+"\n"), nil)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			m, err := Compile(0, cfg.Mappings[0])
			if err != nil {
				t.Fatal(err)
			}
			got, any := m.LookedUp()
			if diff := cmp.Diff(tc.want, got); diff != "" || any != tc.any {
				t.Errorf("LookedUp() any = %v (want %v), tables (-want +got):\n%s", any, tc.any, diff)
			}
		})
	}
}
