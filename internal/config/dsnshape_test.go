package config

import (
	"strings"
	"testing"
)

// A PostgreSQL DSN that is neither a URL nor key=value pairs is a config error at its line that quotes no part of
// it: drivers echo such a DSN whole in their errors, password included.
func TestParse_UnparseablePostgresDSNsAreNeverEchoed(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{`hunter2pass@@@ not a dsn ::: password=s3cr3t`, `source.dsn: is neither a postgres:// URL nor key=value pairs`},
		{`user=u password=s3cr3t host=h junk`, `source.dsn: is neither a postgres:// URL nor key=value pairs`},
	} {
		yaml := strings.Replace(minimal, "dsn: postgres://u:pw@h/db", "dsn: '"+tc.dsn+"'", 1)
		_, err := Parse("tandem.yaml", []byte(yaml), nil)
		if err == nil || !strings.Contains(err.Error(), "tandem.yaml:3:") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse with source.dsn %q = %v, want %q at line 3", tc.dsn, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "hunter2")) {
			t.Errorf("the error quotes the DSN: %v", err)
		}
	}
	for _, ok := range []string{`host=h user=u password='p w' dbname=d`, `postgresql://u:p%40ss@h:5432/db?sslmode=disable`} {
		yaml := strings.Replace(minimal, "dsn: postgres://u:pw@h/db", "dsn: \""+ok+"\"", 1)
		if _, err := Parse("tandem.yaml", []byte(yaml), nil); err != nil {
			t.Errorf("Parse with source.dsn %q: %v", ok, err)
		}
	}
}
