package change

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyText_IsOneTextPerKeyValue(t *testing.T) {
	got := []string{
		KeyText([]string{"id"}, map[string]any{"id": int64(42)}),
		KeyText([]string{"id"}, map[string]any{"id": 42}),
		KeyText([]string{"a", "b"}, map[string]any{"a": "x\"y", "b": nil, "c": "ignored"}),
		KeyText([]string{"k"}, map[string]any{"k": []byte{0, 0xff}}),
	}
	want := []string{`["42"]`, `["42"]`, `["x\"y","<nil>"]`, `["\\x00ff"]`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("KeyText (-want +got):\n%s", diff)
	}
}
