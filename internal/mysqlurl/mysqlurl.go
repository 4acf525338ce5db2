// Package mysqlurl turns the MySQL DSNs tandem's config accepts into a
// go-sql-driver configuration, without ever putting the password in an error.
//
// Two spellings are accepted:
//
//	mysql://user:pass@host:3306/db?param=value   (the config's documented form)
//	user:pass@tcp(host:3306)/db?param=value      (the Go driver's own form)
//
// Both give a Config with the driver settings tandem relies on: parseTime
// off (times stay the server's text, which is lossless), and the
// connection's time zone forced to UTC so TIMESTAMP values read and written
// by tandem are UTC whatever the server's default. Connections get
// tandem's connection defaults: a connect timeout (dial.ConnectTimeout)
// where the DSN sets no timeout, bounding the dial and the handshake
// together (Connector), and the keepalive probes of package dial. The
// DSN's readTimeout and writeTimeout are the user's: tandem sets none, as
// they would bound every statement alike, a long backfill read included;
// the operations that must answer soon carry deadlines of their own. It
// also holds the one quoting of identifiers and string literals for MySQL
// SQL text.
package mysqlurl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tandemcdc/tandem/internal/dial"
)

// Parse parses dsn. Errors name what is wrong, never the password.
func Parse(dsn string) (*mysql.Config, error) {
	var cfg *mysql.Config
	if strings.HasPrefix(dsn, "mysql://") || strings.HasPrefix(dsn, "mariadb://") {
		c, err := fromURL(dsn)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		c, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, errors.New("parse MySQL DSN: not a mysql:// URL nor a driver DSN (user:pass@tcp(host:port)/db)")
		}
		cfg = c
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, ok := cfg.Params["time_zone"]; !ok {
		cfg.Params["time_zone"] = "'+00:00'"
	}
	cfg.ParseTime = false
	cfg.MultiStatements = false
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:3306"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = dial.ConnectTimeout
	}
	if cfg.DialFunc == nil && (cfg.Net == "" || strings.HasPrefix(cfg.Net, "tcp")) {
		cfg.DialFunc = dial.Func(cfg.Timeout)
	}
	if err := fileTLS(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// The DSN parameters that name TLS files, as the mysql client's options
// do (--ssl-ca, --ssl-cert, --ssl-key). The driver has no such parameters:
// Parse takes them out of the DSN and builds the TLS configuration.
const (
	paramSSLCA   = "ssl-ca"   // PEM CA certificates the server's certificate must chain to
	paramSSLCert = "ssl-cert" // PEM client certificate, with ssl-key
	paramSSLKey  = "ssl-key"  // PEM key of ssl-cert
)

// fileTLS turns ssl-ca, ssl-cert and ssl-key into cfg.TLS: the server's
// certificate verified against ssl-ca (and its name against the host,
// unless tls=skip-verify), and the client certificate presented. Every
// connection made with cfg, SQL and binlog alike, uses it.
func fileTLS(cfg *mysql.Config) error {
	ca, cert, key := cfg.Params[paramSSLCA], cfg.Params[paramSSLCert], cfg.Params[paramSSLKey]
	delete(cfg.Params, paramSSLCA)
	delete(cfg.Params, paramSSLCert)
	delete(cfg.Params, paramSSLKey)
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	}
	if cfg.TLSConfig == "" || cfg.TLSConfig == "false" || cfg.TLSConfig == "preferred" {
		cfg.TLSConfig = "true" // a CA or a certificate given: TLS required
		cfg.AllowFallbackToPlaintext = false
		tc.InsecureSkipVerify = false
	}
	if host, _, err := net.SplitHostPort(cfg.Addr); err == nil && tc.ServerName == "" && !tc.InsecureSkipVerify {
		tc.ServerName = host
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("MySQL DSN %s: %w", paramSSLCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("MySQL DSN %s %s: no PEM certificate in it", paramSSLCA, ca)
		}
		tc.RootCAs = pool
	}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("MySQL DSN %s and %s: %w", paramSSLCert, paramSSLKey, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = tc
	return nil
}

func fromURL(dsn string) (*mysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url's errors quote the whole URL, password included.
		return nil, errors.New("parse MySQL URL: malformed (expected mysql://user:pass@host:3306/db)")
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "3306"
	}
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if strings.Contains(cfg.DBName, "/") {
		return nil, fmt.Errorf("parse MySQL URL: path %q names more than a database", cfg.DBName)
	}
	for k, vs := range u.Query() {
		if len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		switch k {
		case "tls":
			cfg.TLSConfig = v
		case "timeout", "readTimeout", "writeTimeout":
			// Durations go through the driver's own parser below.
			fallthrough
		default:
			if cfg.Params == nil {
				cfg.Params = map[string]string{}
			}
			cfg.Params[k] = v
		}
	}
	// Let the driver apply the params it understands (timeouts, tls, charset...).
	parsed, err := mysql.ParseDSN(cfg.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("parse MySQL URL parameters: %s", scrub(err.Error(), cfg.Passwd))
	}
	return parsed, nil
}

// scrub removes the password from a message.
func scrub(msg, password string) string {
	if password == "" {
		return msg
	}
	return strings.ReplaceAll(msg, password, "********")
}

// Host returns host and port of cfg's address, for replication clients.
func Host(cfg *mysql.Config) (string, uint16, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "", 0, fmt.Errorf("MySQL address %q: %w", cfg.Addr, err)
	}
	var p uint16
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil {
		return "", 0, fmt.Errorf("MySQL address %q: port is not a number", cfg.Addr)
	}
	return host, p, nil
}

// Open parses dsn and opens a database/sql pool on it (no connection is
// made until first use).
func Open(dsn string) (*sql.DB, error) {
	cfg, err := Parse(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := Connector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// Connector returns the driver connector of cfg, for sql.OpenDB: each
// connection it opens must be open, authenticated and set up within
// cfg.Timeout (the driver's own timeout bounds the dial only, and a server
// or a path that accepts and never answers would hold the handshake
// forever), and an error opening one names the server's address.
func Connector(cfg *mysql.Config) (driver.Connector, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("open MySQL connection pool: %s", scrub(err.Error(), cfg.Passwd))
	}
	return boundedConnector{Connector: c, addr: cfg.Addr, timeout: cfg.Timeout}, nil
}

type boundedConnector struct {
	driver.Connector
	addr    string
	timeout time.Duration
}

// Connect implements driver.Connector.
func (c boundedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conn, err := c.Connector.Connect(cctx)
	switch {
	case err == nil:
		return conn, nil
	case ctx.Err() == nil && cctx.Err() != nil:
		return nil, fmt.Errorf("connect to MySQL server %s: no answer within %s (the DSN's timeout): %w", c.addr, c.timeout, context.DeadlineExceeded)
	}
	return nil, fmt.Errorf("connect to MySQL server %s: %w", c.addr, err)
}

// QuoteIdent quotes a MySQL identifier with backticks, doubling those inside.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}

// QuoteString quotes a MySQL string literal for the default sql_mode
// (backslash escapes on): backslashes and quotes are doubled.
func QuoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}
