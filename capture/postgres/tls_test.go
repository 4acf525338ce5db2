package postgres

import (
	"context"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tandemcdc/tandem/internal/change"
	"github.com/tandemcdc/tandem/internal/testenv"
)

// serverTLSFiles writes a CA made for the test and a certificate and key
// it signed for 127.0.0.1 (only: "localhost" does not match it), in a
// folder the server can read, its key owned by the user the server runs
// as (postgres when the test runs as root), as PostgreSQL demands.
func serverTLSFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "tandem-pgtls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	own := func(p string) string {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := testenv.NewCA(t)
	der, k := c.Server(t, "127.0.0.1")
	return own(testenv.WriteCert(t, dir, "ca.pem", c.DER, 0o644)), own(testenv.WriteCert(t, dir, "server.pem", der, 0o644)),
		own(testenv.WriteKey(t, dir, "server.key", k, 0o600))
}

// A source DSN with sslmode=verify-full and a CA file streams over TLS:
// the replication connection too, not only the queries; and verify-full
// refuses a server whose certificate does not hold the name dialled.
func TestStream_VerifyFullWithACAFileEncryptsTheReplicationConnection(t *testing.T) {
	ca, cert, key := serverTLSFiles(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testenv.StartPostgreSQL(ctx, testenv.PostgresOptions{Settings: map[string]string{
		"ssl": "on", "ssl_cert_file": cert, "ssl_key_file": key,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	plain, err := srv.CreateDatabase(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, "shop", `CREATE TABLE items (id bigint PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	dsn := strings.Replace(plain, "sslmode=disable", "sslmode=verify-full&sslrootcert="+url.QueryEscape(ca), 1)

	cfg := Config{DSN: dsn, Slot: "tls", Publication: "tandem", StatusInterval: 50 * time.Millisecond,
		Tables: []change.Table{{Schema: "public", Name: "items"}}}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	s := startStream(t, src)
	if err := srv.Exec(ctx, "shop", `INSERT INTO items VALUES (1, 'over tls')`); err != nil {
		t.Fatal(err)
	}
	want := []change.Event{event(change.OpCreate, "items", []string{"id"}, map[string]change.Type{"id": change.TypeInt, "name": change.TypeString}, nil, item(1, "over tls"))}
	if diff := diffEvents(want, s.events()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var senders, encrypted int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)`).Scan(&senders, &encrypted); err != nil {
		t.Fatal(err)
	}
	if senders != 1 || encrypted != 1 {
		t.Errorf("%d of %d replication connections over TLS, want 1 of 1", encrypted, senders)
	}

	wrongName := strings.Replace(dsn, "127.0.0.1", "localhost", 1)
	wrong, err := New(Config{DSN: wrongName, Slot: "tls_wrong", Publication: "tandem", Tables: cfg.Tables})
	if err == nil {
		err = wrong.Setup(ctx)
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Setup with a name the certificate does not hold = %v, want a certificate error", err)
	}
}
