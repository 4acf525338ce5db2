package main

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLongFlagsWithOneDash_AsGoFlagAcceptedThem(t *testing.T) {
	tests := []struct {
		args, want []string
	}{
		{[]string{"reconcile", "-once", "-format=json", "-config", "x.yaml"}, []string{"reconcile", "--once", "--format=json", "--config", "x.yaml"}},
		{[]string{"backfill", "-c", "x.yaml", "-table", "shop.orders", "--table", "-restart"}, []string{"backfill", "-c", "x.yaml", "--table", "shop.orders", "--table", "-restart"}},
		{[]string{"dlq", "list", "-mapping", "-limit", "-limit", "5"}, []string{"dlq", "list", "--mapping", "-limit", "--limit", "5"}},
		{[]string{"run", "-log-level=debug", "--", "-once"}, []string{"run", "--log-level=debug", "--", "-once"}},
		{[]string{"run", "-once", "-cx.yaml", "-help"}, []string{"run", "-once", "-cx.yaml", "--help"}}, // not run's flags
		{[]string{"frob", "-once"}, []string{"frob", "-once"}},
	}
	for _, tc := range tests {
		got := longFlagsWithOneDash(newRootCmd(&globals{stdout: io.Discard, stderr: io.Discard}), tc.args)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tc.args, diff)
		}
	}
	// And the verb reads them: these fail on the values, after parsing.
	for args, want := range map[string]string{
		"reconcile -once -format xml":      `tandem reconcile: --format "xml": want text or json`,
		"preview -table=t -limit 0":        "tandem preview: want --table schema.table and a --limit above 0",
		"dlq list -mapping m -limit seven": `tandem dlq list: invalid argument "seven" for "--limit" flag: strconv.ParseInt: parsing "seven": invalid syntax`,
	} {
		code, _, stderr := runCLI(strings.Fields(args)...)
		if first, _, _ := strings.Cut(stderr, "\n"); code != exitUsage || first != want {
			t.Errorf("tandem %s: exit %d, stderr %q; want 2 and %q", args, code, stderr, want)
		}
	}
}
