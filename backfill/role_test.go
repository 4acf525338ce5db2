package backfill

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/sink"
)

func TestTextKey_SaysWhereTheKeyIsAndWhetherTheLinesAreInItsOrder(t *testing.T) {
	src := &change.Schema{Key: []string{"id", "n"}, Types: map[string]change.Type{
		"id": change.TypeInt, "n": change.TypeInt, "s": change.TypeString, "f": change.TypeFloat}}
	ints := map[string]string{"order_id": "bigint", "line": "integer", "code": "text", "amount": "double precision", "small": "smallint"}
	for name, c := range map[string]struct {
		v    verbatimCopy
		want *sink.TextKey
	}{
		"the source's key, integers into integers": {
			verbatimCopy{cols: []string{"code", "order_id", "line"}, srcCols: []string{"s", "id", "n"}, key: []string{"order_id", "line"}},
			&sink.TextKey{At: []int{1, 2}, Ordered: true}},
		"into a smallint": {
			verbatimCopy{cols: []string{"small", "line"}, srcCols: []string{"id", "n"}, key: []string{"small", "line"}},
			&sink.TextKey{At: []int{0, 1}, Ordered: true}},
		"the key's columns in another order": {
			verbatimCopy{cols: []string{"order_id", "line"}, srcCols: []string{"id", "n"}, key: []string{"line", "order_id"}},
			&sink.TextKey{At: []int{1, 0}}},
		"part of the source's key": {
			verbatimCopy{cols: []string{"order_id", "line"}, srcCols: []string{"id", "n"}, key: []string{"order_id"}},
			&sink.TextKey{At: []int{0}}},
		"another column than the source's key": {
			verbatimCopy{cols: []string{"order_id", "line"}, srcCols: []string{"n", "id"}, key: []string{"order_id", "line"}},
			&sink.TextKey{At: []int{0, 1}}},
		"an integer into a text column": {
			verbatimCopy{cols: []string{"code", "line"}, srcCols: []string{"id", "n"}, key: []string{"code", "line"}},
			&sink.TextKey{At: []int{0, 1}}},
		"a string key": {
			verbatimCopy{cols: []string{"code"}, srcCols: []string{"s"}, key: []string{"code"}},
			&sink.TextKey{At: []int{0}}},
		"a float key's text is not its value": {
			verbatimCopy{cols: []string{"amount"}, srcCols: []string{"f"}, key: []string{"amount"}},
			nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, textKey(c.v, src, ints)); diff != "" {
				t.Errorf("textKey (-want +got):\n%s", diff)
			}
		})
	}
}
