package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParse_MoreBadInputGivesExactErrors: cases beside
// TestParse_BadInputGivesExactErrors's, each with every error it gives.
func TestParse_MoreBadInputGivesExactErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{
			name: "a key that is not a string",
			yaml: head + "kafka:\n  [a]: 1\n",
			want: "tandem.yaml:9:3: kafka: keys must be strings, got a list",
		},
		{
			name: "an output without its table",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - key: [id]\n        columns: {id: row.id}\n",
			want: "tandem.yaml:11:9: mappings[0].to[0].table: required: the target table to write",
		},
		{
			name: "an inverse column both computed and ignored",
			yaml: head + "mappings:\n  - from: shop.orders\n    to:\n      - table: t\n        key: [id]\n        columns: {id: row.id}\n" +
				"    inverse:\n      columns: {id: target.t.id, note: \"'x'\"}\n      ignore: [note, other]\n",
			want: `tandem.yaml:16:15: mappings[0].inverse.ignore: "note" is both computed and ignored`,
		},
		{
			name: "a check without its name and source",
			yaml: head + "reconcile:\n  checks:\n    - target: SELECT 1\n      source: \"  \"\n",
			want: "tandem.yaml:10:7: reconcile.checks[0].name: required\n" +
				"tandem.yaml:11:15: reconcile.checks[0].source: required: a query on the source returning one number",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("tandem.yaml", []byte(tt.yaml), nil)
			if err == nil {
				t.Fatalf("Parse = %+v, nil; want errors", c)
			}
			if diff := cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCheckMessage_SaysWhatEachCheckTagAccepts: the message of each form
// a check tag can take, for keys declared with them (tags_test.go checks
// the tags in use are well formed).
func TestCheckMessage_SaysWhatEachCheckTagAccepts(t *testing.T) {
	for _, tc := range []struct {
		f    field
		want string
	}{
		{field{check: "1..10000"}, "must be from 1 to 10000"},
		{field{check: ">0"}, "must be more than 0"},
		{field{check: ">=0"}, "must be 0 or more"},
		{field{check: "a|b|c"}, "must be a or b or c"},
		{field{check: ">0", what: "a positive count"}, "must be a positive count"},
		{field{check: ">0", what: "ignored", must: "be set, or -1"}, "must be set, or -1"},
	} {
		if got := checkMessage(tc.f); got != tc.want {
			t.Errorf("checkMessage(%+v) = %q, want %q", tc.f, got, tc.want)
		}
	}
}
