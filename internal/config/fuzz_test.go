package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// Validate accepts too.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/contract.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	vars := env(map[string]string{
		"SOURCE_DSN": "mysql://u:p@h:3306/shop",
		"TARGET_DSN": "postgres://u:p@h/db",
		"WEIRD":      "a: [b, {c",
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("tandem.yaml", data, vars)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error: %v", err)
			}
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("Parse error is %T (%v), want a non-empty Errors", err, err)
			}
			for _, e := range es {
				if strings.Contains(e.Msg, "u:p@h") {
					t.Fatalf("error shows a DSN: %v", e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v\ninput:\n%s", err, data)
		}
	})
}

// FuzzRedact checks that Redact never panics and always hides the password
// of a URL DSN.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"pass", "p@ss/w?rd#1", "12#x", "a:b", "", "%40"} {
		f.Add("postgres", s, "h:5432/db?sslmode=disable")
	}
	f.Add("mysql", "hunter2", "h/db")
	f.Fuzz(func(t *testing.T, scheme, pw, rest string) {
		_ = Redact(scheme + pw + rest) // must not panic on anything
		if len(pw) < 4 || strings.ContainsAny(rest, "@") || strings.Contains("postgres://app:xxxxx@"+rest, pw) {
			return
		}
		dsn := "postgres://app:" + pw + "@" + rest
		if got := Redact(dsn); strings.Contains(got, pw) {
			t.Fatalf("Redact(%q) = %q shows the password", dsn, got)
		}
	})
}
