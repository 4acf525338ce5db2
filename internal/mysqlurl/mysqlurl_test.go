package mysqlurl

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	type view struct {
		User, Passwd, Addr, DBName, TZ string
	}
	tests := []struct {
		dsn  string
		want view
	}{
		{"mysql://app:s3cret@10.0.0.5:3307/shop", view{"app", "s3cret", "10.0.0.5:3307", "shop", "'+00:00'"}},
		{"mysql://app:p%40ss@db/shop", view{"app", "p@ss", "db:3306", "shop", "'+00:00'"}},
		{"mariadb://app@127.0.0.1/", view{"app", "", "127.0.0.1:3306", "", "'+00:00'"}},
		{"app:pw@tcp(127.0.0.1:3306)/shop", view{"app", "pw", "127.0.0.1:3306", "shop", "'+00:00'"}},
		{"mysql://app:pw@[::1]:3306/shop?time_zone=%27%2B02%3A00%27", view{"app", "pw", "[::1]:3306", "shop", "'+02:00'"}},
	}
	for _, tt := range tests {
		cfg, err := Parse(tt.dsn)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.dsn, err)
			continue
		}
		got := view{cfg.User, cfg.Passwd, cfg.Addr, cfg.DBName, cfg.Params["time_zone"]}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Parse(%q) (-want +got):\n%s", tt.dsn, diff)
		}
		if cfg.ParseTime {
			t.Errorf("Parse(%q): parseTime on", tt.dsn)
		}
	}
}

func TestParseErrorsHidePassword(t *testing.T) {
	for _, dsn := range []string{
		"mysql://app:hunter2@db:port/shop",
		"mysql://app:hunter2@db/shop/extra",
		"app:hunter2@nonsense(",
		"mysql://app:hunter2@db/shop?timeout=forever",
	} {
		_, err := Parse(dsn)
		if err == nil {
			t.Errorf("Parse(%q): no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Parse(%q) error shows the password: %v", dsn, err)
		}
	}
}
