package postgres

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
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
	write := func(name, typ string, der []byte, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tandem test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey := newKey()
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER, 0o644), write("server.pem", "CERTIFICATE", srvDER, 0o644),
		write("server.key", "PRIVATE KEY", keyDER, 0o600)
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
