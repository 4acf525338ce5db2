package transform

import (
	"strings"
	"testing"

	"github.com/tandemcdc/tandem/internal/config"
)

// TestCompile_AnErrorInsideABlockScalarNamesItsLineAndColumnInTheFile:
// an expression written over several lines as a YAML block scalar (|),
// indented under its key, with an error on its third line, is reported at
// that line of the file and the column of the error there, whatever the
// block's indentation and its blank first line. The columns follow
// ordersHead's 14 lines.
func TestCompile_AnErrorInsideABlockScalarNamesItsLineAndColumnInTheFile(t *testing.T) {
	for _, tc := range []struct {
		name, columns, want string
	}{
		{"undeclared function", `          total_cents: |
            int(
              double(row.total)
                * rounder(100.0)
            )
`, "tandem.yaml:18:26: mappings[0].to[0].columns.total_cents: undeclared reference to 'rounder'"},
		{"syntax error, blank first line, CRLF", "          total_cents: |\r\n\r\n            int(\r\n              double(row.total) * )\r\n", "tandem.yaml:18:35: mappings[0].to[0].columns.total_cents: Syntax error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("tandem.yaml", []byte(ordersHead+tc.columns), nil)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			_, err = Compile(0, cfg.Mappings[0])
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Compile error = %v\nwant it to start with %q", err, tc.want)
			}
		})
	}
}
