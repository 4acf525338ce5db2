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

func TestHost_SplitsTheAddressIntoHostAndPort(t *testing.T) {
	type hp struct {
		Host string
		Port uint16
	}
	for addr, want := range map[string]hp{"db.internal:3307": {"db.internal", 3307}, "[::1]:3306": {"::1", 3306}, "127.0.0.1:65535": {"127.0.0.1", 65535}} {
		cfg, err := Parse("mysql://u:pw@" + addr + "/shop")
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := Host(cfg)
		if err != nil {
			t.Errorf("Host(%s): %v", addr, err)
			continue
		}
		if diff := cmp.Diff(want, hp{host, port}); diff != "" {
			t.Errorf("Host(%s) (-want +got):\n%s", addr, diff)
		}
	}
	for addr, wantErr := range map[string]string{
		"db":       `MySQL address "db": address db: missing port in address`,
		"db:x3306": `MySQL address "db:x3306": port is not a number`,
	} {
		cfg, err := Parse("u:pw@tcp(127.0.0.1:3306)/shop")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Addr = addr
		if _, _, err := Host(cfg); err == nil || err.Error() != wantErr {
			t.Errorf("Host(%s) error = %v, want %s", addr, err, wantErr)
		}
	}
}

func TestOpen_MakesAPoolWithoutConnectingAndHidesThePasswordInErrors(t *testing.T) {
	db, err := Open("mysql://app:hunter2@127.0.0.1:1/shop")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open("mysql://app:hunter2@db/shop/extra")
	if err == nil || err.Error() != `parse MySQL URL: path "shop/extra" names more than a database` {
		t.Errorf("Open with a bad path: error = %v, want the path named", err)
	}
}

func TestQuote_DoublesWhatWouldEndTheQuote(t *testing.T) {
	got := []string{QuoteIdent("order"), QuoteIdent("a`b``c"), QuoteString(`it's`), QuoteString(`C:\dir\'x'`), QuoteString("")}
	want := []string{"`order`", "`a``b````c`", `'it''s'`, `'C:\\dir\\''x'''`, `''`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("quoted (-want +got):\n%s", diff)
	}
}

// A unix socket is dialled by the driver itself: tandem's TCP dialer (with
// its keepalive probes) is set for TCP addresses only.
func TestParse_TheTCPDialerIsForTCPOnly(t *testing.T) {
	for dsn, want := range map[string]bool{
		"u:pw@unix(/run/mysqld/mysqld.sock)/shop": false,
		"u:pw@tcp(127.0.0.1:3306)/shop":           true,
		"u:pw@tcp6([::1]:3306)/shop":              true,
		"mysql://u:pw@127.0.0.1/shop":             true,
	} {
		cfg, err := Parse(dsn)
		if err != nil {
			t.Fatalf("Parse(%s): %v", dsn, err)
		}
		if got := cfg.DialFunc != nil; got != want {
			t.Errorf("Parse(%s): dialer set = %v, want %v", dsn, got, want)
		}
	}
}

// A parameter the driver refuses is named in the error as the driver says
// it, with the password (wherever it shows) replaced, and nothing else.
func TestParse_ParameterErrorsAreTheDriversWithThePasswordReplaced(t *testing.T) {
	for dsn, want := range map[string]string{
		"mysql://app@db/shop?timeout=forever":         `parse MySQL URL parameters: time: invalid duration "forever"`,
		"mysql://app:forever@db/shop?timeout=forever": `parse MySQL URL parameters: time: invalid duration "********"`,
	} {
		_, err := Parse(dsn)
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%s) error = %v, want %s", dsn, err, want)
		}
	}
}
