package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse_OnDeleteErrorsNameTheValue(t *testing.T) {
	yaml := head + `mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        on_delete: wipe
        columns: {id: row.id, total: row.total}
      - table: public.order_flags
        key: [order_id, flag]
        on_delete: clear
        columns: {order_id: row.id, flag: row.flag}
      - table: public.payments
        key: [order_id]
        on_delete: "${ON_DELETE}"
        columns: {order_id: row.id, kind: row.method}
`
	_, err := Parse("tandem.yaml", []byte(yaml), env(map[string]string{"ON_DELETE": "truncate"}))
	if err == nil {
		t.Fatal("Parse = nil error; want errors")
	}
	want := []string{
		`tandem.yaml:13:20: mappings[0].to[0].on_delete: unknown on_delete "wipe" (known: delete, clear)`,
		`tandem.yaml:17:20: mappings[0].to[1].on_delete: clear needs a column besides the key to set to NULL (this output writes only its key: use delete)`,
		`tandem.yaml:21:20: mappings[0].to[2].on_delete: unknown on_delete (known: delete, clear)`,
	}
	if diff := cmp.Diff(want, strings.Split(err.Error(), "\n")); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestParse_OnDeleteDefaultsToDeleteAndAcceptsClear(t *testing.T) {
	c := mustParse(t, head+`mappings:
  - from: shop.orders
    to:
      - table: public.orders
        key: [id]
        columns: {id: row.id}
  - from: shop.customers
    to:
      - table: public.orders
        key: [id]
        on_delete: clear
        columns: {id: row.order_id, paid: row.paid}
`, nil)
	got := []string{c.Mappings[0].To[0].OnDelete, c.Mappings[1].To[0].OnDelete}
	if diff := cmp.Diff([]string{OnDeleteDelete, OnDeleteClear}, got); diff != "" {
		t.Errorf("on_delete (-want +got):\n%s", diff)
	}
	d := Default()
	d.Mappings = []Mapping{{From: "a.b", To: []Output{{}}}}
	d.SetDefaults()
	if got := d.Mappings[0].To[0].OnDelete; got != OnDeleteDelete {
		t.Errorf("SetDefaults: on_delete %q, want delete", got)
	}
}
