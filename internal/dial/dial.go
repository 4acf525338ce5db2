package dial

import (
	"context"
	"net"
	"time"
)

// ConnectTimeout is how long a connection may take to open, TLS and
// authentication included, where the DSN sets no timeout of its own
// (PostgreSQL connect_timeout, MySQL timeout).
const ConnectTimeout = 10 * time.Second

// The keepalive probes of every connection: the first after keepIdle
// without traffic, then every keepInterval; keepCount unanswered probes
// end the connection. userTimeout is TCP_USER_TIMEOUT: how long sent data
// may stay unacknowledged before the kernel ends the connection (Linux).
const (
	keepIdle     = 15 * time.Second
	keepInterval = 5 * time.Second
	keepCount    = 3
	userTimeout  = keepIdle + keepCount*keepInterval
)

// Dialer returns a dialer with timeout as its connect timeout (0:
// ConnectTimeout) and tandem's keepalive probes.
func Dialer(timeout time.Duration) *net.Dialer {
	if timeout <= 0 {
		timeout = ConnectTimeout
	}
	return &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepIdle, Interval: keepInterval, Count: keepCount},
		Control:         control,
	}
}

// Func is a DialContext of Dialer(timeout), for the drivers that take a
// dial function.
func Func(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return Dialer(timeout).DialContext
}
