package capture

import (
	"slices"
	"strconv"
	"testing"
)

// TestKeyBounds_WritesEachBoundAsARowComparisonWithItsValuesInOrder: the
// clause of no bound, either, and both, over a composite key, each value
// written by the caller's function in the order of the clause.
func TestKeyBounds_WritesEachBoundAsARowComparisonWithItsValuesInOrder(t *testing.T) {
	keys := []string{`"k"`, `"n"`}
	for _, tc := range []struct {
		after, until []string
		want         string
		args         []string
	}{
		{nil, nil, "", nil},
		{[]string{"a", "1"}, nil, ` WHERE ("k", "n") > ($1, $2)`, []string{"a", "1"}},
		{nil, []string{"z", "9"}, ` WHERE ("k", "n") <= ($1, $2)`, []string{"z", "9"}},
		{[]string{"a", "1"}, []string{"z", "9"}, ` WHERE ("k", "n") > ($1, $2) AND ("k", "n") <= ($3, $4)`, []string{"a", "1", "z", "9"}},
	} {
		var args []string
		got := KeyBounds(keys, tc.after, tc.until, func(v string) string {
			args = append(args, v)
			return "$" + strconv.Itoa(len(args))
		})
		if got != tc.want || !slices.Equal(args, tc.args) {
			t.Errorf("KeyBounds(%q, %q) = %q with values %q, want %q with %q", tc.after, tc.until, got, args, tc.want, tc.args)
		}
	}
}
