package mysql_test

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tandemcdc/tandem/capture/capturetest"
	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// tlsFiles writes a CA made for the test and a server certificate and key
// it signed for 127.0.0.1, as PEM files.
func tlsFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir, c := t.TempDir(), testenv.NewCA(t)
	der, k := c.Server(t, "127.0.0.1")
	return testenv.WriteCert(t, dir, "ca.pem", c.DER, 0o644), testenv.WriteCert(t, dir, "server.pem", der, 0o644),
		testenv.WriteKey(t, dir, "server.key", k, 0o644)
}

// A user that must connect over TLS (REQUIRE SSL) captures through a DSN
// with ssl-ca: the binlog connection is encrypted and verified too, not
// only the SQL ones (it ignored the DSN's TLS, and such a user then
// looped on "Access denied").
func TestStream_OverTLSWithACAFileAsAUserThatRequiresIt(t *testing.T) {
	ca, cert, key := tlsFiles(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testenv.StartMariaDB(ctx, testenv.MariaDBOptions{Settings: map[string]string{
		"ssl_ca": ca, "ssl_cert": cert, "ssl_key": key,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	const pw = "tls-only-pw"
	for _, q := range []string{
		"CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(20))",
		"CREATE USER 'tlsonly'@'127.0.0.1' IDENTIFIED BY '" + pw + "' REQUIRE SSL",
		"GRANT ALL PRIVILEGES ON *.* TO 'tlsonly'@'127.0.0.1'",
	} {
		if err := srv.Exec(ctx, "", q); err != nil {
			t.Fatal(err)
		}
	}
	dsn := "mysql://tlsonly:" + pw + "@127.0.0.1:" + strconv.Itoa(srv.Port) + "/shop?ssl-ca=" + url.QueryEscape(ca)
	src := newSource(t, dsn, &capturetest.MemPositions{}, "shop.items")
	s := stream(t, src)
	defer s.stop(t)
	if err := srv.Exec(ctx, "shop", "INSERT INTO items VALUES (1, 'over tls')"); err != nil {
		t.Fatal(err)
	}
	want := []shortEvent{{Op: "c", Table: "shop.items", Key: []string{"id"}, After: change.Row{"id": int64(1), "name": "over tls"}}}
	if diff := cmp.Diff(want, short(s.events(t, 1))); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
