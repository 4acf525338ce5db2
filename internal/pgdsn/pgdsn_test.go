package pgdsn

import (
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/dial"
)

// A DSN without connect_timeout gets tandem's; one with it keeps its own,
// in either spelling, whichever configuration is asked for.
func TestConfig_ConnectTimeoutDefaultsUnlessTheDSNSetsOne(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	for _, tc := range []struct {
		dsn  string
		want time.Duration
	}{
		{"postgres://u:secret@db.example:5433/shop", dial.ConnectTimeout},
		{"postgres://u:secret@db.example:5433/shop?connect_timeout=3", 3 * time.Second},
		{"host=db.example port=5433 user=u password=secret dbname=shop", dial.ConnectTimeout},
		{"host=db.example port=5433 user=u dbname=shop connect_timeout=7", 7 * time.Second},
	} {
		c, err := Config(tc.dsn)
		if err != nil {
			t.Fatalf("Config(%q): %v", tc.dsn, err)
		}
		cc, err := ConnConfig(tc.dsn)
		if err != nil {
			t.Fatalf("ConnConfig(%q): %v", tc.dsn, err)
		}
		pc, err := PoolConfig(tc.dsn)
		if err != nil {
			t.Fatalf("PoolConfig(%q): %v", tc.dsn, err)
		}
		for name, got := range map[string]time.Duration{"Config": c.ConnectTimeout, "ConnConfig": cc.ConnectTimeout, "PoolConfig": pc.ConnConfig.ConnectTimeout} {
			if got != tc.want {
				t.Errorf("%s(%q).ConnectTimeout = %s, want %s", name, tc.dsn, got, tc.want)
			}
		}
		if c.DialFunc == nil || cc.DialFunc == nil || pc.ConnConfig.DialFunc == nil {
			t.Errorf("%q: no dialer set", tc.dsn)
		}
		if got := PeerOf(tc.dsn); got != "db.example:5433" {
			t.Errorf("PeerOf(%q) = %q, want db.example:5433", tc.dsn, got)
		}
	}
}
