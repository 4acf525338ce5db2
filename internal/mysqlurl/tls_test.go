package mysqlurl

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// caFile writes a self-signed CA certificate made for the test.
func caFile(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse_SSLCAMakesTLSVerifiedAgainstIt(t *testing.T) {
	ca := caFile(t)
	for _, dsn := range []string{
		"mysql://u:pw@db.internal:3306/shop?ssl-ca=" + ca,
		"u:pw@tcp(db.internal:3306)/shop?ssl-ca=" + url.QueryEscape(ca), // the driver's form: a '/' in a value must be escaped
	} {
		cfg, err := Parse(dsn)
		if err != nil {
			t.Fatalf("Parse(%s): %v", dsn, err)
		}
		if cfg.TLS == nil || cfg.TLS.RootCAs == nil {
			t.Fatalf("Parse(%s): no TLS with the CA: %+v", dsn, cfg.TLS)
		}
		got := []any{cfg.TLS.ServerName, cfg.TLS.InsecureSkipVerify, cfg.AllowFallbackToPlaintext, cfg.Params[paramSSLCA]}
		if diff := cmp.Diff([]any{"db.internal", false, false, ""}, got); diff != "" {
			t.Errorf("Parse(%s): server name, skip verify, fallback, ssl-ca param (-want +got):\n%s", dsn, diff)
		}
	}
}

func TestParse_AMissingSSLCAIsAnErrorWithoutThePassword(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pem")
	_, err := Parse("mysql://u:s3cret@h/shop?ssl-ca=" + missing)
	if err == nil || !strings.Contains(err.Error(), "ssl-ca") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Parse error = %v, want one naming ssl-ca and %s", err, missing)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestParse_SSLCertAndKeyArePresentedAndABadPairNamesBoth(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "tandem"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := Parse("mysql://u:s3cret@db.internal/shop?ssl-cert=" + certPath + "&ssl-key=" + keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || len(cfg.TLS.Certificates) != 1 || !bytes.Equal(cfg.TLS.Certificates[0].Certificate[0], der) {
		t.Fatalf("Parse: TLS %+v, want the client certificate presented", cfg.TLS)
	}
	if got := []any{cfg.TLSConfig, cfg.TLS.ServerName, cfg.TLS.RootCAs == nil, cfg.Params}; !cmp.Equal(got, []any{"true", "db.internal", true, map[string]string{"time_zone": "'+00:00'"}}) {
		t.Errorf("Parse: tls, server name, system roots, params = %v", got)
	}

	_, err = Parse("mysql://u:s3cret@db.internal/shop?ssl-cert=" + certPath)
	if err == nil || !strings.HasPrefix(err.Error(), "MySQL DSN ssl-cert and ssl-key: ") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Parse with ssl-cert alone: error = %v, want one naming ssl-cert and ssl-key, without the password", err)
	}
}

// An ssl-ca makes TLS required and verified whatever tls= says, except
// skip-verify, which keeps the certificate unverified (and so no server
// name to check); without TLS files the DSN's own TLS setting is left alone.
func TestParse_SSLCAUnderEachTLSMode(t *testing.T) {
	ca := url.QueryEscape(caFile(t))
	type view struct {
		TLSConfig           string
		HasTLS, HasRoots    bool
		ServerName          string
		SkipVerify          bool
		FallbackToPlaintext bool
	}
	for dsn, want := range map[string]view{
		"mysql://u:pw@db.internal/shop?ssl-ca=" + ca:                   {"true", true, true, "db.internal", false, false},
		"mysql://u:pw@db.internal/shop?tls=false&ssl-ca=" + ca:         {"true", true, true, "db.internal", false, false},
		"mysql://u:pw@db.internal/shop?tls=preferred&ssl-ca=" + ca:     {"true", true, true, "db.internal", false, false},
		"mysql://u:pw@db.internal/shop?tls=true&ssl-ca=" + ca:          {"true", true, true, "db.internal", false, false},
		"mysql://u:pw@db.internal/shop?tls=skip-verify&ssl-ca=" + ca:   {"skip-verify", true, true, "", true, false},
		"mysql://u:pw@db.internal/shop":                                {"", false, false, "", false, false},
		"mysql://u:pw@db.internal/shop?tls=preferred":                  {"preferred", true, false, "", true, true},
		"u:pw@tcp(db.internal:3306)/shop?tls=skip-verify&ssl-ca=" + ca: {"skip-verify", true, true, "", true, false},
	} {
		cfg, err := Parse(dsn)
		if err != nil {
			t.Errorf("Parse(%s): %v", dsn, err)
			continue
		}
		got := view{TLSConfig: cfg.TLSConfig, HasTLS: cfg.TLS != nil, FallbackToPlaintext: cfg.AllowFallbackToPlaintext}
		if cfg.TLS != nil {
			got.HasRoots, got.ServerName, got.SkipVerify = cfg.TLS.RootCAs != nil, cfg.TLS.ServerName, cfg.TLS.InsecureSkipVerify
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Parse(%s) (-want +got):\n%s", dsn, diff)
		}
	}
}
