package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"A": "x", "EMPTY": "", "B_2": "$A", "PW": `p#s: "'`})
	tests := []struct {
		in          string
		want        string
		substituted bool
		problems    []string
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "x", substituted: true},
		{in: "pre-${A}-${B_2}-post", want: "pre-x-$A-post", substituted: true}, // no recursive expansion
		{in: "${EMPTY}", want: "", substituted: true},
		{in: "u:${PW}@h", want: `u:p#s: "'@h`, substituted: true},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "$$${A}", want: "$x", substituted: true},
		{in: "cost $5 and $A and $", want: "cost $5 and $A and $"},
		{in: "${NOPE}", want: "", problems: []string{"environment variable NOPE is not set"}},
		{in: "${NOPE}${A}${ALSO_NOPE}", want: "x", substituted: true, problems: []string{
			"environment variable NOPE is not set", "environment variable ALSO_NOPE is not set",
		}},
		{in: "${}", problems: []string{"invalid environment variable reference: ${...} must hold a name of letters, digits and _ (write $$ for a literal $)"}},
		{in: "${1A}", problems: []string{"invalid environment variable reference: ${...} must hold a name of letters, digits and _ (write $$ for a literal $)"}},
		{in: "${A:-default}", problems: []string{"invalid environment variable reference: ${...} must hold a name of letters, digits and _ (write $$ for a literal $)"}},
		{in: "a${A", want: "a${A", problems: []string{"unterminated ${: write ${NAME}, or $$ for a literal $"}},
	}
	for _, tt := range tests {
		got, substituted, problems := expand(tt.in, vars)
		if got != tt.want || substituted != tt.substituted || !cmp.Equal(problems, tt.problems) {
			t.Errorf("expand(%q) = %q, %v, %q; want %q, %v, %q", tt.in, got, substituted, problems, tt.want, tt.substituted, tt.problems)
		}
	}
}
