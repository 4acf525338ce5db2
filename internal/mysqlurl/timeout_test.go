package mysqlurl

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandemcdc/tandem/internal/dial"
)

// A DSN without timeout gets tandem's connect timeout; one with it keeps
// its own, in either spelling; neither gets a read or write timeout.
func TestParse_ConnectTimeoutDefaultsUnlessTheDSNSetsOne(t *testing.T) {
	for dsn, want := range map[string]time.Duration{
		"mysql://app:pw@127.0.0.1:3306/shop":             dial.ConnectTimeout,
		"mysql://app:pw@127.0.0.1:3306/shop?timeout=3s":  3 * time.Second,
		"app:pw@tcp(127.0.0.1:3306)/shop":                dial.ConnectTimeout,
		"app:pw@tcp(127.0.0.1:3306)/shop?timeout=500ms":  500 * time.Millisecond,
		"app:pw@tcp(127.0.0.1:3306)/shop?readTimeout=1m": dial.ConnectTimeout,
		"mysql://app:pw@127.0.0.1/shop?writeTimeout=1m":  dial.ConnectTimeout,
	} {
		cfg, err := Parse(dsn)
		if err != nil {
			t.Fatalf("Parse(%q): %v", dsn, err)
		}
		if cfg.Timeout != want {
			t.Errorf("Parse(%q).Timeout = %s, want %s", dsn, cfg.Timeout, want)
		}
		if cfg.DialFunc == nil {
			t.Errorf("Parse(%q): no dialer set", dsn)
		}
		if cfg.ReadTimeout != 0 && !strings.Contains(dsn, "readTimeout") || cfg.WriteTimeout != 0 && !strings.Contains(dsn, "writeTimeout") {
			t.Errorf("Parse(%q) set read/write timeouts %s/%s the DSN does not ask for", dsn, cfg.ReadTimeout, cfg.WriteTimeout)
		}
	}
}

// A server that accepts the connection and never answers (a hung host, a
// stalled proxy) fails a connect within the DSN's timeout, the handshake
// included, with an error naming its address and not the password.
func TestConnector_AServerThatNeverAnswersFailsWithinTheTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	db, err := Open("mysql://app:s3cret-pw@" + ln.Addr().String() + "/shop?timeout=300ms")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	err = db.PingContext(context.Background())
	took := time.Since(start)
	if err == nil {
		t.Fatal("Ping of a silent server succeeded")
	}
	if took > 5*time.Second {
		t.Errorf("Ping took %s, want about the DSN's timeout (300ms)", took)
	}
	if !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "no answer within 300ms") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error = %q, want the address and the timeout named, no password", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not a deadline (preflight takes it as unreachable by that)", err)
	}
}
