package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/app"
	"github.com/tandemcdc/tandem/internal/preflight"
)

// codMethod maps payment methods to the new system's codes; a method with a
// trailing carriage return (as a CSV import left them) is in no entry.
const codMethod = `'{"代金引換": "cod", "card": "card"}[row.method]'`

func TestCheck_MappingWithoutInverseThatFailsOnEverySampleRowFailsWithTheCount(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newMergeMigration(t, kind)
			m.exec(t, `INSERT INTO payment_infos SELECT i, '代金引換' || chr(13), NULL FROM generate_series(1, 4) i`)
			ps, err := app.Check(ctx, parseConfig(t, m.config(fmt.Sprintf(mergeMappings, codMethod))))
			if err != nil {
				t.Fatal(err)
			}
			rowErr := func(id int) string {
				return fmt.Sprintf(`source row (order_id=%d): mapping public.payment_infos: to[0].columns.pay_method (%s): no such key: "代金引換\r"`,
					id, strings.Trim(codMethod, "'"))
			}
			want := []preflight.Problem{{Severity: preflight.Fail, Object: "mapping public.payment_infos",
				What: "4 of 4 sample rows of public.payment_infos fail to map (each would be a dead letter, streamed or backfilled); the first 3:\n" +
					"      " + rowErr(1) + "\n      " + rowErr(2) + "\n      " + rowErr(3),
				Fix: "fix the expression, or guard it against such values; `tandem preview --table public.payment_infos` shows the rows"}}
			if diff := cmp.Diff(want, ps); diff != "" {
				t.Errorf("tandem check (-want +got):\n%s", diff)
			}
			if !preflight.HasFailures(ps) {
				t.Error("check passes a mapping that fails on every row")
			}

			// Once the values are clean, the same mapping passes.
			m.exec(t, `UPDATE payment_infos SET method = rtrim(method, chr(13))`)
			checkClean(t, parseConfig(t, m.config(fmt.Sprintf(mergeMappings, codMethod))))
		})
	}
}

func TestCheck_CreateIfAbsentOnAStreamedMappingIsAWarning(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run("to_"+kind, func(t *testing.T) {
			m := newMergeMigration(t, kind)
			mappings := strings.Replace(fmt.Sprintf(mergeMappings, "row.method"),
				"        key: [id]\n        columns:\n          id: row.id\n",
				"        key: [id]\n        mode: create_if_absent\n        columns:\n          id: row.id\n", 1)
			cfg := parseConfig(t, m.config(mappings))
			ps, err := app.Check(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := []preflight.Problem{{Severity: preflight.Warn, Object: "mapping public.orders",
				What: "tandem.yaml:17:16: mappings[0].to[0] (orders) has mode create_if_absent: streamed, it inserts rows the target lacks " +
					"and drops every update of a row the target has, which keeps its first version",
				Fix: "use mode: upsert (the default) for a streamed mapping; create_if_absent is for copies whose rows the new system owns once they exist"}}
			if diff := cmp.Diff(want, ps); diff != "" {
				t.Errorf("tandem check (-want +got):\n%s", diff)
			}
			if preflight.HasFailures(ps) {
				t.Errorf("the warning fails check, which would stop tandem run: %v", ps)
			}
		})
	}
}
