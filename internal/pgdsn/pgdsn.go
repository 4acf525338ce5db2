// Package pgdsn turns the PostgreSQL DSNs of tandem's config into pgx
// configurations with tandem's connection defaults: a connect timeout
// (dial.ConnectTimeout) where the DSN sets no connect_timeout (nor
// PGCONNECT_TIMEOUT), and the keepalive probes of package dial. Every
// PostgreSQL connection tandem opens, SQL and replication, source and
// target, is configured here, as internal/mysqlurl configures the MySQL
// ones. Errors never hold the password (pgconn redacts it).
package pgdsn

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemcdc/tandem/internal/dial"
)

// Config parses dsn into a connection configuration with tandem's defaults.
func Config(dsn string) (*pgconn.Config, error) {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	defaults(c, dsn)
	return c, nil
}

// ConnConfig is Config for a pgx connection.
func ConnConfig(dsn string) (*pgx.ConnConfig, error) {
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	defaults(&c.Config, dsn)
	return c, nil
}

// PoolConfig is Config for a pgx pool.
func PoolConfig(dsn string) (*pgxpool.Config, error) {
	c, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	defaults(&c.ConnConfig.Config, dsn)
	return c, nil
}

// Connect opens one connection to dsn.
func Connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	c, err := ConnConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, c)
}

// Pool opens a pool of connections to dsn (connecting lazily, as
// pgxpool.New does).
func Pool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	c, err := PoolConfig(dsn)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, c)
}

// Peer is the host:port c connects to first, for log lines and errors
// that must say which server did not answer (never the DSN: it may hold
// a password).
func Peer(c *pgconn.Config) string {
	if strings.HasPrefix(c.Host, "/") {
		return c.Host // a Unix socket's directory
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// PeerOf is Peer of dsn's configuration; "" when dsn does not parse.
func PeerOf(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return Peer(c)
}

// defaults sets what dsn leaves unset: the connect timeout, and the dialer
// with keepalive probes (with the connect timeout, the DSN's or tandem's).
func defaults(c *pgconn.Config, dsn string) {
	if !strings.Contains(dsn, "connect_timeout") && os.Getenv("PGCONNECT_TIMEOUT") == "" {
		c.ConnectTimeout = dial.ConnectTimeout
	}
	c.DialFunc = dial.Func(c.ConnectTimeout) // fallback hosts are dialled with it too
}
