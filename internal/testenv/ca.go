package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test, valid for an hour
// either side of now: the TLS tests of servers, brokers and clients sign
// their certificates with it.
type CA struct {
	DER    []byte            // the CA certificate
	Pool   *x509.CertPool    // trusting the CA alone
	cert   *x509.Certificate // parsed DER
	key    *ecdsa.PrivateKey
	serial int64
}

// NewCA makes a CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tandem test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{DER: der, Pool: pool, cert: cert, key: key, serial: 1}
}

// Server signs a server certificate for hosts (IP addresses or DNS names;
// the first is its common name) and returns it with its key.
func (ca *CA) Server(t testing.TB, hosts ...string) (der []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	tmpl := ca.template(hosts[0], x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.sign(t, tmpl)
}

// Client signs a client certificate for user and returns it with its key.
func (ca *CA) Client(t testing.TB, user string) (der []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	return ca.sign(t, ca.template(user, x509.ExtKeyUsageClientAuth))
}

func (ca *CA) template(name string, usage x509.ExtKeyUsage) *x509.Certificate {
	ca.serial++
	now := time.Now()
	return &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
}

func (ca *CA) sign(t testing.TB, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// WriteCert writes a certificate as a PEM file dir/name and returns its path.
func WriteCert(t testing.TB, dir, name string, der []byte, perm os.FileMode) string {
	t.Helper()
	return writePEM(t, filepath.Join(dir, name), "CERTIFICATE", der, perm)
}

// WriteKey writes a private key as a PKCS #8 PEM file dir/name and returns
// its path.
func WriteKey(t testing.TB, dir, name string, key *ecdsa.PrivateKey, perm os.FileMode) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(dir, name), "PRIVATE KEY", der, perm)
}

func writePEM(t testing.TB, path, typ string, der []byte, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), perm); err != nil {
		t.Fatal(err)
	}
	return path
}
